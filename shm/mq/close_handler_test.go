package mq

import (
	"testing"
	"time"
)

// TestCloseInHandler: a handler that closes the consumer's Queue (on a
// "quit" message, say) must not hang. Close waits for the consumer's
// mutex, which the receiving call holds while it runs the handler on the
// same goroutine: Close never returns, nor does ReceiveBatch.
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
}
