package dict

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"
)

// locker is the lock guarding a table: shm.Mutex in shared memory, or a
// process-local stand-in in tests. Lock reports recovered when the previous
// holder died holding it.
type locker interface {
	Lock(ctx context.Context) (recovered bool, err error)
	Unlock()
}

// table is the dictionary engine over a region of bytes, independent of how
// the region was obtained. Every method except the lock helpers expects the
// lock to be held.
type table struct {
	data []byte
	mu   locker
	word *uint64 // shm.Mutex's lock word (docs/shm.md), for spinning; nil: no spin
	log  *slog.Logger
	now  func() int64 // Unix milliseconds

	shard, shardMask uint32 // this table's index among the shards, count-1

	// geometry, copied from the validated header
	mask     uint32
	buckets  uint32
	heap     uint32
	heapLen  uint32
	maxClass uint8

	journal uint32 // the journal slot of overwrites under the lock (see rewrite)
}

func (t *table) setGeometry() {
	t.mask = t.u32(offNBuckets) - 1
	t.buckets = t.u32(offBuckets)
	t.heap = t.u32(offHeap)
	t.heapLen = t.u32(offHeapLen)
	t.maxClass = uint8(t.u32(offMaxClass))
}

// lock takes the lock and, if its holder died, rebuilds the derived
// structures before anyone uses them.
func (t *table) lock() {
	if t.word != nil {
		// Critical sections here last tens of nanoseconds, while a
		// contended shm.Mutex soon sleeps on a futex, which costs
		// microseconds: wait briefly for the word to clear (0 = unlocked)
		// before taking the lock.
		for i := 0; i < lockSpin && atomic.LoadUint64(t.word) != 0; i++ {
		}
	}
	recovered, _ := t.mu.Lock(context.Background())
	if recovered {
		t.recover()
	}
}

// lockSpin bounds the wait before sleeping: a few microseconds.
const lockSpin = 2000

// clock reads the time at most once per operation, and only if an item
// with a TTL is involved: reading it costs as much as the rest of a Get.
type clock struct {
	now func() int64
	ms  int64
}

func (c *clock) get() int64 {
	if c.ms == 0 {
		c.ms = c.now()
	}
	return c.ms
}

func (t *table) clock() clock { return clock{now: t.now} }

// shardOf picks a key's shard from the top bits of its hash, which neither
// the bucket index (low bits) nor, mostly, the stored hash use.
func shardOf(h uint64) uint32 { return uint32(h >> 60) }

func wallMillis() int64 { return time.Now().UnixMilli() }

// ttlMillis converts a TTL to the stored expiry: 0 = never; a positive TTL
// under a millisecond counts as one (OpenResty truncates it to 0, which
// would mean never).
func ttlMillis(ttl time.Duration, c *clock) int64 {
	if ttl <= 0 {
		return 0
	}
	ms := ttl.Milliseconds()
	if ms == 0 {
		ms = 1
	}
	return c.get() + ms
}

// ---- allocator: binary buddy system over the heap ----

// resetHeap empties the dictionary: the heap is carved greedily into the
// largest aligned power-of-two chunks, all free.
func (t *table) resetHeap() {
	for b := t.buckets; b < t.buckets+(t.mask+1)*4; b += 4 {
		t.put32(b, 0)
	}
	for c := uint32(0); c < numClasses; c++ {
		t.put32(offFreeLists+4*c, 0)
	}
	t.put32(offLRUHead, 0)
	t.put32(offLRUTail, 0)
	t.put64(offItems, 0)
	t.put64(offTTLItems, 0)
	t.put64(offFreeBytes, 0)
	// Stale item headers stay inside the new free chunks: a claim that
	// looked one up before the reset must see the shard's seq change.
	t.put64(offSeq, t.u64(offSeq)+1)
	rel := uint32(0)
	for rel < t.heapLen {
		c := t.maxClass
		for classSize(c) > t.heapLen-rel || rel%classSize(c) != 0 {
			c--
		}
		o := t.heap + rel
		t.put8(o+chClass, c)
		t.put8(o+chState, stateFree)
		t.pushFree(o, c)
		rel += classSize(c)
	}
}

