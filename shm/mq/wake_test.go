//go:build linux

package mq

import (
	"sync/atomic"
	"testing"

	"github.com/procwire/procwire/shm"
)

// TestNoLostWakeup: a producer process sends one message at a time, each
// after the consumer has taken the last and a random pause, so that the
// consumer, which does not spin, is going to sleep or asleep when nearly
// every message is published, at every point of the way in turn. Every
// wake-up must come from the producer: a sleep that runs into its
// one-second safety timeout with a message ready (lateWakes) is a lost
// wake-up, and 30 such would trip the test's watchdog. It runs with both
// choices of Options.Fence: with FenceConsumer, in a build with plain
// stores (amd64, no race detector), the producer takes the fence-free
// path and the consumer's membarrier is what keeps the wake-ups; with
// FenceProducers, or elsewhere, the producer fences.
func TestNoLostWakeup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fence Fence
		n     int
	}{
		{"consumer", FenceConsumer, 100_000},
		{"producers", FenceProducers, 20_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			if testing.Short() {
				n /= 10
			}
			testNoLostWakeup(t, tc.fence, n)
		})
	}
}

func testNoLostWakeup(t *testing.T, fence Fence, n int) {
	q := createQ(t, 1<<16, &Options{Spin: -1, Fence: fence})
	ackName := q.Name() + ".ack"
	ack, err := shm.Create(ackName, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ack.Close(); shm.Remove(ackName) }()
	acked := ackSlot(ack, 0)
	kid := startChild(t, "send-paced", "MQ_NAME="+q.Name(), "MQ_N="+itoa(n), "MQ_ACK="+ackName)
	ctx := ctxT(t)
	got := uint32(0)
	for int(got) < n {
		_, err := q.ReceiveBatch(ctx, func(b []byte) {
			if _, seq := checkMsg(t, b); seq != got {
				t.Fatalf("message %d after %d", seq, got)
			}
			got++
			atomic.StoreUint64(acked, uint64(got))
		})
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", got, n, err)
		}
	}
	if err := kid.wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	// The child leased lane 1, the first free one.
	if f, want := atomic.LoadUint32(q.r.lanes[1].fast) != 0, plainStores && fence == FenceConsumer; f != want {
		t.Errorf("lane marked fence-free: %v, want %v (plainStores %v, fence %v)", f, want, plainStores, fence)
	}
	t.Logf("%d messages: the consumer went to sleep %d times and slept %d times", n, q.r.naps, q.r.sleeps)
	if q.r.naps < n/10 {
		t.Errorf("the consumer went to sleep %d times for %d messages: the test does not test", q.r.naps, n)
	}
	if q.r.lateWakes != 0 {
		t.Errorf("%d wake-ups lost (caught by the sleep's timeout)", q.r.lateWakes)
	}
}
