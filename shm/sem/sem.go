package sem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/futex"
	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm"
)

// MaxValue is the largest count a semaphore can hold.
const MaxValue = 1<<31 - 1

// MaxHolders is how many processes can use Undo on one semaphore at once.
const MaxHolders = 128

// layoutVersion is the version of the data layout below, recorded as the
// segment's kind version.
const layoutVersion = 1

// Errors returned by this package, testable with errors.Is. Returned
// errors wrap them with "sem:", the operation and the semaphore's name.
var (
	ErrNotFound   = errors.New("semaphore not found")
	ErrOverflow   = errors.New("count would exceed MaxValue")
	ErrTooMany    = errors.New("too many processes use Undo on this semaphore")
	ErrClosed     = errors.New("semaphore closed")
	ErrBadInitial = errors.New("initial count out of range")
)

// Options configures Open. A nil *Options is the same as a zero Options.
type Options struct {
	// Mode is the file mode of a created semaphore; 0 means 0600.
	Mode os.FileMode
	// Undo gives back, when this process dies, the units it acquired and
	// has not released.
	Undo bool
}

// Data area layout (see docs/shm.md).
const (
	waitersBit = 1 << 31 // in the value word: someone may sleep on it
	countMask  = waitersBit - 1

	// reclaimEvery rate-limits the scans for dead holders, shared by all
	// processes through the lastScan word.
	reclaimEvery = 10 * time.Millisecond
	// waitSlice is how long a waiter sleeps before it looks for dead
	// holders again and checks its context.
	waitSlice = 50 * time.Millisecond
)

// holder is a table entry: a process using Undo. pid is written last
// when an entry is taken, and 0 marks a free entry.
type holder struct {
	pid   int32
	refs  uint32 // open Undo handles of this process
	start uint64
	held  int64 // units acquired and not released
	_     uint64
}

type layout struct {
	value    uint32 // count | waitersBit; the futex word
	_        uint32
	lastScan int64 // CLOCK_MONOTONIC ns of the last dead-holder scan
	// Undo journal of the update in progress under the mutex.
	jActive uint32
	jSlot   uint32 // table index + 1, or 0
	jValue  uint32 // value word before
	_       uint32
	jHeld   int64 // table entry's held count before
	_       [24]byte
	mu      [shm.MutexSize]byte
	table   [MaxHolders]holder
}

func init() {
	// The layout is part of the on-disk format: check it at start-up.
	if unsafe.Offsetof(layout{}.mu) != 64 || unsafe.Offsetof(layout{}.table) != 128 || unsafe.Sizeof(holder{}) != 32 {
		panic("sem: layout changed")
	}
}

// Sem is an open semaphore. Its methods are safe for concurrent use.
type Sem struct {
	name string
	seg  *shm.Segment
	l    *layout
	mu   *shm.Mutex
	self proc.ID

	// sleeper admits one goroutine of this process at a time to the futex
	// wait, so that waiting goroutines do not each block an OS thread.
	sleeper chan struct{}

	closeOnce sync.Once
	closed    atomic.Bool
	done      chan struct{} // closed by Close, for goroutines waiting their turn to sleep
	slot      int           // table index for Undo, or -1; fixed after Open
}

func segName(name string) string { return "sem." + name }

