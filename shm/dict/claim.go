package dict

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/proc"
)

// Claimed overwrites (docs/dict.md §5b).
//
// A Set over an existing scalar item that fits its chunk (see fitsInPlace)
// can synchronize on the item's own state word instead of the shard lock:
// the writer claims the item by a compare-and-swap of its state from live
// to stateRewrite+j, where j is a journal slot owned by this process alone,
// writes the new value from its journal entry, and makes the item live
// again. Two processes storing into one shard then pass only the items'
// cache lines between their cores, not the lock's.
//
// The rules that make this safe:
//
//   - The claimer writes its journal entry (new value, the item's current
//     sequence number, its own identity) before the CAS, and nothing in
//     the item before it has checked, after the CAS, that the shard lock
//     is free, then that its claim state is still on the item (a holder
//     that settled the item before the CAS and unlocked since may have
//     freed it), that the item still has the sequence number it looked up
//     (so it is the item it found) and no expiry, and that no item was
//     written into the shard since it started (the shard's seq, so that
//     the CAS hit a chunk start). Otherwise it undoes the CAS (unclaim),
//     having changed nothing else, and the caller takes the lock.
//   - Every holder of the shard lock calls settle on an item before it
//     reads or writes the item's value, type, flags, reference byte,
//     expiry or sequence number, or frees it. settle waits for a claim
//     to end, or finishes the claim of a dead process from its journal
//     entry. Since the claimer checks the lock word after its CAS and the
//     lock holder checks the state after taking the lock (both with
//     locked instructions: Dekker's pattern), a claim that was not seen
//     by settle sees the lock and backs off: once a holder has settled
//     an item, no claim of it can complete until the lock is released.
//     A claim that backs off changes the state byte only, and gives it
//     back with a CAS that touches that byte alone.
//   - Claimed items have no expiry before and after (claims never change
//     ttlItems); only stores without a TTL claim.

// claimer is a Dict's claim slot: journal slot j of every shard, owned by
// this process while the dictionary is open (the shm.Mutex at region
// offset 64·j). The process's goroutines share it, one claim at a time per
// shard, by the slot's busy word.
type claimer struct {
	j       uint32 // 1..claimSlots; 0: no slot, every store takes the lock
	pid     uint32
	start   uint64
	release func() // gives the slot back
}

// cas64 is a compare-and-swap of the aligned 8-byte word at o, in host
// byte order (claims run on amd64 only, see peekReads).
func (t *table) cas64(o uint32, old, new uint64) bool {
	return atomic.CompareAndSwapUint64((*uint64)(unsafe.Pointer(&t.data[o : o+8][0])), old, new)
}

// isClaim reports whether a chunk state is a claim by some slot.
func isClaim(st uint8) bool { return st > stateRewrite && st <= stateClaimMax }

// withState returns the chunk word w (class, state, type, reference,
// flags, read as a little-endian uint64) with its state byte set to st.
func withState(w uint64, st uint8) uint64 { return w&^(0xff<<(8*chState)) | uint64(st)<<(8*chState) }

func stateOf(w uint64) uint8 { return uint8(w >> (8 * chState)) }

// setClaimed overwrites key's item with v in place by claiming it (see the
// comment at the top of this file). It reports false, having changed
// nothing in the dictionary, when that does not apply; the caller then
// takes the lock.
func (d *Dict) setClaimed(t *table, key string, h uint64, v Value, vlen, flags uint32) bool {
	cl := &d.claim
	j := offJournal + cl.j*journalSlotSize
	// The busy word keeps this process's goroutines off the slot while
	// one of them uses it. It is on a line only this process writes;
	// storing 0 releases it, after the claim's stores (x86 keeps stores
	// in order, and so does the Go compiler).
	if !atomic.CompareAndSwapUint32((*uint32)(unsafe.Pointer(&t.data[j+jBusy : j+jBusy+4][0])), 0, 1) {
		return false
	}
	defer t.put32(j+jBusy, 0)
	hs := t.load64(offSeq)
	// With items that can expire, a store first sweeps the LRU tail,
	// which needs the lock.
	if t.load64(offTTLItems) != 0 {
		return false
	}
	var (
		o    uint32
		seq  uint64
		busy = true
	)
	for i := 0; o == 0 && busy && i < peekTries; i++ {
		o, seq, busy = t.peekFind(key, h)
	}
	if o == 0 {
		return false
	}
	c := t.hdr(o)
	if typ := Type(c[chType]); typ < TypeString || typ > TypeBool || binary.LittleEndian.Uint64(c[chExpire:]) != 0 {
		return false
	}
	w := t.load64(o)
	if class, fits := t.classFor(align8(chKey+uint32(len(key))) + vlen); !fits || class != uint8(w) || stateOf(w) != stateLive {
		return false
	}
	t.writeEntry(j, o, v, vlen, flags, 0, max(hs, seq)+1)
	jh := (*[jValue]byte)(t.data[j : j+jValue])
	binary.LittleEndian.PutUint64(jh[jBase:], seq)
	put32j(jh, jOwnerPID, cl.pid)
	binary.LittleEndian.PutUint64(jh[jOwnerStart:], cl.start)
	st := stateRewrite + uint8(cl.j)
	if t.load64(offSeq) != hs || !t.cas64(o, w, withState(w, st)) {
		return false
	}
	// The lock word reads 0 also when a holder that had already settled
	// o (and so will not look at its state again) held the lock at the
	// CAS and has released it since: such a holder may have freed o or
	// rewritten it, storing another state over the claim without changing
	// anything else checked here. Reading the state after the lock word
	// sees that holder's stores.
	if atomic.LoadUint64(t.word) != 0 || t.load64(offSeq) != hs ||
		t.load64(o+chSeq) != seq || t.load64(o+chExpire) != 0 || t.state(o) != st {
		t.unclaim(o, st)
		return false
	}
	t.applyJournal(o, j)
	return true
}

