//go:build linux

package shm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/internal/proc/proctest"
)

// TestMutexGoroutines has goroutines contend through two different
// mappings of one segment, as two processes would.
func TestMutexGoroutines(t *testing.T) {
	s := newSeg(t, MutexSize+8)
	a, err := Attach(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for i := range workers {
		seg := s
		if i%2 == 1 {
			seg = a
		}
		m := MutexAt(seg.Data())
		wg.Go(func() {
			for range each {
				if rec, err := m.Lock(context.Background()); err != nil || rec {
					t.Errorf("Lock = %v, %v", rec, err)
					return
				}
				v := *ctr
				if v%16 == 0 {
					yield()
				}
				*ctr = v + 1
				m.Unlock()
			}
		})
	}
	wg.Wait()
	if *ctr != workers*each {
		t.Fatalf("counter = %d, want %d", *ctr, workers*each)
	}
	if w := atomic.LoadUint64((*uint64)(unsafePointer(s.Data()))); w != 0 {
		t.Fatalf("lock word %#x after all unlocked", w)
	}
}

// TestMutexRecoverKilledHolder kills a child holding the lock and checks
// that Lock and TryLock take it over, even before the child is reaped.
func TestMutexRecoverKilledHolder(t *testing.T) {
	for _, mode := range []string{"Lock", "TryLock", "Lock with other waiters"} {
		t.Run(mode, func(t *testing.T) {
			s := newSeg(t, MutexSize)
			m := MutexAt(s.Data())
			c := proctest.Start(t, "hold", s.Name(), "")
			c.WaitLine(t, "locked")
			if ok, _ := m.TryLock(); ok {
				t.Fatal("TryLock succeeded while a live child holds the lock")
			}
			waiters := 0
			var wg sync.WaitGroup
			var recoveredByWaiters atomic.Int32
			if mode == "Lock with other waiters" {
				waiters = 3
				for range waiters {
					wg.Go(func() {
						rec, err := MutexAt(s.Data()).Lock(context.Background())
						if err != nil {
							t.Error(err)
							return
						}
						if rec {
							recoveredByWaiters.Add(1)
						}
						MutexAt(s.Data()).Unlock()
					})
				}
				time.Sleep(30 * time.Millisecond) // let them sleep on the futex
			}
			// SIGKILL but do not reap: a zombie holder is dead too.
			if err := c.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			defer c.Kill()
			if waiters > 0 {
				wg.Wait()
				if n := recoveredByWaiters.Load(); n != 1 {
					t.Fatalf("%d waiters were told they recovered the lock, want exactly 1", n)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var recovered bool
			if mode == "Lock" {
				var err error
				if recovered, err = m.Lock(ctx); err != nil {
					t.Fatal("Lock did not recover the lock of a killed holder:", err)
				}
			} else {
				for {
					var ok bool
					if ok, recovered = m.TryLock(); ok {
						break
					}
					if ctx.Err() != nil {
						t.Fatal("TryLock never recovered the lock of a killed holder")
					}
					time.Sleep(time.Millisecond)
				}
			}
			if !recovered {
				t.Fatal("lock taken over from a dead holder without recovered == true")
			}
			if m.Recoveries() != 1 {
				t.Fatalf("Recoveries() = %d, want 1", m.Recoveries())
			}
			m.Unlock()
			if ok, rec := m.TryLock(); !ok || rec {
				t.Fatalf("TryLock after Unlock = %v, %v; want true, false", ok, rec)
			}
			m.Unlock()
		})
	}
}

// TestMutexOwnerIdentity writes lock words by hand to check how an owner
// is judged: a reused pid (other start time) or a missing pid is dead; this
// process (another goroutine holding it) is alive.
func TestMutexOwnerIdentity(t *testing.T) {
	self := proc.Self()
	for _, tc := range []struct {
		what string
		word uint64
		dead bool
	}{
		{"this process", uint64(self.PID) | uint64(uint32(self.Start))<<32, false},
		{"this process, waiters", uint64(self.PID) | waitersBit | uint64(uint32(self.Start))<<32, false},
		{"reused pid", uint64(self.PID) | uint64(uint32(self.Start)+1)<<32, true},
		{"no such pid", uint64(pidMask) | 5<<32, true},
		{"this pid, unknown start", uint64(self.PID), false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			s := newSeg(t, MutexSize)
			word := (*uint64)(unsafePointer(s.Data()))
			atomic.StoreUint64(word, tc.word)
			m := MutexAt(s.Data())
			ok, rec := m.TryLock()
			if ok != tc.dead || rec != tc.dead {
				t.Fatalf("TryLock = %v, %v; want %v, %v", ok, rec, tc.dead, tc.dead)
			}
			if tc.dead {
				m.Unlock()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 3*checkInterval)
				defer cancel()
				if _, err := m.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Lock of a live owner's lock = %v, want DeadlineExceeded", err)
				}
			}
		})
	}
}

func TestMutexContextCanceled(t *testing.T) {
	s := newSeg(t, MutexSize)
	m := MutexAt(s.Data())
	m.Lock(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := m.Lock(ctx)
		errc <- err
	}()
	time.Sleep(5 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Lock = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock ignored its cancelled context")
	}
	m.Unlock()
	if ok, _ := m.TryLock(); !ok {
		t.Fatal("lock not free after Unlock")
	}
	m.Unlock()
}

func TestMutexMisuse(t *testing.T) {
	s := newSeg(t, 2*MutexSize)
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		f()
	}
	m := MutexAt(s.Data())
	mustPanic("Unlock of unlocked", m.Unlock)
	atomic.StoreUint64((*uint64)(unsafePointer(s.Data())), 1) // held by pid 1
	mustPanic("Unlock of another process's lock", m.Unlock)
	mustPanic("MutexAt short", func() { MutexAt(s.Data()[:MutexSize-1]) })
	mustPanic("MutexAt misaligned", func() { MutexAt(s.Data()[4:]) })
}

// TestMutexWaitersDoNotPinThreads checks that goroutines of one process
// waiting for a held lock do not each block an OS thread in futex_wait.
func TestMutexWaitersDoNotPinThreads(t *testing.T) {
	s := newSeg(t, MutexSize)
	m := MutexAt(s.Data())
	m.Lock(context.Background())
	before := proctest.Threads(t)
	const waiters = 200
	var wg sync.WaitGroup
	for range waiters {
		wg.Go(func() {
			m.Lock(context.Background())
			m.Unlock()
		})
	}
	time.Sleep(200 * time.Millisecond)
	during := proctest.Threads(t)
	m.Unlock()
	wg.Wait()
	t.Logf("threads: %d before, %d with %d waiters", before, during, waiters)
	if during-before > waiters/4 {
		t.Fatalf("%d waiting goroutines grew the process from %d to %d threads", waiters, before, during)
	}
}
