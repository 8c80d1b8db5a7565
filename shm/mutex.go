package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/futex"
	"github.com/procwire/procwire/internal/proc"
)

// MutexSize is the number of bytes a Mutex occupies in shared memory: one
// cache line, so that a hot lock does not share its line with data.
const MutexSize = 64

// Lock word, a uint64 at offset 0 of the Mutex's bytes (see docs/shm.md):
//
//	bits  0..29  owner pid (0: unlocked)
//	bit  31      waiters: someone may sleep on the futex
//	bits 32..63  low 32 bits of the owner's start time
//
// The futex is the low half, which holds the pid and the waiters bit. Putting
// the start time in the same word as the pid means the owner's identity is
// set by the very CAS that takes the lock: there is no window in which a
// process holds the lock without being identifiable.
const (
	pidMask    = 1<<30 - 1
	waitersBit = 1 << 31
	ownerMask  = ^uint64(waitersBit)

	offRecoveries = 8 // uint64 count of takeovers from dead owners
)

// checkInterval is how long a waiter sleeps on the futex before it checks
// whether the owner is still alive: the bound on recovery time, and on how
// late a cancelled context is noticed.
const checkInterval = 20 * time.Millisecond

// spins is how many times Lock yields the processor, retrying, before it
// prepares to sleep.
const spins = 4

// Mutex is a mutual-exclusion lock in shared memory, usable by every
// goroutine of every process that maps it. Its zero bytes are an unlocked
// mutex, so a freshly created segment needs no initialization.
//
// The lock is not reentrant, and it belongs to the process, not to the
// goroutine: any goroutine of the holding process may Unlock it.
//
// If the holding process dies, the next process that waits for the lock
// (or calls TryLock) takes it over within about checkInterval and is told
// so with recovered == true.
type Mutex struct {
	word  *uint64 // in shared memory
	futex *uint32 // the low half of *word
	recov *uint64 // in shared memory
	me    uint64  // this process's lock word, without the waiters bit

	// sleeper admits one goroutine of this process at a time to the futex
	// wait: a futex wait blocks an OS thread, so without it every waiting
	// goroutine would hold one. The others wait on the channel, parked.
	sleeper chan struct{}
}

// MutexAt returns the Mutex stored in b, which must be at least MutexSize
// bytes of shared memory starting at an 8-byte aligned address. It panics
// otherwise. Several Mutex values may refer to the same bytes.
func MutexAt(b []byte) *Mutex {
	if len(b) < MutexSize {
		panic("shm: MutexAt: need " + strconv.Itoa(MutexSize) + " bytes, got " + strconv.Itoa(len(b)))
	}
	p := unsafe.Pointer(&b[0])
	if uintptr(p)%8 != 0 {
		panic("shm: MutexAt: bytes not 8-byte aligned")
	}
	self := proc.Self()
	if self.PID <= 0 || self.PID > pidMask {
		panic("shm: MutexAt: pid " + strconv.Itoa(int(self.PID)) + " does not fit the lock word")
	}
	low := p
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		low = unsafe.Add(p, 4) // big-endian: the low half is the second word
	}
	return &Mutex{
		word:    (*uint64)(p),
		futex:   (*uint32)(low),
		recov:   (*uint64)(unsafe.Add(p, offRecoveries)),
		me:      uint64(self.PID) | uint64(uint32(self.Start))<<32,
		sleeper: make(chan struct{}, 1),
	}
}

// Lock takes the lock, waiting as long as it is held by a live process.
// It returns an error only if ctx ends first; a cancelled ctx is noticed
// within about 20 ms. recovered is true when the previous holder died
// holding the lock: the caller now holds it and must check and repair the
// data it protects.
func (m *Mutex) Lock(ctx context.Context) (recovered bool, err error) {
	if atomic.CompareAndSwapUint64(m.word, 0, m.me) {
		return false, nil
	}
	return m.lockSlow(ctx)
}

