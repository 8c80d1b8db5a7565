package dict

import (
	"encoding/binary"
	"math"
	"sync/atomic"
	"unsafe"
)

// Lock-free reads.
//
// A Get that takes the shard lock writes the lock's cache line twice, so
// processes that merely read the same shard pass that line back and forth
// between their cores, which costs more than the lookup. peek reads an
// item without the lock instead, and is trusted only when the item was
// provably the same live item before and after the copy:
//
//   - every field of a live item other than its links, its reference byte,
//     its expiry and a number's or list's 8-byte word is written before the
//     store that makes it live (state 3) and never changed while it is;
//   - freeing an item stores state 1 before anything else, and an item
//     written into the chunk later gets a new, higher write sequence
//     number, stored before its own state 3;
//   - an overwrite in place stores state 4 (rewrite, under the lock) or
//     4+j (a claim, by its CAS: see claim.go) before it changes anything,
//     and the item's new, higher sequence number before state 3 again (a
//     seqlock with those states as the odd count);
//
// so if state is 3 and the sequence number is the same before and after
// the copy, nothing was freed or rewritten in between and the copy is the
// item's value at the first check. (Only a later item whose value happens
// to hold, at those very offsets, state 3 and the old sequence number
// could fool it.) Offsets read without the lock may be
// stale or torn: each is bounds-checked before use and chain walks are
// bounded, so a bad read only makes peek give up. Anything unusual (key
// absent, item expired, a list, a reference mark still to set, a check
// failing) falls back to the locked path, which is the authority.
//
// This relies on the hardware keeping loads in order with loads and stores
// with stores (x86's TSO), which the Go compiler preserves around atomic
// loads; elsewhere peekReads is false and every read takes the lock.

// peekMaxChain bounds a chain walk without the lock: chains average under
// one item, and a longer walk is more likely to be chasing stale links.
const peekMaxChain = 8

// peekOK reports whether an unlocked read may dereference offset o as a
// chunk header: a 64-byte aligned chunk start inside the heap.
func (t *table) peekOK(o uint32) bool {
	return o >= t.heap && o-t.heap < t.heapLen && (o-t.heap)%64 == 0
}

// load64 is an atomic load of the aligned word at o. Like peek, it reads
// shared memory as the little-endian host it runs on (peekReads).
func (t *table) load64(o uint32) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&t.data[o : o+8][0])))
}

// state is an atomic load of the state byte of the chunk at o (the second
// byte of the aligned word at o, on a little-endian host).
func (t *table) state(o uint32) uint8 {
	return uint8(atomic.LoadUint32((*uint32)(unsafe.Pointer(&t.data[o : o+4][0]))) >> (8 * chState))
}

// peeked is an item found by peek: where its value is and what the
// caller must check again (with still) after copying it.
type peeked struct {
	o     uint32
	seq   uint64
	vo    uint64
	vlen  uint32
	typ   Type
	flags uint32
}

