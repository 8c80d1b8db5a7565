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

// load64 is an atomic load of the aligned little-endian word at o.
func (t *table) load64(o uint32) uint64 {
	_ = t.data[o+7]
	v := atomic.LoadUint64((*uint64)(unsafe.Pointer(&t.data[o])))
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], v)
	return binary.LittleEndian.Uint64(b[:])
}

// peek appends the stored bytes of key's value to buf without taking the
// lock, and returns them with the value's type and flags; ok is false if
// the caller must take the lock instead (buf is then returned unchanged).
func (t *table) peek(key string, h uint64, buf []byte) (out []byte, typ Type, flags uint32, ok bool) {
	h32 := uint32(h >> 32)
	klen := uint32(len(key))
	o := t.u32(t.bucket(h))
	for range peekMaxChain {
		if o == 0 || !t.peekOK(o) {
			return buf, 0, 0, false
		}
		seq := t.load64(o + chSeq)
		c := t.hdr(o)
		if c[chState] != stateLive {
			return buf, 0, 0, false
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
		typ, flags = Type(c[chType]), get32(c, chFlags)
		vlen := get32(c, chValLen)
		vo := uint64(o) + uint64(align8(chKey+klen))
		if c[chRef] == 0 || typ < TypeString || typ > TypeBool ||
			binary.LittleEndian.Uint64(c[chExpire:]) != 0 || vo+uint64(vlen) > uint64(len(t.data)) {
			// Marking, expiry and the rest need the lock.
			return buf, 0, 0, false
		}
		out = append(buf, t.data[vo:vo+uint64(vlen)]...)
		if c[chState] != stateLive || t.load64(o+chSeq) != seq {
			return buf, 0, 0, false
		}
		return out, typ, flags, true
	}
	return buf, 0, 0, false
}

// decodeRaw decodes the stored bytes of a scalar value of type typ.
func decodeRaw(typ Type, raw []byte) Value {
	switch typ {
	case TypeNumber:
		if len(raw) == 8 {
			return Value{typ: TypeNumber, num: math.Float64frombits(binary.LittleEndian.Uint64(raw))}
		}
	case TypeBool:
		if len(raw) == 1 {
			return Value{typ: TypeBool, num: float64(raw[0])}
		}
	case TypeString:
		return Value{typ: TypeString, str: string(raw)}
	}
	return Value{}
}