func (t *table) classFor(n uint32) (uint8, bool) {
	c := uint8(0)
	if n > 64 {
		c = uint8(bits.Len32((n - 1) >> minShift))
	}
	return c, c <= t.maxClass
}

func (t *table) pushFree(o uint32, c uint8) {
	head := offFreeLists + 4*uint32(c)
	first := t.u32(head)
	h := t.hdr(o)
	put32(h, chPrev, 0)
	put32(h, chNext, first)
	if first != 0 {
		put32(t.hdr(first), chPrev, o)
	}
	t.put32(head, o)
	t.put64(offFreeBytes, t.u64(offFreeBytes)+uint64(classSize(c)))
}

func (t *table) unlinkFree(o uint32, c uint8) {
	h := t.hdr(o)
	prev, next := get32(h, chPrev), get32(h, chNext)
	if prev == 0 {
		t.put32(offFreeLists+4*uint32(c), next)
	} else {
		put32(t.hdr(prev), chNext, next)
	}
	if next != 0 {
		put32(t.hdr(next), chPrev, prev)
	}
	t.put64(offFreeBytes, t.u64(offFreeBytes)-uint64(classSize(c)))
}

// alloc takes a chunk of class c, splitting a larger one if needed, and
// returns it in stateAlloc, or 0 if no chunk is free. A split writes the
// upper half's header before shrinking the lower one, so the heap stays
// walkable at every instant.
func (t *table) alloc(c uint8) uint32 {
	for k := c; k <= t.maxClass; k++ {
		o := t.u32(offFreeLists + 4*uint32(k))
		if o == 0 {
			continue
		}
		t.unlinkFree(o, k)
		for k > c {
			k--
			half := o + classSize(k)
			t.put8(half+chClass, k)
			t.put8(half+chState, stateFree)
			t.pushFree(half, k)
			t.put8(o+chClass, k)
		}
		t.put8(o+chState, stateAlloc)
		return o
	}
	return 0
}

// free returns chunk o to the allocator, merging it with free buddies.
// The chunk is marked free first, so a holder killed halfway leaves a
// free chunk that a rebuild files away, never a half-dead item.
func (t *table) free(o uint32) {
	c := t.u8(o + chClass)
	t.put8(o+chState, stateFree)
	for c < t.maxClass {
		size := classSize(c)
		brel := (o - t.heap) ^ size
		if brel+size > t.heapLen {
			break
		}
		b := t.heap + brel
		if t.u8(b+chState) != stateFree || t.u8(b+chClass) != c {
			break
		}
		t.unlinkFree(b, c)
		if b < o {
			o = b
		}
		c++
		t.put8(o+chClass, c)
	}
	t.pushFree(o, c)
}

// ---- hash index ----

func (t *table) bucket(h uint64) uint32 { return t.buckets + (uint32(h)&t.mask)*4 }

func (t *table) keyAt(o uint32) []byte {
	return t.data[o+chKey : o+chKey+t.u32(o+chKeyLen)]
}

func (t *table) valOff(o uint32) uint32 { return o + align8(chKey+get32(t.hdr(o), chKeyLen)) }

// hdr returns the fixed header of the chunk at o, bounds-checked once so
// that field accesses through it need no further checks.
func (t *table) hdr(o uint32) *[chKey]byte { return (*[chKey]byte)(t.data[o : o+chKey]) }

func (t *table) find(key string, h uint64) uint32 {
	o, _ := t.findLink(key, h)
	return o
}

// findLink is find that also returns where the reference to the item is
// stored (its bucket or its chain predecessor's next field), so that a
// store can put the new item in its place without walking the chain again.
func (t *table) findLink(key string, h uint64) (o, link uint32) {
	h32 := uint32(h >> 32)
	link = t.bucket(h)
	for o = t.u32(link); o != 0; {
		c := t.hdr(o)
		if get32(c, chHash) == h32 && get32(c, chKeyLen) == uint32(len(key)) &&
			string(t.data[o+chKey:o+chKey+uint32(len(key))]) == key {
			t.settle(o)
			return o, link
		}
		link, o = o+chHNext, get32(c, chHNext)
	}
	return 0, 0
}

