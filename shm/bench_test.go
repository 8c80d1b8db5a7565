//go:build linux

package shm

import (
	"context"
	"testing"

	"github.com/procwire/procwire/internal/proc/proctest"
)

// BenchmarkMutexUncontended measures one Lock+Unlock pair with no other
// user: one CAS each.
func BenchmarkMutexUncontended(b *testing.B) {
	s := newSeg(b, MutexSize)
	m := MutexAt(s.Data())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m.Lock(ctx)
		m.Unlock()
	}
}

// BenchmarkMutexContended2Proc measures Lock+Unlock pairs while a child
// process hammers the same lock; ns/op is per pair in this process, and
// pairs/s counts the pairs of both processes.
func BenchmarkMutexContended2Proc(b *testing.B) {
	s := newSeg(b, MutexSize+8)
	m := MutexAt(s.Data())
	c := proctest.Start(b, "hammer", s.Name(), "")
	defer c.Kill()
	ctx := context.Background()
	ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
	for *(*uint64)(unsafePointer(s.Data()[MutexSize:])) == 0 {
		yield() // wait for the child to start hammering
	}
	b.ReportAllocs()
	var first uint64
	started := false
	for b.Loop() {
		m.Lock(ctx)
		if !started {
			first, started = *ctr, true
		}
		*ctr++
		m.Unlock()
	}
	m.Lock(ctx)
	total := *ctr - first
	m.Unlock()
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "pairs/s")
}

// BenchmarkMutexGoroutines measures Lock+Unlock pairs from many goroutines
// of one process; ns/op is per pair.
func BenchmarkMutexGoroutines(b *testing.B) {
	s := newSeg(b, MutexSize+8)
	m := MutexAt(s.Data())
	ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
	ctx := context.Background()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Lock(ctx)
			*ctr++
			m.Unlock()
		}
	})
}