// Open opens the semaphore called name, creating it with count initial if
// it does not exist. Opening an existing semaphore never changes its count.
// name follows shm's naming rules, 196 bytes at most.
func Open(name string, initial int, opts *Options) (*Sem, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if initial < 0 || initial > MaxValue {
		return nil, fmt.Errorf("sem: open %s: %w: %d", name, ErrBadInitial, initial)
	}
	if err := shm.ValidName(name); err != nil {
		return nil, fmt.Errorf("sem: open: %w", err)
	}
	seg, err := shm.Open(segName(name), int(unsafe.Sizeof(layout{})), &shm.Options{
		Mode:    o.Mode,
		Kind:    shm.KindSem,
		Version: layoutVersion,
		Init: func(data []byte) error {
			(*layout)(unsafe.Pointer(&data[0])).value = uint32(initial)
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sem: open %s: %w", name, err)
	}
	return newSem(name, seg, o)
}

func newSem(name string, seg *shm.Segment, o Options) (*Sem, error) {
	l := (*layout)(unsafe.Pointer(&seg.Data()[0]))
	s := &Sem{name: name, seg: seg, l: l, mu: shm.MutexAt(l.mu[:]), self: proc.Self(), slot: -1,
		sleeper: make(chan struct{}, 1), done: make(chan struct{})}
	if o.Undo {
		if err := s.register(); err != nil {
			seg.Close()
			return nil, fmt.Errorf("sem: open %s: %w", name, err)
		}
	}
	// The mapping goes when the Sem is unreachable, not at Close, so that
	// a call racing with Close (an Acquire asleep on the futex, say) never
	// touches unmapped memory, and no call pays for a reference count.
	runtime.AddCleanup(s, func(seg *shm.Segment) { seg.Close() }, seg)
	return s, nil
}

// Attach opens the existing semaphore called name. It fails with an error
// wrapping ErrNotFound if there is none.
func Attach(name string, opts *Options) (*Sem, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := shm.ValidName(name); err != nil {
		return nil, fmt.Errorf("sem: attach: %w", err)
	}
	seg, err := shm.Attach(segName(name), &shm.Options{Kind: shm.KindSem, Version: layoutVersion})
	if err != nil {
		if errors.Is(err, shm.ErrNotFound) {
			return nil, fmt.Errorf("sem: attach %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("sem: attach %s: %w", name, err)
	}
	// shm.Attach checks the kind and version but not the size: a short data
	// area must be refused before the layout is laid over it.
	if want := int(unsafe.Sizeof(layout{})); seg.Size() < want {
		seg.Close()
		return nil, fmt.Errorf("sem: attach %s: %w: data area is %d bytes, want at least %d", name, shm.ErrIncompatible, seg.Size(), want)
	}
	return newSem(name, seg, o)
}

// Remove deletes the semaphore called name. Processes that have it open
// keep using it; a later Open creates a new one.
func Remove(name string) error {
	if err := shm.ValidName(name); err != nil {
		return fmt.Errorf("sem: remove: %w", err)
	}
	if err := shm.Remove(segName(name)); err != nil {
		if errors.Is(err, shm.ErrNotFound) {
			return fmt.Errorf("sem: remove %s: %w", name, ErrNotFound)
		}
		return fmt.Errorf("sem: remove %s: %w", name, err)
	}
	return nil
}

// Name returns the semaphore's name.
func (s *Sem) Name() string { return s.name }

// Value returns the current count: how many units could be acquired now.
// It returns 0 after Close.
func (s *Sem) Value() int {
	if s.closed.Load() {
		return 0
	}
	v := atomic.LoadUint32(&s.l.value) & countMask
	runtime.KeepAlive(s) // the mapping lives as long as s
	return int(v)
}

// lock takes the mutex and repairs an update interrupted by a dead process.
func (s *Sem) lock(ctx context.Context) error {
	recovered, err := s.mu.Lock(ctx)
	if err != nil {
		return err
	}
	if recovered {
		s.repair()
	}
	return nil
}

// repair rolls back the journaled update, if one was in progress. The
// waiters bit is kept set: a sleeper may depend on it.
func (s *Sem) repair() {
	l := s.l
	if atomic.LoadUint32(&l.jActive) == 0 {
		return
	}
	atomic.StoreUint32(&l.value, atomic.LoadUint32(&l.jValue)|waitersBit)
	// A slot out of range can only come from a corrupt segment; ignore it
	// rather than crash every user.
	if slot := atomic.LoadUint32(&l.jSlot); slot != 0 && slot <= MaxHolders {
		atomic.StoreInt64(&l.table[slot-1].held, atomic.LoadInt64(&l.jHeld))
	}
	atomic.StoreUint32(&l.jActive, 0)
}

// update sets the value word and, if slot >= 0, the held count of that
// table entry; a two-word update is journaled so that a crash in between
// is rolled back. The
// caller holds the mutex. Atomic stores keep the steps in order.
func (s *Sem) update(value uint32, slot int, held int64) {
	l := s.l
	if slot < 0 {
		// One word: the store itself is all or nothing.
		atomic.StoreUint32(&l.value, value)
		return
	}
	atomic.StoreUint32(&l.jValue, atomic.LoadUint32(&l.value))
	atomic.StoreUint32(&l.jSlot, uint32(slot+1))
	atomic.StoreInt64(&l.jHeld, atomic.LoadInt64(&l.table[slot].held))
	atomic.StoreUint32(&l.jActive, 1)
	atomic.StoreUint32(&l.value, value)
	atomic.StoreInt64(&l.table[slot].held, held)
	atomic.StoreUint32(&l.jActive, 0)
}

// Acquire takes one unit, waiting while there is none. It returns ctx's
// error if ctx ends first; a cancelled ctx is noticed within about 50 ms.
func (s *Sem) Acquire(ctx context.Context) error {
	defer runtime.KeepAlive(s) // the mapping lives as long as s
	for {
		if s.closed.Load() {
			return fmt.Errorf("sem: acquire %s: %w", s.name, ErrClosed)
		}
		if err := s.lock(ctx); err != nil {
			return err
		}
		v := atomic.LoadUint32(&s.l.value)
		if v&countMask > 0 {
			s.take(v)
			s.mu.Unlock()
			return nil
		}
		if got, wake := s.reclaim(false); got {
			s.mu.Unlock()
			if wake {
				futex.Wake(&s.l.value, 1<<31-1)
			}
			continue
		}
		s.mu.Unlock()
		if err := s.sleep(ctx); err != nil {
			return err
		}
	}
}

// sleep waits until the count may have become non-zero,
// for at most waitSlice, or until ctx ends. Only one goroutine per Sem
// sleeps on the futex; the others wait for their turn, parked.
func (s *Sem) sleep(ctx context.Context) error {
	select {
	case s.sleeper <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil // Acquire's loop reports the Close
	}
	defer func() { <-s.sleeper }()
	if err := s.lock(ctx); err != nil {
		return err
	}
	// Waiting for the turn may have taken long: look again, then announce
	// the sleep with the waiters bit while still holding the mutex, so
	// that a Release after the unlock is sure to wake us.
	v := atomic.LoadUint32(&s.l.value)
	if v&countMask > 0 {
		s.mu.Unlock()
		return nil
	}
	v |= waitersBit
	atomic.StoreUint32(&s.l.value, v)
	s.mu.Unlock()
	timeout := waitSlice
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), time.Millisecond))
	}
	if err := futex.Wait(&s.l.value, v, timeout); err != nil && !errors.Is(err, futex.ErrTimeout) {
		time.Sleep(timeout) // no futex (not Linux): poll
	}
	return ctx.Err()
}