func (t *table) linkHash(o uint32, h uint64) {
	b := t.bucket(h)
	t.put32(o+chHNext, t.u32(b))
	t.put32(b, o)
}

func (t *table) unlinkHash(o uint32) {
	k := t.keyAt(o)
	t.unlinkHashed(o, hashKey(unsafe.String(unsafe.SliceData(k), len(k))))
}

// unlinkHashed is unlinkHash for a caller that knows the key's hash.
func (t *table) unlinkHashed(o uint32, h uint64) {
	p := t.bucket(h)
	for x := t.u32(p); x != 0; p, x = x+chHNext, t.u32(x+chHNext) {
		if x == o {
			t.put32(p, t.u32(o+chHNext))
			return
		}
	}
}

// ---- LRU list: head = most recently used ----

func (t *table) lruPushFront(o uint32) {
	head := t.u32(offLRUHead)
	c := t.hdr(o)
	put32(c, chPrev, 0)
	put32(c, chNext, head)
	if head != 0 {
		put32(t.hdr(head), chPrev, o)
	} else {
		t.put32(offLRUTail, o)
	}
	t.put32(offLRUHead, o)
}

func (t *table) lruUnlink(o uint32) {
	c := t.hdr(o)
	prev, next := get32(c, chPrev), get32(c, chNext)
	if prev == 0 {
		t.put32(offLRUHead, next)
	} else {
		put32(t.hdr(prev), chNext, next)
	}
	if next == 0 {
		t.put32(offLRUTail, prev)
	} else {
		put32(t.hdr(next), chPrev, prev)
	}
}

func (t *table) touch(o uint32) {
	if t.u32(offLRUHead) != o {
		t.lruUnlink(o)
		t.lruPushFront(o)
	}
}

// reference records a use of item o. Rather than moving the item to the
// LRU head, which writes to three other items and the shard header on
// every read, it sets the item's reference byte (once); eviction gives
// referenced items a second pass (CLOCK). Reads then write almost nothing,
// which keeps cache lines shared when several processes read.
func (t *table) reference(o uint32) {
	if t.data[o+chRef] == 0 {
		t.data[o+chRef] = 1
	}
}

// ---- items ----

func (t *table) expired(o uint32, c *clock) bool {
	exp := int64(binary.LittleEndian.Uint64(t.hdr(o)[chExpire:]))
	return exp != 0 && exp <= c.get()
}

// remove unlinks item o from the dictionary and frees its chunk.
func (t *table) remove(o uint32) {
	t.unlinkHash(o)
	t.release(o)
}

// removeHashed is remove for a caller that knows the key's hash.
func (t *table) removeHashed(o uint32, h uint64) {
	t.unlinkHashed(o, h)
	t.release(o)
}

func (t *table) release(o uint32) {
	t.settle(o)
	t.raiseSeq(o)
	t.lruUnlink(o)
	t.put64(offItems, t.u64(offItems)-1)
	if t.u64(o+chExpire) != 0 {
		t.put64(offTTLItems, t.u64(offTTLItems)-1)
	}
	t.free(o)
}

// sweep frees up to n expired items from the LRU tail, stopping at the
// first live or never-expiring one, as OpenResty does before every store.
func (t *table) sweep(c *clock, n int) {
	if t.u64(offTTLItems) == 0 {
		return // nothing can expire: spare the read of the tail item
	}
	for ; n > 0; n-- {
		o := t.u32(offLRUTail)
		if o == 0 || !t.expired(o, c) {
			return
		}
		t.remove(o)
	}
}

