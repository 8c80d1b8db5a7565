package dict

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
)

// procMutex stands in for shm.Mutex in tests of the engine: a process-local
// lock that can be told to report the next Lock as recovered, as if the
// previous holder had died.
type procMutex struct {
	mu          sync.Mutex
	recoverNext bool
}

func (m *procMutex) Lock(context.Context) (bool, error) {
	m.mu.Lock()
	r := m.recoverNext
	m.recoverNext = false
	return r, nil
}

func (m *procMutex) Unlock() { m.mu.Unlock() }

func (m *procMutex) failNext() {
	m.mu.Lock()
	m.recoverNext = true
	m.mu.Unlock()
}

// fakeClock is a settable clock in Unix milliseconds.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) now() int64 { return c.ms.Load() }

func (c *fakeClock) advance(ms int64) { c.ms.Add(ms) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newMemDict returns a dictionary over ordinary memory with a fake clock.
func newMemDict(tb testing.TB, capacity int) (*Dict, *procMutex, *fakeClock) {
	tb.Helper()
	data := make([]byte, capacity)
	if err := initRegion(data, defaultShards(capacity)); err != nil {
		tb.Fatal(err)
	}
	mu := &procMutex{} // shared by the shards: no method holds two
	d, err := newDict("mem", data, func([]byte) locker { return mu }, &Options{Logger: discardLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	clk := &fakeClock{}
	clk.ms.Store(1_700_000_000_000)
	for i := range d.shards {
		d.shards[i].now = clk.now
	}
	tb.Cleanup(func() {
		if err := d.Check(); err != nil && err != ErrClosed {
			tb.Errorf("Check after test: %v", err)
		}
	})
	return d, mu, clk
}

func ptr[T any](v T) *T { return &v }
