package mq

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// barrierPlatform is memPlatform with a membarrier that works or not,
// recording the timeout of each wait.
type barrierPlatform struct {
	memPlatform
	works    bool
	timeouts chan time.Duration
}

func (p barrierPlatform) barrier() bool { return p.works }

func (p barrierPlatform) wait(addr *uint32, val uint32, timeout time.Duration) bool {
	p.timeouts <- timeout
	return p.memPlatform.wait(addr, val, timeout)
}

// TestSleepBarrier: the consumer sleeps for up to maxSleep unless a
// scanned lane's producer is fence-free and the membarrier it relies on
// fails; then it sleeps for unfencedSleep at most, so that a lost
// wake-up costs a millisecond, not a second.
func TestSleepBarrier(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fast, works bool
		want        time.Duration
	}{
		{"fenced", false, false, maxSleep},
		{"fence-free", true, true, maxSleep},
		{"fence-free, no membarrier", true, false, unfencedSleep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemLanes(t, MinCapacity, 0, 2)
			plat := barrierPlatform{works: tc.works, timeouts: make(chan time.Duration, 1)}
			r, err := newRing(m.data, plat, ident{pid: 1, start: 7}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.reserveLane(1); err != nil {
				t.Fatal(err)
			}
			if tc.fast {
				atomic.StoreUint32(r.lanes[1].fast, 1)
			}
			atomic.StoreUint32(r.high, 2)
			r.attach()
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.sleep(context.Background())
			}()
			select {
			case got := <-plat.timeouts:
				if got != tc.want {
					t.Errorf("slept with timeout %v, want %v", got, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the consumer did not sleep")
			}
			r.interrupt()
			<-done
		})
	}
}

// TestCloseClearsFence: a fence-free producer that closes clears its
// lane's fence flag, so that the consumer stops issuing a barrier before
// each sleep for a lane nobody writes; a fenced one leaves it 0.
func TestCloseClearsFence(t *testing.T) {
	for _, fence := range []Fence{FenceConsumer, FenceProducers} {
		t.Run(fmt.Sprint(fence), func(t *testing.T) {
			c := createQ(t, 1<<16, &Options{Fence: fence})
			p, err := Open(c.Name(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Send(ctxT(t), []byte("x")); err != nil {
				t.Fatal(err)
			}
			flag := func() uint32 { return atomic.LoadUint32(c.r.lanes[p.p.idx].fast) }
			if got, want := flag() != 0, p.p.fenceFree; got != want || (fence == FenceProducers && got) {
				t.Fatalf("lane flag set %v, producer fence-free %v", got, want)
			}
			p.Close()
			if f := flag(); f != 0 {
				t.Errorf("lane flag %d after the producer closed, want 0", f)
			}
		})
	}
}

func TestUnknownFence(t *testing.T) {
	_, err := Create(fmt.Sprintf("mqtest-%d-fence", os.Getpid()), 1<<16, &Options{Fence: 7})
	if err == nil || err.Error() != "mq: unknown Fence(7)" {
		t.Errorf("Create with Fence 7 = %v, want mq: unknown Fence(7)", err)
	}
}