// peek finds key's item without taking the lock and describes it in *p;
// it returns false if the caller must take the lock instead. The value may
// be copied out of t.data[p.vo:p.vo+p.vlen], then kept only if still(p)
// holds.
//
// busy reports that it gave up at an item being overwritten in place,
// which a retry in a moment may find live again.
func (t *table) peek(key string, h uint64, p *peeked) (ok, busy bool) {
	h32 := uint32(h >> 32)
	klen := uint32(len(key))
	o := t.u32(t.bucket(h))
	if vo := uint64(o) + uint64(align8(chKey+klen)); vo+72 <= uint64(len(t.data)) {
		// When another process wrote the item last, each of its lines
		// must come from the other core. The value starts where the key
		// says: load its first two lines now, so that they travel with
		// the item's first line rather than after it. The results are
		// not used (the copy reads the lines again once checked); an
		// empty bucket (o = 0) or a stale one makes them read other
		// bytes of the region, harmlessly. It is worth about 7% to a
		// Set/Get mix of keys shared by two processes, and costs about
		// 1 ns when the item is in this core's cache (docs/dict.md §10).
		base := unsafe.Pointer(unsafe.SliceData(t.data))
		atomic.LoadUint64((*uint64)(unsafe.Add(base, vo&^7)))
		atomic.LoadUint64((*uint64)(unsafe.Add(base, (vo+64)&^7)))
	}
	for range peekMaxChain {
		if o == 0 || !t.peekOK(o) {
			return false, false
		}
		seq := t.load64(o + chSeq)
		c := t.hdr(o)
		if st := c[chState]; st != stateLive {
			return false, st >= stateRewrite && st <= stateClaimMax
		}
		if get32(c, chHash) != h32 || get32(c, chKeyLen) != klen {
			o = get32(c, chHNext)
			continue
		}
		if uint64(o)+chKey+uint64(klen) > uint64(len(t.data)) ||
			string(t.data[o+chKey:o+chKey+klen]) != key {
			o = get32(c, chHNext)
			continue
		}
		*p = peeked{o: o, seq: seq, vo: uint64(o) + uint64(align8(chKey+klen)),
			vlen: get32(c, chValLen), typ: Type(c[chType]), flags: get32(c, chFlags)}
		if c[chRef] == 0 || p.typ < TypeString || p.typ > TypeBool ||
			binary.LittleEndian.Uint64(c[chExpire:]) != 0 || p.vo+uint64(p.vlen) > uint64(len(t.data)) ||
			p.typ == TypeNumber && (p.vlen != 8 || p.vo%8 != 0) || p.typ == TypeBool && p.vlen != 1 {
			// Marking, expiry and the rest need the lock.
			return false, false
		}
		return true, false
	}
	return false, false
}

// peekFind is the walk of peek for a store that claims the item: a live
// item (state 3) whose key matched, and its sequence number, loaded
// before the rest was read; o = 0 if there is none, busy as for peek.
// Nothing read is trusted until the sequence number is checked again.
// (peek does not call it: the call costs a Get several percent.)
func (t *table) peekFind(key string, h uint64) (o uint32, seq uint64, busy bool) {
	h32 := uint32(h >> 32)
	klen := uint32(len(key))
	o = t.u32(t.bucket(h))
	for range peekMaxChain {
		if o == 0 || !t.peekOK(o) {
			return 0, 0, false
		}
		seq = t.load64(o + chSeq)
		c := t.hdr(o)
		if st := c[chState]; st != stateLive {
			return 0, 0, st >= stateRewrite && st <= stateClaimMax
		}
		if get32(c, chHash) == h32 && get32(c, chKeyLen) == klen &&
			uint64(o)+chKey+uint64(klen) <= uint64(len(t.data)) && string(t.data[o+chKey:o+chKey+klen]) == key {
			return o, seq, false
		}
		o = get32(c, chHNext)
	}
	return 0, 0, false
}

// peekTries bounds the lock-free attempts of a read or a claim that met
// an item being overwritten: an overwrite lasts tens of nanoseconds,
// while giving up takes the lock, which stops every claim in the shard.
const peekTries = 4

// still reports whether the item peek found is still the same live item,
// so that what was copied from it in between is its value.
func (t *table) still(p *peeked) bool {
	return t.state(p.o) == stateLive && t.load64(p.o+chSeq) == p.seq
}

// peekValue reads a scalar value found by peek; ok as for still.
func (t *table) peekValue(p *peeked) (v Value, ok bool) {
	switch p.typ {
	case TypeString:
		b := make([]byte, p.vlen)
		copy(b, t.data[p.vo:])
		v = Value{typ: TypeString, str: unsafe.String(unsafe.SliceData(b), len(b))}
	case TypeNumber:
		v = Value{typ: TypeNumber, num: math.Float64frombits(t.load64(uint32(p.vo)))}
	case TypeBool:
		v = Value{typ: TypeBool, num: float64(t.data[p.vo])}
	}
	return v, t.still(p)
}
