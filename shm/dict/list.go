package dict

import (
	"encoding/binary"
	"math"
)

// A list is one item whose value area holds its elements packed between
// head and tail, with room left on both sides. A push writes the element
// into the room and then publishes it by storing head|tail as one 8-byte
// word; when a side is full the list is copied into a chunk twice the size
// (amortised O(1) per push), or into one that just holds it when memory is
// short. Pops only move head or tail.

const (
	elemString = 1
	elemNumber = 2
)

// LPush inserts v at the head of the list under key, creating the list if
// key is missing or expired, and returns the new length. v must be a string
// or a number (ErrBadValue); a key holding something else gives ErrNotList.
// Lists never evict other items: ErrNoMemory instead.
func (d *Dict) LPush(key string, v Value) (int, error) { return d.push(key, v, true) }

// RPush is LPush at the tail.
func (d *Dict) RPush(key string, v Value) (int, error) { return d.push(key, v, false) }

// LPop removes and returns the head of the list under key. A missing or
// expired key gives ErrNotFound, a non-list ErrNotList. Popping the last
// element deletes the key.
func (d *Dict) LPop(key string) (Value, error) { return d.pop(key, true) }

// RPop is LPop at the tail.
func (d *Dict) RPop(key string) (Value, error) { return d.pop(key, false) }

// LLen returns the length of the list under key: 0 if the key is missing
// or expired, ErrNotList if it is not a list.
func (d *Dict) LLen(key string) (int, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	c := t.clock()
	o := t.find(key, h)
	if o == 0 || t.expired(o, &c) {
		return 0, nil
	}
	if Type(t.u8(o+chType)) != TypeList {
		return 0, ErrNotList
	}
	return int(t.u32(t.valOff(o) + lsCount)), nil
}

func elemPayload(v Value, scratch *[8]byte) (tag uint32, payload []byte, s string, err error) {
	switch v.typ {
	case TypeString:
		if uint64(len(v.str)) >= 1<<30 {
			return 0, nil, "", ErrNoMemory
		}
		return uint32(len(v.str))<<2 | elemString, nil, v.str, nil
	case TypeNumber:
		binary.LittleEndian.PutUint64(scratch[:], math.Float64bits(v.num))
		return 8<<2 | elemNumber, scratch[:], "", nil
	}
	return 0, nil, "", ErrBadValue
}

// putElem writes an element at value offset at and returns its size.
func (t *table) putElem(at, tag uint32, payload []byte, s string) uint32 {
	n := tag >> 2
	t.put32(at, tag)
	if payload != nil {
		copy(t.data[at+4:], payload)
	} else {
		copy(t.data[at+4:], s)
	}
	t.put32(at+4+n, tag)
	return n + 8
}

func (d *Dict) push(key string, v Value, left bool) (int, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	var scratch [8]byte
	tag, payload, s, err := elemPayload(v, &scratch)
	if err != nil {
		return 0, err
	}
	esz := tag>>2 + 8
	t, h, err := d.lockKey(key)
	if err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	c := t.clock()
	t.sweep(&c, 2)
	old := t.find(key, h)
	if old != 0 && t.expired(old, &c) {
		t.remove(old)
		old = 0
	}
	if old == 0 {
		return t.newList(key, h, 0, 0, 0, 0, tag, payload, s, left)
	}
	if Type(t.u8(old+chType)) != TypeList {
		return 0, ErrNotList
	}
	vo := t.valOff(old)
	head, tail, count := t.u32(vo+lsHead), t.u32(vo+lsTail), t.u32(vo+lsCount)
	vlen := t.u32(old + chValLen)
	switch {
	case left && head-lsData >= esz:
		head -= esz
		t.putElem(vo+head, tag, payload, s)
	case !left && vlen-tail >= esz:
		t.putElem(vo+tail, tag, payload, s)
		tail += esz
	default:
		return t.newList(key, h, old, t.u32(old+chFlags), int64(t.u64(old+chExpire)), count, tag, payload, s, left)
	}
	t.store64(vo+lsHead, uint64(head)|uint64(tail)<<32)
	t.put32(vo+lsCount, count+1)
	t.reference(old)
	return int(count + 1), nil
}

