package dict

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// The byte layout of a dictionary's shared memory; docs/dict.md is its
// specification and must change with it. All integers are little-endian,
// all references are byte offsets from the start of the region (0 = none).
const (
	layoutVersion = 4

	// region header: the dictionary is split into shards, each a table
	// with its own lock, so that processes working on different keys do
	// not contend.
	regionMagic   = 0x5254434944575250 // "PRWDICTR" read as a little-endian uint64
	offRMagic     = 0                  // u64
	offRVersion   = 8                  // u32
	offRShards    = 12                 // u32: power of two, 1..maxShards
	offRCapacity  = 16                 // u64: length of the region
	offRShardSize = 24                 // u64: bytes per shard, multiple of 64
	// Claim slot j (1..claimSlots) of every shard belongs to the process
	// holding the shm.Mutex at region offset 64·j for as long as it has
	// the dictionary open (see claim.go).
	offRSlotMutex = 64
	regionHdrSize = 64 * (1 + claimSlots) // shards follow, back to back
	maxShards     = 16
	minShardSize  = 8 << 10
	shardPerMiB   = 4 // default: one shard per this many MiB of capacity

	shardMagic = 0x3154434944575250 // "PRWDICT1" read as a little-endian uint64

	// header
	offMagic    = 0  // u64
	offVersion  = 8  // u32
	offHdrSize  = 12 // u32
	offCapacity = 16 // u64: length of the region
	offNBuckets = 24 // u32: power of two
	offBuckets  = 28 // u32: offset of the bucket array (u32 per bucket)
	offHeap     = 32 // u32: offset of the heap (64-byte aligned)
	offHeapLen  = 36 // u32
	offMaxClass = 40 // u32: largest chunk class the heap can hold
	offMutex    = 64 // 64 bytes: the shm.Mutex
	// The cache line 128–191 holds everything a store of a small item
	// reads or writes besides the lock, so that a store by a process
	// that did not hold the shard last pulls one line of it across, not
	// three: the LRU ends, the sequence number, the free byte count, the
	// TTL item count and the free lists of classes 0–7 (up to 8 KiB).
	offLRUHead    = 128 // u32: most recently used item
	offLRUTail    = 132 // u32: least recently used item
	offSeq        = 136 // u64: last write sequence number
	offFreeBytes  = 144 // u64: bytes in free chunks
	offTTLItems   = 152 // u64: items with an expiry (0: stores skip the expiry sweep)
	offFreeLists  = 160 // u32 × numClasses: free-list heads per class
	offItems      = 264 // u64: live (committed) items, expired ones included
	offEvictions  = 272 // u64: live items evicted to make room
	offRecoveries = 280 // u64: index rebuilds after a lock holder died
	offResets     = 288 // u64: times the heap was unreadable and wiped
	offDropped    = 296 // u64: malformed items dropped by rebuilds
	offDeadClaims = 304 // u64: claimed overwrites of dead processes finished by others
	hdrSize       = 320

	// Journal slots follow the header: a store that overwrites an item
	// in place writes the new fields and value to a slot first (a redo
	// journal), so that a writer killed mid-write leaves the new value
	// recoverable. Slot 0 is written by overwrites under the shard lock;
	// slot j ≥ 1 only by the one process that owns claim slot j, for
	// overwrites that claim the item instead of taking the lock.
	offJournal      = hdrSize
	claimSlots      = 7
	journalSlots    = 1 + claimSlots
	journalSlotSize = 320 // bytes; multiple of 64
	jTarget         = 0   // u32: offset of the item rewritten
	jType           = 4   // u8: value type
	jFlags          = 8   // u32: user flags
	jValLen         = 12  // u32
	jExpire         = 16  // i64
	jSeq            = 24  // u64: the item's new sequence number
	jBase           = 32  // u64: claims: the item's sequence number when claimed
	jOwnerPID       = 40  // u32: claims: pid of the claimer
	jOwnerStart     = 48  // u64: claims: start time of the claimer (internal/proc)
	jBusy           = 56  // u32: claims: 1 while one of the owner's goroutines uses the slot
	jValue          = 64  // the new value
	journalMaxValue = 224

	mutexSize = 64

	// chunks (items and free chunks)
	minShift   = 6 // smallest chunk: 64 bytes
	numClasses = 26
	chClass    = 0  // u8: chunk size is 64 << class
	chState    = 1  // u8: stateFree, stateAlloc, stateLive
	chType     = 2  // u8: Type of the value
	chRef      = 3  // u8: 1 = read since it was last at the LRU head
	chFlags    = 4  // u32: user flags
	chHNext    = 8  // u32: next item in the bucket chain
	chPrev     = 12 // u32: LRU previous (towards head) / free-list previous
	chNext     = 16 // u32: LRU next (towards tail) / free-list next
	chKeyLen   = 20 // u32
	chValLen   = 24 // u32
	chHash     = 28 // u32: high 32 bits of hashKey(key)
	chExpire   = 32 // i64: expiry, Unix milliseconds; 0 = never
	chSeq      = 40 // u64: write sequence number (rebuilds keep the newest)
	chKey      = 48 // key bytes; the value follows at align8(48+keylen)

	stateFree  = 1
	stateAlloc = 2 // taken, being written: not yet part of the dictionary
	stateLive  = 3
	// stateRewrite marks a live item being overwritten in place under the
	// lock: its value may be torn, and journal slot 0 holds the new one.
	stateRewrite = 4
	// stateRewrite+j (j = 1..claimSlots) marks a live item claimed by the
	// owner of claim slot j, which overwrites it from its journal slot j
	// without the lock.
	stateClaimMax = stateRewrite + claimSlots

	// list values: a header, then elements [tag u32][payload][tag u32],
	// tag = len(payload)<<2 | element type, packed between head and tail.
	lsHead  = 0 // u32: offset in the value of the first element
	lsTail  = 4 // u32: offset just past the last element (head|tail is one u64 store)
	lsCount = 8 // u32
	lsData  = 16

	// MaxKeyLen is the longest key, as in ngx.shared.DICT.
	MaxKeyLen = 65535
	// MinCapacity is the smallest capacity Open accepts.
	MinCapacity = 16 << 10
	// MaxCapacity is the largest capacity: offsets are 32-bit.
	MaxCapacity = 1<<32 - 64
)