// unclaim gives back a claim (state st) that changed nothing: it restores
// the live state unless someone already stored another state, and leaves
// every other byte of the word as it is now.
func (t *table) unclaim(o uint32, st uint8) {
	for {
		w := t.load64(o)
		if stateOf(w) != st || t.cas64(o, w, withState(w, stateLive)) {
			return
		}
	}
}

// settle returns once item o is not claimed, finishing the claim itself if
// the claimer died. The lock must be held: then no later claim of o can
// complete before it is released (see the top of this file).
func (t *table) settle(o uint32) {
	if isClaim(t.state(o)) {
		t.awaitClaim(o)
	}
}

// awaitClaim waits for the claim of item o to end. A claim lasts tens of
// nanoseconds unless the claimer was descheduled or died: spin, then
// yield, then sleep and check, through /proc, whether the claimer lives.
func (t *table) awaitClaim(o uint32) {
	for i := 0; ; i++ {
		st := t.state(o)
		if !isClaim(st) {
			return
		}
		switch {
		case i < 100:
		case i < 300:
			runtime.Gosched()
		default:
			if t.endClaim(o, st, false) {
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// endClaim ends the claim st of item o, under the lock, if it cannot end
// by itself, and reports whether o is no longer claimed by st.
//
// A live claimer's entry names its item from before its CAS until after
// its claim ends, so a claim whose entry names another item was never
// going to write o (it is backing off, or its entry was lost): it is
// given back. A claim whose claimer died (dead: known to be) is finished:
// if o still has the sequence number the entry says it claimed, or
// already the new one, the overwrite is completed from the entry (redo);
// otherwise the claimer had not passed its checks and wrote nothing in o,
// and the claim is given back.
func (t *table) endClaim(o uint32, st uint8, dead bool) bool {
	if t.state(o) != st {
		return true
	}
	j := offJournal + uint32(st-stateRewrite)*journalSlotSize
	if t.u32(j+jTarget) != o {
		t.unclaim(o, st)
		return true
	}
	owner := proc.ID{PID: int32(t.u32(j + jOwnerPID)), Start: t.u64(j + jOwnerStart)}
	if !dead && proc.Alive(owner) {
		return false
	}
	// The new sequence number is no proof that the claimer wrote it: the
	// first item written in the shard after the claimer read its seq gets
	// the same number, and may have taken o's chunk (k deleted, another
	// key stored) between the claimer's last check and its CAS. The
	// claimer stores the number after the value, so a claim that got that
	// far left the entry's value in the item.
	seq := t.u64(o + chSeq)
	if t.entryFits(o, j) && t.u64(o+chExpire) == 0 && t.u64(j+jExpire) == 0 &&
		(seq == t.u64(j+jBase) || seq == t.u64(j+jSeq) && t.holdsEntry(o, j)) {
		t.applyJournal(o, j)
	} else {
		t.unclaim(o, st)
	}
	t.put64(offDeadClaims, t.u64(offDeadClaims)+1)
	t.log.Warn("dict: finished the overwrite of a process that died during it", "item", o,
		"pid", owner.PID, "deadClaims", t.u64(offDeadClaims))
	return true
}

// finishSlot finishes, in every shard, a claim left by the previous owner
// of claim slot j, which died (its mutex said so): its new owner is about
// to overwrite the journal entries that such a claim needs. The heap walk
// makes sure only chunk starts are taken for items. The slot's busy words
// are cleared: the dead owner may have left them set.
func (d *Dict) finishSlot(j uint32) {
	st := stateRewrite + uint8(j)
	for i := range d.shards {
		d.shards[i].locked(func(t *table) error {
			t.put32(offJournal+j*journalSlotSize+jBusy, 0)
			return t.walk(func(o uint32, _, s uint8) error {
				if s == st {
					t.endClaim(o, st, true)
				}
				return nil
			})
		})
	}
}

// holdsEntry reports whether item o already holds the type, flags and
// value of the (fitting) journal entry at j.
func (t *table) holdsEntry(o, j uint32) bool {
	jh := (*[jValue]byte)(t.data[j : j+jValue])
	vlen := get32j(jh, jValLen)
	vo := t.valOff(o)
	return t.u8(o+chType) == jh[jType] && t.u32(o+chFlags) == get32j(jh, jFlags) &&
		t.u32(o+chValLen) == vlen && string(t.data[vo:vo+vlen]) == string(t.data[j+jValue:j+jValue+vlen])
}

// entryFits reports whether the journal entry at j is well formed and fits
// the chunk of item o.
func (t *table) entryFits(o, j uint32) bool {
	size := classSize(t.u8(o + chClass))
	klen := t.u32(o + chKeyLen)
	jh := (*[jValue]byte)(t.data[j : j+jValue])
	vlen := get32j(jh, jValLen)
	switch typ := Type(jh[jType]); {
	case vlen > journalMaxValue, klen == 0 || klen > MaxKeyLen,
		uint64(align8(chKey+klen))+uint64(vlen) > uint64(size),
		typ < TypeString || typ > TypeBool,
		typ == TypeNumber && vlen != 8, typ == TypeBool && vlen != 1:
		return false
	}
	return true
}
