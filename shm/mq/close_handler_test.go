package mq

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestCloseInHandler: a handler that closes the consumer's Queue (on a
// "quit" message, say) must not hang. The receiving call holds the
// consumer's mutex while it runs the handler on the same goroutine, so a
// Close that waited for the mutex would never return, nor would
// ReceiveBatch.
func TestCloseInHandler(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	c := m.queue(1, true)
	p := m.queue(2, false)
	ctx := ctxT(t)
	if err := p.Send(ctx, []byte("quit")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.ReceiveBatch(ctx, func([]byte) { c.Close() })
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ReceiveBatch = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close in a ReceiveBatch handler did not return (deadlock on the consumer's mutex)")
	}
	// The receiving call gave the consumer role up as it returned.
	if o := atomic.LoadUint64(c.r.owner); o != 0 {
		t.Errorf("consumer role still held (owner %#x) after the closed call returned", o)
	}
	if _, err := c.ReceiveBatch(ctx, func([]byte) {}); err != ErrClosed {
		t.Errorf("ReceiveBatch after Close = %v, want ErrClosed", err)
	}
}