// newItem allocates a chunk for key with a value of vlen bytes. Unless
// safe, it evicts items from the LRU tail (live ones too) to make room, up
// to 30 of them as OpenResty does, then, if memory is too fragmented for
// that to have freed a large enough chunk, the items around the tail (see
// evictRegion); it reports whether it evicted. A tail item read since it
// was last at the head is moved back to the head instead, once (second
// chance).
// It returns 0 when memory cannot be found.
func (t *table) newItem(key string, vlen uint32, safe bool) (o uint32, forcible bool) {
	need := uint64(align8(chKey+uint32(len(key)))) + uint64(vlen)
	if need > uint64(classSize(t.maxClass)) {
		return 0, false
	}
	c, _ := t.classFor(uint32(need))
	o = t.alloc(c)
	passes := t.u64(offItems) // second chances: at most one turn of the list
	for tries := 0; o == 0 && !safe && tries < 30; {
		tail := t.u32(offLRUTail)
		if tail == 0 {
			break
		}
		t.settle(tail)
		if t.data[tail+chRef] != 0 && passes > 0 {
			t.data[tail+chRef] = 0
			t.touch(tail)
			passes--
			continue
		}
		tries++
		t.remove(tail)
		t.put64(offEvictions, t.u64(offEvictions)+1)
		forcible = true
		o = t.alloc(c)
	}
	if o == 0 && !safe {
		// Memory is fragmented: the evicted items were too scattered to
		// merge into a chunk of class c. OpenResty gives up here; instead
		// empty the aligned class-c region around the LRU tail.
		if tail := t.u32(offLRUTail); tail != 0 {
			if o = t.evictRegion(tail, c); o != 0 {
				forcible = true
			}
		}
	}
	return o, forcible
}

// evictRegion evicts every item in the aligned region of class c that
// holds item x, so that the region becomes one free chunk, and allocates
// it; 0 if the region is not wholly inside the heap. The walk steps by the
// chunk sizes found when it started: freeing only merges chunks, so every
// step lands on a chunk start or inside a merged free chunk, where the old
// header still reads free, and only live items are removed.
func (t *table) evictRegion(x uint32, c uint8) uint32 {
	size := classSize(c)
	start := (x - t.heap) &^ (size - 1)
	if start+size > t.heapLen {
		return 0
	}
	for rel := start; rel < start+size; {
		o := t.heap + rel
		step := classSize(t.u8(o + chClass))
		if st := t.state(o); st == stateLive || isClaim(st) {
			t.remove(o)
			t.put64(offEvictions, t.u64(offEvictions)+1)
		}
		rel += step
	}
	return t.alloc(c)
}

// writeItem fills a freshly allocated chunk (see fillItem) and links it
// into the index and the LRU head. The item becomes part of the dictionary
// when commit marks it live.
func (t *table) writeItem(o uint32, key string, h uint64, typ Type, vlen, flags uint32, expire int64) {
	t.fillItem(o, key, h, typ, vlen, flags, expire)
	c := t.hdr(o)
	b := t.bucket(h)
	put32(c, chHNext, t.u32(b))
	t.put32(b, o)
	t.lruPushFront(o)
}

// fillItem writes the header and key of a freshly allocated chunk; the
// caller then writes the value and links the item.
func (t *table) fillItem(o uint32, key string, h uint64, typ Type, vlen, flags uint32, expire int64) {
	c := t.hdr(o)
	c[chType] = uint8(typ)
	c[chRef] = 0
	put32(c, chFlags, flags)
	put32(c, chKeyLen, uint32(len(key)))
	put32(c, chValLen, vlen)
	put32(c, chHash, uint32(h>>32))
	binary.LittleEndian.PutUint64(c[chExpire:], uint64(expire))
	seq := t.u64(offSeq) + 1
	t.put64(offSeq, seq)
	binary.LittleEndian.PutUint64(c[chSeq:], seq)
	copy(t.data[o+chKey:], key)
}

