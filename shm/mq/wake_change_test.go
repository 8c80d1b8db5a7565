//go:build linux

package mq

import (
	"sync/atomic"
	"testing"
)

// TestNoLostWakeupConsumerChange: Options.Fence is a hint read at lease,
// so a producer keeps what it chose when the consumer changes. A paced
// producer process leases its lane under a consumer that lets producers
// skip the fence; half way, that consumer closes and another attaches
// asking producers to fence (and not spinning). The producer stays
// fence-free (in builds with plain stores), and the new consumer, which
// reads the lane's fence flag before each sleep, must still issue the
// membarrier: no sleep may run into its timeout with a message ready.
func TestNoLostWakeupConsumerChange(t *testing.T) {
	n := 40_000
	if testing.Short() {
		n /= 10
	}
	q := createQ(t, 1<<16, &Options{Spin: -1, Fence: FenceConsumer})
	name := q.Name()
	pr := startPaced(t, name, n)
	// Stop acknowledging at n/2, so that the producer waits while the
	// consumer changes.
	pr.receive(q, uint32(n/2))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Create(name, 1<<16, &Options{Spin: -1, Fence: FenceProducers})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if f := atomic.LoadUint32(q2.r.fence); f != 1 {
		t.Fatalf("fence hint %d after the new consumer attached, want 1", f)
	}
	pr.receive(q2, uint32(n))
	if err := pr.kid.wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	if f, want := atomic.LoadUint32(q2.r.lanes[1].fast) != 0, plainStores; f != want {
		t.Errorf("lane marked fence-free: %v, want %v", f, want)
	}
	t.Logf("second consumer: %d messages, went to sleep %d times, slept %d times", n-n/2, q2.r.naps, q2.r.sleeps)
	if q2.r.naps < (n-n/2)/10 {
		t.Errorf("the consumer went to sleep %d times: the test does not test", q2.r.naps)
	}
	if q2.r.lateWakes != 0 {
		t.Errorf("%d wake-ups lost (caught by the sleep's timeout)", q2.r.lateWakes)
	}
}