// take removes one unit from value word v. The caller holds the mutex.
func (s *Sem) take(v uint32) {
	if s.slot >= 0 {
		s.update(v-1, s.slot, atomic.LoadInt64(&s.l.table[s.slot].held)+1)
	} else {
		s.update(v-1, -1, 0)
	}
}

// TryAcquire takes one unit if there is one (after giving back the units
// of dead Undo holders), without waiting.
func (s *Sem) TryAcquire() bool {
	if s.closed.Load() {
		return false
	}
	s.lock(context.Background())
	v := atomic.LoadUint32(&s.l.value)
	wake := false
	if v&countMask == 0 {
		var got bool
		if got, wake = s.reclaim(false); !got {
			s.mu.Unlock()
			runtime.KeepAlive(s) // the mapping lives as long as s
			return false
		}
		v = atomic.LoadUint32(&s.l.value)
	}
	s.take(v)
	s.mu.Unlock()
	if wake {
		futex.Wake(&s.l.value, 1<<31-1)
	}
	runtime.KeepAlive(s)
	return true
}

// Release gives back one unit, waking a waiting process if there is one.
// With Undo, it also lowers this process's held count if it holds any.
func (s *Sem) Release() error {
	if s.closed.Load() {
		return fmt.Errorf("sem: release %s: %w", s.name, ErrClosed)
	}
	s.lock(context.Background())
	v := atomic.LoadUint32(&s.l.value)
	n := v & countMask
	if n == MaxValue {
		s.mu.Unlock()
		runtime.KeepAlive(s) // the mapping lives as long as s
		return fmt.Errorf("sem: release %s: %w", s.name, ErrOverflow)
	}
	if s.slot >= 0 && atomic.LoadInt64(&s.l.table[s.slot].held) > 0 {
		s.update(n+1, s.slot, atomic.LoadInt64(&s.l.table[s.slot].held)-1)
	} else {
		s.update(n+1, -1, 0)
	}
	s.mu.Unlock()
	if v&waitersBit != 0 {
		// Wake them all: the bit does not say how many sleep, and each
		// that finds no unit sets it again and goes back to sleep.
		futex.Wake(&s.l.value, 1<<31-1)
	}
	runtime.KeepAlive(s)
	return nil
}

