//go:build linux

package shm

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/futex"
)

// TestReviewCancelledWaiterPassesWake: Unlock wakes one futex sleeper. If
// the sleeper it wakes is a Lock whose context was cancelled meanwhile, that
// Lock returns ctx.Err() without taking the lock and without passing the
// wake on, so another sleeper stays asleep while the lock is free: a real
// Lock waiter only notices at its next timeout (up to checkInterval later).
// The other sleeper here waits on the futex without a timeout so that the
// lost wake is seen as such rather than as a delay. Which sleeper the kernel
// wakes depends on their order in the futex queue, so the test tries several
// rounds; one lost wake fails it.
func TestReviewCancelledWaiterPassesWake(t *testing.T) {
	s := newSeg(t, MutexSize)
	holder := MutexAt(s.Data())
	for round := range 20 {
		if _, err := holder.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		w1 := MutexAt(s.Data()) // its own handle: its own futex sleeper
		go func() {
			_, err := w1.Lock(ctx)
			errc <- err
		}()
		for atomic.LoadUint64(holder.word)&waitersBit == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(round%7+1) * time.Millisecond) // w1 asleep by now
		woke := make(chan struct{})
		val := atomic.LoadUint32(holder.futex)
		go func() {
			futex.Wait(holder.futex, val, 0)
			close(woke)
		}()
		time.Sleep(2 * time.Millisecond)
		cancel()
		holder.Unlock()
		if err := <-errc; err == nil {
			holder.Unlock() // w1 took the lock before seeing the cancel
		} else if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		select {
		case <-woke:
		case <-time.After(time.Second):
			futex.Wake(holder.futex, 1<<31-1)
			<-woke
			t.Fatalf("round %d: a cancelled Lock took Unlock's wake and did not pass it on; the other sleeper slept on with the lock free", round)
		}
	}
}
