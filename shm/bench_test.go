//go:build linux

package shm

import (
	"context"
	"testing"
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
// process hammers the same lock; ns/op is per pair in this process.
func BenchmarkMutexContended2Proc(b *testing.B) {
	s := newSeg(b, MutexSize+8)
	m := MutexAt(s.Data())
	c := startChild(b, "count", s.Name(), "1000000000")
	defer c.kill()
	ctx := context.Background()
	ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
	for *(*uint64)(unsafePointer(s.Data()[MutexSize:])) == 0 {
		yield() // wait for the child to start hammering
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Lock(ctx)
		*ctr++
		m.Unlock()
	}
}