// Close releases this process's resources for the semaphore: later calls
// fail with ErrClosed (Value returns 0), and Acquires waiting in other
// goroutines return ErrClosed. With Undo, units still held stay held
// until this process exits. The shared memory stays mapped until the Sem
// is garbage collected. Calling Close again does nothing.
func (s *Sem) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		// Wake a goroutine asleep on the futex; one about to sleep sleeps
		// at most waitSlice before it sees the flag.
		futex.Wake(&s.l.value, 1<<31-1)
		if s.slot >= 0 {
			s.lock(context.Background())
			e := &s.l.table[s.slot]
			refs := atomic.LoadUint32(&e.refs) - 1
			atomic.StoreUint32(&e.refs, refs)
			if refs == 0 && atomic.LoadInt64(&e.held) == 0 {
				atomic.StoreInt32(&e.pid, 0)
			}
			s.mu.Unlock()
		}
	})
	return nil
}

// register finds or takes this process's entry in the holder table.
func (s *Sem) register() error {
	s.lock(context.Background())
	defer s.mu.Unlock()
	free := s.findSlot()
	if s.slot >= 0 {
		return nil
	}
	if free < 0 {
		if _, wake := s.reclaim(true); wake {
			defer futex.Wake(&s.l.value, 1<<31-1)
		}
		if free = s.findSlot(); free < 0 {
			return fmt.Errorf("%w (%d)", ErrTooMany, MaxHolders)
		}
	}
	e := &s.l.table[free]
	atomic.StoreUint64(&e.start, s.self.Start)
	atomic.StoreInt64(&e.held, 0)
	atomic.StoreUint32(&e.refs, 1)
	atomic.StoreInt32(&e.pid, s.self.PID) // last: the entry is now taken
	s.slot = free
	return nil
}

// findSlot sets s.slot if this process has an entry (counting one more
// handle on it) and otherwise returns a free entry's index, or -1.
func (s *Sem) findSlot() int {
	free := -1
	for i := range s.l.table {
		e := &s.l.table[i]
		switch pid := atomic.LoadInt32(&e.pid); {
		case pid == 0:
			if free < 0 {
				free = i
			}
		case pid == s.self.PID && atomic.LoadUint64(&e.start) == s.self.Start:
			atomic.StoreUint32(&e.refs, atomic.LoadUint32(&e.refs)+1)
			s.slot = i
			return -1
		}
	}
	return free
}

// reclaim gives back the units held by dead processes and frees their
// entries. Unless force is set, it does nothing if any process scanned in
// the last reclaimEvery. got reports whether units were given back, wake
// whether sleepers must be woken (after the caller unlocks). The caller
// holds the mutex.
func (s *Sem) reclaim(force bool) (got, wake bool) {
	l := s.l
	now := monotonic()
	if last := atomic.LoadInt64(&l.lastScan); !force && now >= last && now-last < int64(reclaimEvery) {
		return false, false
	}
	atomic.StoreInt64(&l.lastScan, now)
	for i := range l.table {
		e := &l.table[i]
		pid := atomic.LoadInt32(&e.pid)
		if pid == 0 {
			continue
		}
		id := proc.ID{PID: pid, Start: atomic.LoadUint64(&e.start)}
		if id == s.self || proc.Alive(id) {
			continue
		}
		if held := atomic.LoadInt64(&e.held); held > 0 {
			v := atomic.LoadUint32(&l.value)
			n := min(int64(v&countMask)+held, MaxValue)
			s.update(uint32(n), i, 0)
			got = true
			wake = wake || v&waitersBit != 0
		}
		atomic.StoreInt32(&e.pid, 0)
	}
	return got, wake
}