func (m *Mutex) lockSlow(ctx context.Context) (bool, error) {
	done := ctx.Done()
	// Critical sections are short: a few yields often see the lock freed
	// without a system call.
	for range spins {
		runtime.Gosched()
		if atomic.CompareAndSwapUint64(m.word, 0, m.me) {
			return false, nil
		}
	}
	select {
	case m.sleeper <- struct{}{}:
	case <-done:
		return false, ctx.Err()
	}
	defer func() { <-m.sleeper }()
	var watched uint64 // the owner word we are waiting on
	var since time.Time
	for {
		old := atomic.LoadUint64(m.word)
		if old == 0 {
			// Others may still sleep: keep the waiters bit so that our
			// Unlock wakes the next one.
			if atomic.CompareAndSwapUint64(m.word, 0, m.me|waitersBit) {
				return false, nil
			}
			continue
		}
		if old&waitersBit == 0 {
			if !atomic.CompareAndSwapUint64(m.word, old, old|waitersBit) {
				continue
			}
			old |= waitersBit
		}
		now := time.Now()
		if old != watched {
			watched, since = old, now
		} else if now.Sub(since) >= checkInterval {
			if m.takeOver(old, waitersBit) {
				return true, nil
			}
			since = now
		}
		timeout := checkInterval
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, max(time.Until(dl), time.Millisecond))
		}
		err := futex.Wait(m.futex, uint32(old), timeout)
		if err != nil && !errors.Is(err, futex.ErrTimeout) {
			time.Sleep(timeout) // no futex (not Linux): poll
		}
		select {
		case <-done:
			if err == nil {
				// We may have been the one sleeper an Unlock woke: pass
				// the wake on, or another sleeper would wait out its
				// timeout with the lock free.
				futex.Wake(m.futex, 1)
			}
			return false, ctx.Err()
		default:
		}
	}
}

// takeOver replaces the lock word old with this process as owner if old's
// owner is dead, and reports whether it did.
func (m *Mutex) takeOver(old uint64, bits uint64) bool {
	owner := old & ownerMask
	if owner == m.me || alive(owner) {
		return false
	}
	if !atomic.CompareAndSwapUint64(m.word, old, m.me|bits) {
		return false // someone else unlocked or recovered it first
	}
	atomic.AddUint64(m.recov, 1)
	return true
}

// alive reports whether the process recorded in the owner part of a lock
// word still runs. Only the low 32 bits of its start time are recorded;
// a new process reusing the pid would also have to have started a multiple
// of 2^32 clock ticks (over a year at 100 Hz) after the dead one.
func alive(owner uint64) bool {
	pid := int32(owner & pidMask)
	start := uint32(owner >> 32)
	if proc.Self().Start == 0 {
		// This process cannot use /proc (see proc.Self): pid only.
		return proc.Alive(proc.ID{PID: pid})
	}
	cur, err := proc.Lookup(pid)
	switch {
	case err == nil:
		// A start time read in another time namespace differs even for
		// the same process: then only the pid can be trusted.
		return start == 0 || uint32(cur.Start) == start || !proc.SameTimeNamespace(pid)
	case errors.Is(err, proc.ErrNotFound):
		return false
	default:
		return true // cannot tell: never steal a lock that may be held
	}
}

// TryLock takes the lock if it is free or its holder is dead, without
// waiting. recovered is true when the previous holder died holding it.
// When the lock is held, TryLock reads /proc to check the holder, which
// costs a few microseconds: prefer Lock to polling with TryLock.
func (m *Mutex) TryLock() (ok, recovered bool) {
	if atomic.CompareAndSwapUint64(m.word, 0, m.me) {
		return true, false
	}
	old := atomic.LoadUint64(m.word)
	if old == 0 {
		return atomic.CompareAndSwapUint64(m.word, 0, m.me), false
	}
	if m.takeOver(old, old&waitersBit) {
		return true, true
	}
	return false, false
}

// Unlock releases the lock. It panics if the lock is not held by this
// process, which means a bug in the caller (or processes in different pid
// namespaces sharing the lock, which is not supported).
func (m *Mutex) Unlock() {
	for {
		old := atomic.LoadUint64(m.word)
		if old&ownerMask != m.me {
			if old == 0 {
				panic("shm: Unlock of unlocked Mutex")
			}
			panic("shm: Unlock of Mutex held by another process (pid " + strconv.Itoa(int(old&pidMask)) + ")")
		}
		if atomic.CompareAndSwapUint64(m.word, old, 0) {
			if old&waitersBit != 0 {
				futex.Wake(m.futex, 1)
			}
			return
		}
	}
}

// Recoveries returns how many times the lock was taken over from a dead
// holder since the segment was created.
func (m *Mutex) Recoveries() uint64 { return atomic.LoadUint64(m.recov) }
