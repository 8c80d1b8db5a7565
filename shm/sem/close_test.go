//go:build linux

package sem

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/proc/proctest"
	"github.com/procwire/procwire/shm"
)

// TestAttachShortSegment: a segment of kind sem, version 1, whose data
// area is smaller than the semaphore's layout (made by a buggy or foreign
// program, or a garbage file with a valid header) is refused with
// ErrIncompatible, rather than read past its end (panic, SIGBUS).
func TestAttachShortSegment(t *testing.T) {
	for _, size := range []int{0, 64} {
		name := semName(t)
		seg, err := shm.Create("sem."+name, size, &shm.Options{Kind: shm.KindSem, Version: layoutVersion})
		if err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Attach of a sem segment with a %d-byte data area panicked: %v", size, r)
				}
			}()
			s, err := Attach(name, nil)
			if err == nil {
				s.Close()
				t.Errorf("Attach of a sem segment with a %d-byte data area succeeded", size)
			} else if !errors.Is(err, shm.ErrIncompatible) {
				t.Errorf("Attach of a sem segment with a %d-byte data area = %v, want ErrIncompatible", size, err)
			}
		}()
		seg.Close()
		shm.Remove(seg.Name())
	}
}

// TestCloseWhileAcquiring: Sem's methods are safe for concurrent use, and
// a Close while another goroutine sleeps in Acquire makes that Acquire
// return ErrClosed, without touching unmapped memory (a fatal fault). Run
// in a child, so that a crash does not take the test binary down.
func TestCloseWhileAcquiring(t *testing.T) {
	if proctest.Role() != "" {
		return
	}
	s := open(t, 0, nil)
	c := proctest.Start(t, "closewhileacquiring", s.Name(), "")
	err := c.Wait()
	if err != nil {
		t.Fatalf("child crashed when Close ran under a waiting Acquire: %v", err)
	}
}

// closeWhileAcquiring is the child of TestCloseWhileAcquiring.
func closeWhileAcquiring(name string) int {
	s, err := Open(name, 0, nil)
	if err != nil {
		return 3
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Acquire(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // asleep in the futex by now
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			return 4
		}
	case <-time.After(10 * time.Second):
		return 5 // Acquire never noticed the Close
	}
	return 0
}