// newList writes a new list item holding the elements of list item old
// (0: none) plus the new element, with as much room again on both sides
// (or less, down to none, when memory is short), then replaces old with it.
func (t *table) newList(key string, h uint64, old, flags uint32, expire int64, count, tag uint32, payload []byte, s string, left bool) (int, error) {
	var used, ovo uint32
	if old != 0 {
		ovo = t.valOff(old)
		used = t.u32(ovo+lsTail) - t.u32(ovo+lsHead)
	}
	esz := tag>>2 + 8
	var o uint32
	if want := uint64(lsData) + 2*(uint64(used)+uint64(esz)); want <= math.MaxUint32 {
		o, _ = t.newItem(key, uint32(want), true)
	}
	if o == 0 && old != 0 {
		// No chunk has room for the elements twice over, while the old
		// one still holds them: take one that just holds them, or a list
		// could not grow past about a sixth of the memory.
		if need := uint64(lsData) + uint64(used) + uint64(esz); need <= math.MaxUint32 {
			o, _ = t.newItem(key, uint32(need), true)
		}
	}
	if o == 0 {
		return 0, ErrNoMemory
	}
	if old != 0 {
		t.raiseSeq(old) // the new item must win over it in a rebuild
	}
	// Use the whole chunk: the slack is free room for later pushes.
	vlen := classSize(t.u8(o+chClass)) - align8(chKey+uint32(len(key)))
	t.writeItem(o, key, h, TypeList, vlen, flags, expire)
	vo := t.valOff(o)
	head := lsData + (vlen-lsData-used-esz)/2
	at := head
	if left {
		at += t.putElem(vo+at, tag, payload, s)
	}
	if old != 0 {
		at += uint32(copy(t.data[vo+at:], t.data[ovo+t.u32(ovo+lsHead):ovo+t.u32(ovo+lsTail)]))
	}
	if !left {
		at += t.putElem(vo+at, tag, payload, s)
	}
	t.put64(vo+lsHead, uint64(head)|uint64(at)<<32)
	t.put32(vo+lsCount, count+1)
	t.put32(vo+lsCount+4, 0)
	t.commit(o)
	if old != 0 {
		t.remove(old)
	}
	return int(count + 1), nil
}

func (d *Dict) pop(key string, left bool) (Value, error) {
	if err := checkKey(key); err != nil {
		return Value{}, err
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return Value{}, err
	}
	defer t.mu.Unlock()
	c := t.clock()
	t.sweep(&c, 2)
	o := t.find(key, h)
	if o == 0 || t.expired(o, &c) {
		return Value{}, ErrNotFound
	}
	if Type(t.u8(o+chType)) != TypeList {
		return Value{}, ErrNotList
	}
	vo := t.valOff(o)
	head, tail, count := t.u32(vo+lsHead), t.u32(vo+lsTail), t.u32(vo+lsCount)
	var at uint32
	if left {
		at = head
		head += t.u32(vo+at)>>2 + 8
	} else {
		tail -= t.u32(vo+tail-4)>>2 + 8
		at = tail
	}
	v := t.elem(vo + at)
	if count <= 1 {
		t.remove(o)
		return v, nil
	}
	t.store64(vo+lsHead, uint64(head)|uint64(tail)<<32)
	t.put32(vo+lsCount, count-1)
	t.reference(o)
	return v, nil
}

// elem decodes the element at absolute offset at.
func (t *table) elem(at uint32) Value {
	tag := t.u32(at)
	if tag&3 == elemNumber {
		return Number(math.Float64frombits(t.u64(at + 4)))
	}
	return String(string(t.data[at+4 : at+4+tag>>2]))
}
