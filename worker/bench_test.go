//go:build linux

package worker_test

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSharedPort measures connections per second served by 1, 2 and 4
// workers sharing one TCP port, with as many concurrent clients as
// workers. Each connection is a dial, one line read, and a close.
func BenchmarkSharedPort(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			c := startCluster(b, fmt.Sprintf("%s=%d", envWorkers, n), envMode+"=fast")
			ss := c.waitStarts("workers", func(ss []started) bool { return len(ss) == n })
			addr := ss[0].addrs["tcp"]
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			var next sync.Mutex
			left := b.N
			for range n {
				wg.Go(func() {
					for {
						next.Lock()
						if left == 0 {
							next.Unlock()
							return
						}
						left--
						next.Unlock()
						if _, err := ask("tcp", addr); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
			b.StopTimer()
			c.signal(syscall.SIGTERM)
			c.wait()
			waitGone(b, pids(c.starts())...)
		})
	}
}