// replace makes the filled item o take the place of item old, whose
// chain reference is at link (from findLink): o takes old's place in its
// bucket chain and in the LRU list, marked referenced, becomes live (the
// commit), and old is freed. Splicing the new item in rather than pushing
// it at the LRU head writes to two neighbours instead of three items and
// a chain walk; the reference mark gives it the second chance that
// eviction gives an item used since it was last at the head, so a just
// written item is still evicted only after the unreferenced ones (CLOCK).
func (t *table) replace(o, old, link uint32) {
	c, oc := t.hdr(o), t.hdr(old)
	prev, next := get32(oc, chPrev), get32(oc, chNext)
	put32(c, chHNext, get32(oc, chHNext))
	put32(c, chPrev, prev)
	put32(c, chNext, next)
	c[chRef] = 1
	if prev == 0 {
		t.put32(offLRUHead, o)
	} else {
		put32(t.hdr(prev), chNext, o)
	}
	if next == 0 {
		t.put32(offLRUTail, o)
	} else {
		put32(t.hdr(next), chPrev, o)
	}
	t.put32(link, o)
	// The item count is unchanged; the count of items with an expiry
	// moves only if one of the two has one.
	oexp, nexp := binary.LittleEndian.Uint64(oc[chExpire:]) != 0, binary.LittleEndian.Uint64(c[chExpire:]) != 0
	if oexp != nexp {
		n := t.u64(offTTLItems)
		if nexp {
			n++
		} else {
			n--
		}
		t.put64(offTTLItems, n)
	}
	c[chState] = stateLive
	t.free(old)
}

// raiseSeq makes the shard's sequence number at least that of item o,
// which an overwrite in place may have taken past it without storing it
// in the header (see rewrite). It runs before o is freed or replaced, so
// that whatever is written into its chunk later, or replaces it, gets a
// higher number.
func (t *table) raiseSeq(o uint32) {
	if s := t.u64(o + chSeq); s > t.u64(offSeq) {
		t.put64(offSeq, s)
	}
}

// fitsInPlace reports whether a scalar value of vlen bytes for key can
// overwrite item o in place: o is not a list, the new item needs a chunk
// of o's class (a smaller value does not keep a larger chunk), and the
// value fits a journal slot.
func (t *table) fitsInPlace(o uint32, key string, vlen uint32) bool {
	if vlen > journalMaxValue || Type(t.u8(o+chType)) == TypeList {
		return false
	}
	c, _ := t.classFor(align8(chKey+uint32(len(key))) + vlen)
	return c == t.u8(o+chClass)
}

// rewrite overwrites live item o with a new scalar value, flags and
// expiry, in place: unlike a store into a new chunk it touches neither the
// allocator, the bucket chain, the LRU neighbours nor (mostly) the shard
// header, which are cache lines the other processes also write. The item
// keeps its LRU place, marked referenced, as replace does.
//
// It is a redo-journalled seqlock write. The new fields and value go to
// journal slot 0, which only holders of the lock write, first; then the item's state becomes
// stateRewrite (see storeState: neither the compiler nor the CPU lets it
// pass the journal's stores or the item's); then the item is written
// from the journal, its new sequence number stored, and its state set
// back to live. A lock-free reader refuses an item that is not live or
// whose sequence number changed while it copied (see peek). A holder
// killed before the stateRewrite store leaves the old item untouched,
// after it a stateRewrite item that recovery completes from the journal
// (redo): a rewrite cut short leaves the old value or the new one.
//
// The new sequence number exceeds both the item's and the shard's, but
// is not stored in the shard header: raiseSeq does that when the item is
// freed or replaced.
func (t *table) rewrite(o uint32, v Value, vlen, flags uint32, expire int64) {
	t.journalRewrite(o, v, vlen, flags, expire)
	t.storeState(o, stateRewrite)
	t.applyJournal(o, t.journal)
}

// journalRewrite is the first step of rewrite: it writes the new fields
// and value to journal slot 0, and keeps the count of items with an
// expiry.
func (t *table) journalRewrite(o uint32, v Value, vlen, flags uint32, expire int64) {
	t.writeEntry(t.journal, o, v, vlen, flags, expire, max(t.u64(offSeq), t.u64(o+chSeq))+1)
	if oexp := t.u64(o+chExpire) != 0; oexp != (expire != 0) {
		n := t.u64(offTTLItems)
		if oexp {
			n--
		} else {
			n++
		}
		t.put64(offTTLItems, n)
	}
}

// writeEntry writes a journal entry at j for an overwrite of item o.
func (t *table) writeEntry(j, o uint32, v Value, vlen, flags uint32, expire int64, seq uint64) {
	jh := (*[jValue]byte)(t.data[j : j+jValue])
	put32j(jh, jTarget, o)
	jh[jType] = uint8(v.typ)
	put32j(jh, jFlags, flags)
	put32j(jh, jValLen, vlen)
	binary.LittleEndian.PutUint64(jh[jExpire:], uint64(expire))
	binary.LittleEndian.PutUint64(jh[jSeq:], seq)
	t.putValueAt(j+jValue, v)
}