func align8(n uint32) uint32 { return (n + 7) &^ 7 }

func classSize(c uint8) uint32 { return 64 << c }

// geometry computes where the parts of a region of n bytes go.
func geometry(n int) (nbuckets, buckets, heap, heapLen uint32, maxClass uint8) {
	// One bucket per 128 bytes of heap keeps chains short even when the
	// heap is full of the smallest chunks (two per bucket) at ~3% overhead.
	nb := uint32(1) << (bits.Len64(uint64(n)/128) - 1)
	if nb < 16 {
		nb = 16
	}
	buckets = offJournal + journalSlots*journalSlotSize
	heap = (buckets + nb*4 + 63) &^ 63
	heapLen = (uint32(n) - heap) &^ 63
	maxClass = uint8(bits.Len32(heapLen>>minShift) - 1)
	if maxClass >= numClasses {
		maxClass = numClasses - 1
	}
	return nb, buckets, heap, heapLen, maxClass
}

// defaultShards is the shard count for a capacity: one per 4 MiB, a power
// of two, at most maxShards. Small dictionaries keep one shard, so their
// LRU order is exact and an item may use the whole capacity.
func defaultShards(capacity int) int {
	n := 1
	for n*2 <= maxShards && uint64(n*2)*shardPerMiB<<20 <= uint64(capacity) {
		n *= 2
	}
	return n
}

func shardSize(capacity, shards int) int { return ((capacity - regionHdrSize) / shards) &^ 63 }

// initRegion lays out an empty dictionary of the given shard count over
// zeroed memory.
func initRegion(b []byte, shards int) error {
	if len(b) < MinCapacity || uint64(len(b)) > MaxCapacity {
		return fmt.Errorf("dict: capacity %d out of range [%d, %d]", len(b), MinCapacity, uint64(MaxCapacity))
	}
	if shards < 1 || shards > maxShards || shards&(shards-1) != 0 {
		return fmt.Errorf("dict: %d shards: want a power of two from 1 to %d", shards, maxShards)
	}
	size := shardSize(len(b), shards)
	if size < minShardSize {
		return fmt.Errorf("dict: capacity %d is too small for %d shards", len(b), shards)
	}
	le := binary.LittleEndian
	le.PutUint32(b[offRVersion:], layoutVersion)
	le.PutUint32(b[offRShards:], uint32(shards))
	le.PutUint64(b[offRCapacity:], uint64(len(b)))
	le.PutUint64(b[offRShardSize:], uint64(size))
	for i := 0; i < shards; i++ {
		initShard(shardBytes(b, i, size))
	}
	// The magic goes last: a region is never taken for a dictionary
	// before it is completely laid out.
	le.PutUint64(b[offRMagic:], regionMagic)
	return nil
}

func shardBytes(b []byte, i, size int) []byte {
	off := regionHdrSize + i*size
	return b[off : off+size : off+size]
}

