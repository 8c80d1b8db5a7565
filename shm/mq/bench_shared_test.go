//go:build linux

package mq

import "testing"

// BenchmarkSharedQueue: 4 goroutines send 10-byte messages through one
// producer Queue, taking turns at its lock.
func BenchmarkSharedQueue(b *testing.B) {
	c := createQ(b, 1<<20, nil)
	p, err := Open(c.Name(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	benchPipe(b, func() (*Queue, func(int) *Queue) {
		return c, func(int) *Queue { return p }
	}, 4, 10, false)
}