// applyJournal writes the journal entry at j into item o (in
// stateRewrite, or claimed) and makes the item live again. The sequence
// number goes in one 8-byte store, after the value and before the state.
func (t *table) applyJournal(o, j uint32) {
	jh := (*[jValue]byte)(t.data[j : j+jValue])
	c := t.hdr(o)
	vlen := get32j(jh, jValLen)
	c[chType] = jh[jType]
	c[chRef] = 1
	put32(c, chFlags, get32j(jh, jFlags))
	put32(c, chValLen, vlen)
	copy(c[chExpire:chExpire+8], jh[jExpire:jExpire+8])
	vo := t.valOff(o)
	copy(t.data[vo:vo+vlen], t.data[j+jValue:j+jValue+vlen])
	binary.LittleEndian.PutUint64(c[chSeq:], binary.LittleEndian.Uint64(jh[jSeq:]))
	c[chState] = stateLive
}

// storeState stores the state byte of chunk o where rewrite needs it: in
// program order with the stores around it. x86 makes stores visible in
// program order, and the Go compiler keeps them in order, but it may drop
// a store overwritten later in the same function with no load in between
// (as rewrite's state 4 is by its state 3); the atomic load of the word
// after it is such a load. A killed process's stores all land, so a
// crash leaves a prefix of them on any hardware. (An atomic store, an
// XCHG on x86, would cost more: it waits for the item's line before the
// value's stores can even start fetching theirs.)
func (t *table) storeState(o uint32, st uint8) {
	t.data[o+chState] = st
	atomic.LoadUint32((*uint32)(unsafe.Pointer(&t.data[o : o+4][0])))
}

func get32j(j *[jValue]byte, f int) uint32    { return binary.LittleEndian.Uint32(j[f:]) }
func put32j(j *[jValue]byte, f int, v uint32) { binary.LittleEndian.PutUint32(j[f:], v) }

func (t *table) commit(o uint32) {
	t.put64(offItems, t.u64(offItems)+1)
	if t.u64(o+chExpire) != 0 {
		t.put64(offTTLItems, t.u64(offTTLItems)+1)
	}
	t.put8(o+chState, stateLive)
}

func (t *table) putValue(o uint32, v Value) { t.putValueAt(t.valOff(o), v) }

// putValueAt writes the bytes of scalar v at vo.
func (t *table) putValueAt(vo uint32, v Value) {
	switch v.typ {
	case TypeString:
		copy(t.data[vo:], v.str)
	case TypeNumber:
		t.put64(vo, math.Float64bits(v.num))
	case TypeBool:
		t.put8(vo, uint8(v.num))
	}
}

func valueLen(v Value) uint32 {
	switch v.typ {
	case TypeString:
		return uint32(len(v.str))
	case TypeBool:
		return 1
	}
	return 8
}

// value decodes the scalar value of item o; strings are copied out.
func (t *table) value(o uint32) Value {
	vo := t.valOff(o)
	switch Type(t.u8(o + chType)) {
	case TypeString:
		return Value{typ: TypeString, str: string(t.data[vo : vo+t.u32(o+chValLen)])}
	case TypeNumber:
		return Value{typ: TypeNumber, num: math.Float64frombits(t.u64(vo))}
	case TypeBool:
		return Value{typ: TypeBool, num: float64(t.u8(vo))}
	}
	return Value{}
}

// appendValue appends the String form of item o's value to b.
func (t *table) appendValue(b []byte, o uint32) []byte {
	if Type(t.u8(o+chType)) == TypeString {
		vo := t.valOff(o)
		return append(b, t.data[vo:vo+t.u32(o+chValLen)]...)
	}
	return t.value(o).AppendText(b)
}

func checkKey(key string) error {
	switch {
	case key == "":
		return ErrEmptyKey
	case len(key) > MaxKeyLen:
		return ErrKeyTooLong
	}
	return nil
}
