package mq

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// cancelPlatform is memPlatform that records whether a consumer's sleep
// ran to its timeout, reports when the consumer's wake word is woken
// (ring.interrupt), and ends the first sleep at once, as a spurious
// futex wake-up would.
type cancelPlatform struct {
	memPlatform
	wakeWord  atomic.Pointer[uint32]
	woken     chan struct{} // a wake of wakeWord
	waits     atomic.Int32
	timedOut  atomic.Bool
	cancelled atomic.Bool // set by the test once ctx is cancelled
}

func (p *cancelPlatform) wait(addr *uint32, val uint32, timeout time.Duration) bool {
	if addr == p.wakeWord.Load() && p.waits.Add(1) == 1 {
		return true // spurious
	}
	ok := p.memPlatform.wait(addr, val, timeout)
	if !ok && p.cancelled.Load() {
		p.timedOut.Store(true)
	}
	return ok
}

func (p *cancelPlatform) wake(addr *uint32, n int) {
	if addr == p.wakeWord.Load() {
		select {
		case p.woken <- struct{}{}:
		default:
		}
	}
}

// trapCtx is a context whose second Err call (the receive loop's check
// before its second sleep) returns nil, then cancels the context and
// waits for the cancellation's wake-up of the consumer (the AfterFunc
// that receive registered on its first sleep) to happen: a cancellation
// that lands after the check and before the consumer stores its wake
// flag.
type trapCtx struct {
	context.Context
	cancel func()
	plat   *cancelPlatform
	calls  atomic.Int32
}

func (c *trapCtx) Err() error {
	if c.calls.Add(1) != 2 {
		return c.Context.Err()
	}
	err := c.Context.Err()
	c.cancel()
	c.plat.cancelled.Store(true)
	<-c.plat.woken
	return err
}

// TestReceiveCancelDuringSleep: a Receive whose context is cancelled just
// before the consumer goes to sleep must return at once, not after the
// sleep's one-second safety timeout: ring.interrupt clears the wake flag,
// and sleep, which sets it again afterwards, must look at the context
// after that, or the cancellation's only wake-up is lost.
func TestReceiveCancelDuringSleep(t *testing.T) {
	m := newMemLanes(t, MinCapacity, 0, 2)
	plat := &cancelPlatform{woken: make(chan struct{}, 1)}
	r, err := newRing(m.data, plat, ident{pid: 1, start: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plat.wakeWord.Store(r.wake)
	if err := r.claimOwner(); err != nil {
		t.Fatal(err)
	}
	q := newQueue(r, "mem", true, r.maxMsg, -1, nil)
	defer q.Close()
	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := &trapCtx{Context: inner, cancel: cancel, plat: plat}
	start := time.Now()
	_, err = q.Receive(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive: %v, want context.Canceled", err)
	}
	if plat.timedOut.Load() {
		t.Errorf("the consumer slept until its safety timeout after ctx was cancelled (Receive took %v)", time.Since(start))
	}
}
