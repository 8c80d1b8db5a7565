package dict

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Everything but the heap's chunk headers and the items in it is derived
// state: the bucket chains, the LRU list, the free lists and the counters.
// Every update keeps the heap walkable (chunk sizes change by single-byte
// stores, see alloc and free) and commits an item by one store of its
// state byte, so after a lock holder died the derived state is rebuilt
// from a walk of the heap.

// recover runs under the lock after its previous holder died.
func (t *table) recover() {
	t.put64(offRecoveries, t.u64(offRecoveries)+1)
	items, dropped, err := t.rebuild()
	if err != nil {
		t.put64(offResets, t.u64(offResets)+1)
		t.resetHeap()
		t.log.Error("dict: lock holder died and the heap is unreadable; all items were dropped",
			"err", err, "resets", t.u64(offResets))
		return
	}
	t.log.Warn("dict: lock holder died; index rebuilt", "items", items, "dropped", dropped,
		"recoveries", t.u64(offRecoveries))
}

// rebuild re-derives the index, the LRU list and the free lists from the
// heap. Items half written (stateAlloc) become free; of two live items
// with the same key (a replacement cut short) the newer write wins;
// malformed items are dropped and counted. The LRU order is rebuilt from
// write order, since reads are not recorded in the heap. It fails only if
// the chunk headers themselves are inconsistent.
func (t *table) rebuild() (items, dropped int, err error) {
	if err := t.walk(func(o uint32, c, st uint8) error { return nil }); err != nil {
		return 0, 0, err
	}
	for b := t.buckets; b < t.buckets+(t.mask+1)*4; b += 4 {
		t.put32(b, 0)
	}
	for c := uint32(0); c < numClasses; c++ {
		t.put32(offFreeLists+4*c, 0)
	}
	t.put32(offLRUHead, 0)
	t.put32(offLRUTail, 0)
	t.put64(offFreeBytes, 0)
	var live []uint32
	maxSeq := t.u64(offSeq)
	// A holder killed after journalling an overwrite in place but before
	// starting it left an entry with a number the item never got; later
	// rewrites must number theirs higher, or a rebuild could not tell
	// that entry from theirs (see redo).
	for i := uint32(0); i < journalSlots; i++ {
		maxSeq = max(maxSeq, t.u64(offJournal+i*journalSlotSize+jSeq))
	}
	_ = t.walk(func(o uint32, c, st uint8) error {
		if isClaim(st) {
			// Claims go on without the lock: wait for this one to end,
			// or finish it if its claimer died.
			t.settle(o)
			st = stateLive
		}
		if st == stateRewrite {
			// An overwrite in place cut short: finish it from the
			// journal, or drop the item if no entry fits it.
			if t.redo(o) {
				st = stateLive
			} else {
				maxSeq = max(maxSeq, t.u64(o+chSeq))
				dropped++
				st = stateFree
			}
		}
		if st == stateLive {
			if err := t.checkItem(o); err != nil {
				// Its chunk may be read without the lock: the next item
				// written there must get a higher sequence number.
				maxSeq = max(maxSeq, t.u64(o+chSeq))
				dropped++
				st = stateFree
			} else {
				k := t.keyAt(o)
				h := hashKey(string(k))
				dup := t.find(string(k), h)
				switch {
				case dup == 0:
				case t.u64(dup+chSeq) > t.u64(o+chSeq):
					st = stateFree // the newer copy stays
				default:
					t.unlinkHash(dup)
					t.put8(dup+chState, stateFree)
				}
				if st == stateLive {
					t.linkHash(o, h)
					live = append(live, o)
					maxSeq = max(maxSeq, t.u64(o+chSeq))
					if t.u8(o+chType) == uint8(TypeList) {
						t.repairList(o)
					}
				}
			}
		}
		if st != stateLive {
			t.put8(o+chState, stateFree)
		}
		return nil
	})
	t.coalesce()
	// Duplicates found later were freed; a claim backing off may show
	// for a moment on a live item (docs/dict.md §5b).
	live = slices.DeleteFunc(live, func(o uint32) bool {
		st := t.state(o)
		return st != stateLive && !isClaim(st)
	})
	slices.SortFunc(live, func(a, b uint32) int {
		x, y := t.u64(a+chSeq), t.u64(b+chSeq)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	for _, o := range live {
		t.lruPushFront(o)
	}
	t.put64(offItems, uint64(len(live)))
	t.put64(offTTLItems, uint64(countTTL(t, live)))
	t.put64(offSeq, maxSeq)
	t.put64(offDropped, t.u64(offDropped)+uint64(dropped))
	return len(live), dropped, nil
}

// coalesce merges the free chunks of the heap with their free buddies,
// as free does, and files them in the free lists (which the caller
// emptied): a rebuild frees chunks (half-written, dropped, duplicate) whose
// buddies may be free already, and a holder may have died in free before
// the merge. Unmerged, such buddies would keep the memory split, and a
// store of a large item would fail however much of it is free. Raising
// the class of a chunk whose buddy is free keeps the heap walkable, as in
// free; the buddy's header stays behind, stale, as there.
func (t *table) coalesce() {
	for merged := true; merged; {
		merged = false
		_ = t.walk(func(o uint32, c, st uint8) error {
			size := classSize(c)
			rel := o - t.heap
			if st != stateFree || c >= t.maxClass || rel&(2*size-1) != 0 || rel+2*size > t.heapLen {
				return nil
			}
			if b := o + size; t.u8(b+chState) == stateFree && t.u8(b+chClass) == c {
				t.put8(o+chClass, c+1)
				merged = true
			}
			return nil
		})
	}
	_ = t.walk(func(o uint32, c, st uint8) error {
		if st == stateFree {
			t.pushFree(o, c)
		}
		return nil
	})
}

// redo completes the overwrite in place of item o (in stateRewrite) from
// journal slot 0, which only holders of the lock write: the last one to
// write it is the holder that died, whose overwrite of o was cut short.
// The entry must name o, carry a sequence number not below the item's
// (the old one, or the new one if the holder died after storing it), and
// fit the chunk; it reports false otherwise.
func (t *table) redo(o uint32) bool {
	j := uint32(offJournal)
	jh := (*[jValue]byte)(t.data[j : j+jValue])
	if get32j(jh, jTarget) != o || binary.LittleEndian.Uint64(jh[jSeq:]) < t.u64(o+chSeq) || !t.entryFits(o, j) {
		return false
	}
	t.applyJournal(o, j)
	return true
}

func countTTL(t *table, items []uint32) int {
	n := 0
	for _, o := range items {
		if t.u64(o+chExpire) != 0 {
			n++
		}
	}
	return n
}

// walk visits every chunk of the heap in address order, checking that the
// chunk headers tile the heap exactly.
func (t *table) walk(fn func(o uint32, class, state uint8) error) error {
	for rel := uint32(0); rel < t.heapLen; {
		o := t.heap + rel
		c, st := t.u8(o+chClass), t.u8(o+chState)
		if c > t.maxClass {
			return fmt.Errorf("%w: chunk at %d has class %d > %d", ErrCorrupt, o, c, t.maxClass)
		}
		size := classSize(c)
		if rel%size != 0 || size > t.heapLen-rel {
			return fmt.Errorf("%w: chunk at %d of %d bytes is misaligned or overruns the heap", ErrCorrupt, o, size)
		}
		if st < stateFree || st > stateClaimMax {
			return fmt.Errorf("%w: chunk at %d has state %d", ErrCorrupt, o, st)
		}
		if err := fn(o, c, st); err != nil {
			return err
		}
		rel += size
	}
	return nil
}

// checkItem validates the fields of live item o against its chunk.
func (t *table) checkItem(o uint32) error {
	size := classSize(t.u8(o + chClass))
	klen, vlen := t.u32(o+chKeyLen), t.u32(o+chValLen)
	if klen == 0 || klen > MaxKeyLen {
		return fmt.Errorf("%w: item at %d has key length %d", ErrCorrupt, o, klen)
	}
	if uint64(align8(chKey+klen))+uint64(vlen) > uint64(size) {
		return fmt.Errorf("%w: item at %d overruns its %d-byte chunk", ErrCorrupt, o, size)
	}
	h := hashKey(string(t.keyAt(o)))
	if t.u32(o+chHash) != uint32(h>>32) {
		return fmt.Errorf("%w: item at %d has a wrong key hash", ErrCorrupt, o)
	}
	if shardOf(h)&t.shardMask != t.shard {
		return fmt.Errorf("%w: item at %d belongs in shard %d", ErrCorrupt, o, shardOf(h)&t.shardMask)
	}
	if t.u8(o+chRef) > 1 {
		return fmt.Errorf("%w: item at %d has reference byte %d", ErrCorrupt, o, t.u8(o+chRef))
	}
	switch Type(t.u8(o + chType)) {
	case TypeString:
	case TypeNumber:
		if vlen != 8 {
			return fmt.Errorf("%w: number item at %d has length %d", ErrCorrupt, o, vlen)
		}
	case TypeBool:
		if vlen != 1 {
			return fmt.Errorf("%w: boolean item at %d has length %d", ErrCorrupt, o, vlen)
		}
	case TypeList:
		if _, err := t.listCount(o); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: item at %d has value type %d", ErrCorrupt, o, t.u8(o+chType))
	}
	return nil
}

// listCount walks the elements of list item o.
func (t *table) listCount(o uint32) (uint32, error) {
	vo, vlen := t.valOff(o), t.u32(o+chValLen)
	if vlen < lsData {
		return 0, fmt.Errorf("%w: list at %d has a %d-byte value", ErrCorrupt, o, vlen)
	}
	head, tail := t.u32(vo+lsHead), t.u32(vo+lsTail)
	if head < lsData || head >= tail || tail > vlen {
		return 0, fmt.Errorf("%w: list at %d has head %d, tail %d in %d bytes", ErrCorrupt, o, head, tail, vlen)
	}
	n := uint32(0)
	for at := head; at != tail; n++ {
		if tail-at < 8 {
			return 0, fmt.Errorf("%w: list at %d has a torn element at %d", ErrCorrupt, o, at)
		}
		tag := t.u32(vo + at)
		size := uint64(tag>>2) + 8
		if tag&3 != elemString && tag&3 != elemNumber || tag&3 == elemNumber && tag>>2 != 8 ||
			size > uint64(tail-at) || t.u32(vo+at+uint32(size)-4) != tag {
			return 0, fmt.Errorf("%w: list at %d has a bad element at %d", ErrCorrupt, o, at)
		}
		at += uint32(size)
	}
	return n, nil
}

// repairList makes the count of list o match its elements: a holder killed
// between publishing head|tail and storing the count leaves it one off.
func (t *table) repairList(o uint32) {
	n, _ := t.listCount(o)
	t.put32(t.valOff(o)+lsCount, n)
}

// Check walks the whole dictionary under the lock and reports the first
// inconsistencies it finds, wrapped in ErrCorrupt; nil means the heap, the
// index, the LRU list, the free lists and the counters all agree.
func (d *Dict) Check() error {
	var errs []error
	err := d.eachShard(func(t *table) error {
		if err := t.check(); err != nil {
			errs = append(errs, fmt.Errorf("shard %d: %w", t.shard, err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

func (t *table) check() error {
	if err := validateShard(t.data); err != nil {
		return err
	}
	var errs []error
	fail := func(format string, args ...any) bool {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...))
		return len(errs) < 10
	}
	free := map[uint32]uint8{}
	live := map[uint32]bool{}
	var freeBytes uint64
	nlive := 0
	err := t.walk(func(o uint32, c, st uint8) error {
		if isClaim(st) {
			t.settle(o)
			st = stateLive // or claimed again by a claim that will back off
		}
		switch st {
		case stateFree:
			free[o] = c
			freeBytes += uint64(classSize(c))
		case stateAlloc:
			fail("chunk at %d is allocated but not part of the dictionary", o)
		case stateRewrite:
			fail("item at %d is still being overwritten in place", o)
		case stateLive:
			nlive++
			if err := t.checkItem(o); err != nil {
				errs = append(errs, err)
				break // not followed further: its fields cannot be trusted
			}
			if t.u8(o+chType) == uint8(TypeList) {
				n, _ := t.listCount(o)
				if c := t.u32(t.valOff(o) + lsCount); c != n {
					fail("list at %d counts %d elements, holds %d", o, c, n)
				}
			}
			live[o] = true
		}
		return nil
	})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if got := t.u64(offFreeBytes); got != freeBytes {
		fail("header counts %d free bytes, free chunks hold %d", got, freeBytes)
	}
	if got := t.u64(offItems); got != uint64(nlive) {
		fail("header counts %d items, heap holds %d", got, nlive)
	}
	withTTL := 0
	for o := range live {
		if t.u64(o+chExpire) != 0 {
			withTTL++
		}
	}
	if got := t.u64(offTTLItems); got != uint64(withTTL) {
		fail("header counts %d items with an expiry, heap holds %d", got, withTTL)
	}
	// free lists: every free chunk exactly once, in its class's list
	seen := 0
	for c := uint8(0); c < numClasses; c++ {
		prev := uint32(0)
		for o := t.u32(offFreeLists + 4*uint32(c)); o != 0; o = t.u32(o + chNext) {
			if fc, ok := free[o]; !ok || fc != c {
				fail("free list %d holds %d, not a free chunk of that class", c, o)
				break
			}
			if t.u32(o+chPrev) != prev {
				fail("free chunk %d has previous %d, want %d", o, t.u32(o+chPrev), prev)
			}
			delete(free, o)
			seen++
			prev = o
		}
	}
	if len(free) != 0 {
		fail("%d free chunks are in no free list", len(free))
	}
	// index: every live item once, in the right bucket, keys unique
	keys := map[string]bool{}
	inIndex := 0
	for b := uint32(0); b <= t.mask; b++ {
		for o := t.u32(t.buckets + 4*b); o != 0; o = t.u32(o + chHNext) {
			if !live[o] {
				fail("bucket %d holds %d, not a live item", b, o)
				break
			}
			k := string(t.keyAt(o))
			if uint32(hashKey(k))&t.mask != b {
				fail("item %d is in bucket %d, belongs in %d", o, b, uint32(hashKey(k))&t.mask)
			}
			if keys[k] {
				fail("key %q is indexed twice", k)
				break
			}
			keys[k] = true
			inIndex++
		}
	}
	if inIndex != len(live) {
		fail("index holds %d items, heap holds %d", inIndex, len(live))
	}
	// LRU list
	n, prev := 0, uint32(0)
	for o := t.u32(offLRUHead); o != 0; o = t.u32(o + chNext) {
		if !live[o] || n > len(live) {
			fail("LRU list holds %d, not a live item (or loops)", o)
			break
		}
		if t.u32(o+chPrev) != prev {
			fail("LRU item %d has previous %d, want %d", o, t.u32(o+chPrev), prev)
		}
		n++
		prev = o
	}
	if t.u32(offLRUTail) != prev {
		fail("LRU tail is %d, the list ends at %d", t.u32(offLRUTail), prev)
	}
	if n != len(live) {
		fail("LRU list holds %d items, heap holds %d", n, len(live))
	}
	return errors.Join(errs...)
}
