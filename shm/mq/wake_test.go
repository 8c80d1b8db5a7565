//go:build linux

package mq

import (
	"context"
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
	pr := startPaced(t, q.Name(), n)
	pr.receive(q, uint32(n))
	if err := pr.kid.wait(); err != nil {
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

// pacedReceiver receives the "send-paced" child's numbered messages in
// order and acknowledges each, which lets the child send the next after a
// random pause.
type pacedReceiver struct {
	t     *testing.T
	ctx   context.Context
	kid   *child
	acked *uint64
	got   uint32
	n     int
}

// startPaced starts a "send-paced" child that sends n messages to the
// queue name, each after the last was acknowledged.
func startPaced(t *testing.T, name string, n int) *pacedReceiver {
	t.Helper()
	ackName := name + ".ack"
	ack, err := shm.Create(ackName, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ack.Close(); shm.Remove(ackName) })
	kid := startChild(t, "send-paced", "MQ_NAME="+name, "MQ_N="+itoa(n), "MQ_ACK="+ackName)
	return &pacedReceiver{t: t, ctx: ctxT(t), kid: kid, acked: ackSlot(ack, 0), n: n}
}

// receive receives through q until until messages have come in all,
// checking their order.
func (p *pacedReceiver) receive(q *Queue, until uint32) {
	p.t.Helper()
	for p.got < until {
		_, err := q.ReceiveBatch(p.ctx, func(b []byte) {
			if _, seq := checkMsg(p.t, b); seq != p.got {
				p.t.Fatalf("message %d after %d", seq, p.got)
			}
			p.got++
			atomic.StoreUint64(p.acked, uint64(p.got))
		})
		if err != nil {
			p.t.Fatalf("after %d of %d messages: %v", p.got, p.n, err)
		}
	}
}
