//go:build linux

package mq

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

var benchCases = []struct {
	name            string
	producers, size int
	batch           bool
}{
	{"1p/10B", 1, 10, false},
	{"1p/10KB", 1, 10 << 10, false},
	{"4p/10B", 4, 10, false},
	{"1p/10B/batch64", 1, 10, true},
	{"4p/10B/batch64", 4, 10, true},
}

// BenchmarkGoroutines: producers and the consumer are goroutines of this
// process, each producer with its own Queue (as separate processes would
// have), on a real segment with real futexes.
func BenchmarkGoroutines(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			benchPipe(b, func() (*Queue, func(int) *Queue) {
				c := createQ(b, 1<<20, nil)
				return c, func(int) *Queue {
					p, err := Open(c.Name(), nil)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { p.Close() })
					return p
				}
			}, bc.producers, bc.size, bc.batch)
		})
	}
}

// BenchmarkProcesses: each producer is a separate process.
func BenchmarkProcesses(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			c := createQ(b, 1<<20, nil)
			ctx := context.Background()
			var kids []*child
			for i := range bc.producers {
				n := b.N / bc.producers
				if i == 0 {
					n += b.N % bc.producers
				}
				env := []string{"MQ_NAME=" + c.Name(), "MQ_N=" + itoa(n), "MQ_SIZE=" + itoa(bc.size)}
				if bc.batch {
					env = append(env, "MQ_BATCH=1")
				}
				kids = append(kids, startChild(b, "send", env...))
			}
			// Each child sends "ready" first; time from the first one.
			if _, err := c.Receive(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(bc.size))
			b.ResetTimer()
			start := time.Now()
			got := 0
			for got < b.N+bc.producers-1 {
				n, err := c.ReceiveBatch(ctx, func([]byte) {})
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			for _, k := range kids {
				if err := k.wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPingPong measures a round trip between two goroutines through
// two queues whose consumers do not spin, so that every message finds its
// consumer going to sleep or asleep: the idle-to-busy wake-up, twice per
// operation, with the producers fenced (the default for such consumers)
// and with the consumers' membarrier before each sleep instead.
func BenchmarkPingPong(b *testing.B) {
	for _, bc := range []struct {
		name  string
		fence Fence
	}{{"producers", FenceProducers}, {"consumer", FenceConsumer}} {
		b.Run("fence="+bc.name, func(b *testing.B) { benchPingPong(b, bc.fence) })
	}
}

func benchPingPong(b *testing.B, fence Fence) {
	ping := createQ(b, 1<<16, &Options{Spin: -1, Fence: fence})
	pong, err := Create(ping.Name()+"-pong", 1<<16, &Options{Spin: -1, Fence: fence})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		pong.Close()
		Remove(pong.Name())
	})
	pingP, err := Open(ping.Name(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pingP.Close()
	pongP, err := Open(pong.Name(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pongP.Close()
	ctx := context.Background()
	msg := make([]byte, 10)
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := ping.Receive(ctx); err != nil {
				done <- err
				return
			}
			if err := pongP.Send(ctx, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pingP.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := pong.Receive(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWakeup measures the latency of a message sent to a consumer
// that is asleep: from just before Send to Receive's return, reported as
// ns/wake. Each operation first waits until the consumer has gone to
// sleep (its wake flag is set) and a little more, so that it is in the
// futex wait; the membarrier it issues on its way to sleep is therefore
// not part of the latency.
func BenchmarkWakeup(b *testing.B) {
	c := createQ(b, 1<<16, &Options{Spin: -1})
	p, err := Open(c.Name(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	msg := make([]byte, 10)
	var got atomic.Int64 // time.Now().UnixNano() after each Receive
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := c.Receive(ctx); err != nil {
				done <- err
				return
			}
			got.Store(time.Now().UnixNano())
		}
		done <- nil
	}()
	var total time.Duration
	for range b.N {
		for atomic.LoadUint32(c.r.wake) == 0 {
			runtime.Gosched()
		}
		time.Sleep(50 * time.Microsecond)
		prev := got.Load()
		start := time.Now()
		if err := p.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		for got.Load() == prev {
			runtime.Gosched()
		}
		total += time.Duration(got.Load() - start.UnixNano())
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/wake")
}
