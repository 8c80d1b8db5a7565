//go:build linux

package dict

import (
	"fmt"
	"unsafe"

	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm"
)

// Open creates the dictionary name with capacity bytes of shared memory, or
// attaches to it if it exists; an existing dictionary keeps its own
// capacity, which must be at least capacity (else the error wraps
// shm.ErrIncompatible). The segment is /dev/shm/procwire.NAME; see shm for the rules
// on names. Open refuses a segment that is not a dictionary of this
// layout version.
func Open(name string, capacity int, opts *Options) (*Dict, error) {
	if capacity < MinCapacity || uint64(capacity) > MaxCapacity {
		return nil, fmt.Errorf("dict: open %q: capacity %d out of range [%d, %d]", name, capacity, MinCapacity, uint64(MaxCapacity))
	}
	so := opts.shmOptions()
	shards := opts.shards(capacity)
	so.Init = func(data []byte) error { return initRegion(data, shards) }
	seg, err := shm.Open(name, capacity, so)
	return attach(name, seg, err, opts)
}

// Attach opens the existing dictionary name; it fails, wrapping
// shm.ErrNotFound, if there is none.
func Attach(name string, opts *Options) (*Dict, error) {
	seg, err := shm.Attach(name, opts.shmOptions())
	return attach(name, seg, err, opts)
}

// Remove deletes the dictionary name. Processes that have it open keep
// using it; the memory is released when the last one closes it.
func Remove(name string) error {
	if err := shm.Remove(name); err != nil {
		return fmt.Errorf("dict: remove %q: %w", name, err)
	}
	return nil
}

func (o *Options) shmOptions() *shm.Options {
	so := &shm.Options{Kind: shm.KindDict, Version: layoutVersion}
	if o != nil {
		so.Mode = o.Mode
	}
	return so
}

// The shard header reserves mutexSize bytes for the lock.
const _ = uint(mutexSize - shm.MutexSize)

func attach(name string, seg *shm.Segment, err error, opts *Options) (*Dict, error) {
	if err != nil {
		return nil, fmt.Errorf("dict: open %q: %w", name, err)
	}
	d, err := newDict(name, seg.Data(), func(b []byte) locker { return shm.MutexAt(b) }, opts)
	if err != nil {
		seg.Close()
		return nil, fmt.Errorf("dict: open %q: %w", name, err)
	}
	for i := range d.shards {
		t := &d.shards[i]
		// The lock word is the first 8 bytes of a shm.Mutex (docs/shm.md).
		t.word = (*uint64)(unsafe.Pointer(&t.data[offMutex]))
	}
	d.peek = peekReads
	d.unmap = seg.Close
	if peekReads {
		d.takeClaimSlot(seg.Data())
	}
	return d, nil
}

// takeClaimSlot makes this Dict the owner of a free claim slot, if there
// is one, so that its stores may claim items instead of taking the lock
// (docs/dict.md §5b). A slot is held by its shm.Mutex for as long as the
// dictionary is open; a slot whose owner died is taken over once the
// claim it may have left is finished. With every slot taken, stores take
// the lock.
func (d *Dict) takeClaimSlot(data []byte) {
	self := proc.Self()
	for j := uint32(1); j <= claimSlots; j++ {
		m := shm.MutexAt(data[offRSlotMutex*j : offRSlotMutex*j+shm.MutexSize])
		ok, recovered := m.TryLock()
		if !ok {
			continue
		}
		if recovered {
			d.finishSlot(j)
		}
		d.claim = claimer{j: j, pid: uint32(self.PID), start: self.Start, release: m.Unlock}
		return
	}
}