// validateRegion checks the region header and every shard header, and
// returns the shard count and size.
func validateRegion(b []byte) (shards, size int, err error) {
	if len(b) < regionHdrSize {
		return 0, 0, fmt.Errorf("%w: region of %d bytes is shorter than the header", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint64(b[offRMagic:]); m != regionMagic {
		return 0, 0, fmt.Errorf("%w: bad magic %#x", ErrCorrupt, m)
	}
	if v := le.Uint32(b[offRVersion:]); v != layoutVersion {
		return 0, 0, fmt.Errorf("%w: layout version %d, want %d", ErrCorrupt, v, layoutVersion)
	}
	if c := le.Uint64(b[offRCapacity:]); c != uint64(len(b)) {
		return 0, 0, fmt.Errorf("%w: header says capacity %d, region has %d bytes", ErrCorrupt, c, len(b))
	}
	n := le.Uint32(b[offRShards:])
	if n < 1 || n > maxShards || n&(n-1) != 0 {
		return 0, 0, fmt.Errorf("%w: %d shards", ErrCorrupt, n)
	}
	shards = int(n)
	size = shardSize(len(b), shards)
	if le.Uint64(b[offRShardSize:]) != uint64(size) || size < minShardSize {
		return 0, 0, fmt.Errorf("%w: shard size %d does not match capacity %d", ErrCorrupt, le.Uint64(b[offRShardSize:]), len(b))
	}
	for i := 0; i < shards; i++ {
		if err := validateShard(shardBytes(b, i, size)); err != nil {
			return 0, 0, fmt.Errorf("shard %d: %w", i, err)
		}
	}
	return shards, size, nil
}

// initShard lays out an empty table over zeroed memory.
func initShard(b []byte) {
	nb, buckets, heap, heapLen, maxClass := geometry(len(b))
	le := binary.LittleEndian
	le.PutUint32(b[offVersion:], layoutVersion)
	le.PutUint32(b[offHdrSize:], hdrSize)
	le.PutUint64(b[offCapacity:], uint64(len(b)))
	le.PutUint32(b[offNBuckets:], nb)
	le.PutUint32(b[offBuckets:], buckets)
	le.PutUint32(b[offHeap:], heap)
	le.PutUint32(b[offHeapLen:], heapLen)
	le.PutUint32(b[offMaxClass:], uint32(maxClass))
	t := &table{data: b}
	t.setGeometry()
	t.resetHeap()
	le.PutUint64(b[offMagic:], shardMagic)
}

// validateShard checks that b holds a table header this code can read, so
// that a foreign or damaged region is refused, never misread.
func validateShard(b []byte) error {
	if len(b) < hdrSize {
		return fmt.Errorf("%w: region of %d bytes is shorter than the header", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint64(b[offMagic:]); m != shardMagic {
		return fmt.Errorf("%w: bad magic %#x", ErrCorrupt, m)
	}
	if v := le.Uint32(b[offVersion:]); v != layoutVersion {
		return fmt.Errorf("%w: layout version %d, want %d", ErrCorrupt, v, layoutVersion)
	}
	if h := le.Uint32(b[offHdrSize:]); h != hdrSize {
		return fmt.Errorf("%w: header size %d, want %d", ErrCorrupt, h, hdrSize)
	}
	if c := le.Uint64(b[offCapacity:]); c != uint64(len(b)) {
		return fmt.Errorf("%w: header says capacity %d, region has %d bytes", ErrCorrupt, c, len(b))
	}
	nb, buckets, heap, heapLen, maxClass := geometry(len(b))
	if le.Uint32(b[offNBuckets:]) != nb || le.Uint32(b[offBuckets:]) != buckets ||
		le.Uint32(b[offHeap:]) != heap || le.Uint32(b[offHeapLen:]) != heapLen ||
		le.Uint32(b[offMaxClass:]) != uint32(maxClass) {
		return fmt.Errorf("%w: geometry fields do not match capacity %d", ErrCorrupt, len(b))
	}
	return nil
}

// Field access. Plain loads and stores are enough for everything read or
// written under the lock; store64 is used where a single 8-byte store is
// the commit point of an update, so a holder killed mid-update leaves
// either the old or the new word, never a mix.

func (t *table) u8(o uint32) uint8        { return t.data[o] }
func (t *table) put8(o uint32, v uint8)   { t.data[o] = v }
func (t *table) u32(o uint32) uint32      { return binary.LittleEndian.Uint32(t.data[o : o+4]) }
func (t *table) put32(o uint32, v uint32) { binary.LittleEndian.PutUint32(t.data[o:o+4], v) }
func (t *table) u64(o uint32) uint64      { return binary.LittleEndian.Uint64(t.data[o : o+8]) }
func (t *table) put64(o uint32, v uint64) { binary.LittleEndian.PutUint64(t.data[o:o+8], v) }

func (t *table) store64(o uint32, v uint64) {
	_ = t.data[o+7]
	// The word must land in memory little-endian, as every other field,
	// whatever the host's byte order.
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&t.data[o])), binary.NativeEndian.Uint64(b[:]))
}

func get32(c *[chKey]byte, f int) uint32    { return binary.LittleEndian.Uint32(c[f:]) }
func put32(c *[chKey]byte, f int, v uint32) { binary.LittleEndian.PutUint32(c[f:], v) }
