package mq

import (
	"context"
	"sync"
	"testing"
	"time"
)

// benchPipe measures producers goroutines sending b.N messages of size
// bytes in total to one consumer goroutine, on a ring of capacity bytes.
func benchPipe(b *testing.B, newQ func() (c *Queue, p func(i int) *Queue), producers, size int, batch bool) {
	c, open := newQ()
	msg := make([]byte, size)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range producers {
		p := open(i)
		n := b.N / producers
		if i == 0 {
			n += b.N % producers
		}
		wg.Go(func() {
			if batch {
				msgs := make([][]byte, 64)
				for j := range msgs {
					msgs[j] = msg
				}
				for n > 0 {
					k := min(n, len(msgs))
					if _, err := p.SendBatch(ctx, msgs[:k]); err != nil {
						b.Error(err)
						return
					}
					n -= k
				}
				return
			}
			for range n {
				if err := p.Send(ctx, msg); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	got := 0
	for got < b.N {
		n, err := c.ReceiveBatch(ctx, func([]byte) {})
		if err != nil {
			b.Fatal(err)
		}
		got += n
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
