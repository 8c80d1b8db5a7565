package mq

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// memPlatform stands in for futexes and /proc inside one process: waits
// poll the word, and liveness is whatever the test says.
type memPlatform struct {
	dead func(pid int32) bool
	// start, if set, gives each live process's start time; a process
	// asked after with another (non-zero) start time is then a dead one
	// whose pid was reused, as the real liveness test would say.
	start func(pid int32) uint64
}

func (memPlatform) wait(addr *uint32, val uint32, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for atomic.LoadUint32(addr) == val {
		if timeout > 0 && time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Microsecond)
	}
	return true
}

func (memPlatform) wake(*uint32, int) {}

// register refuses: the rings of these tests are in the Go heap, where a
// membarrier proves nothing to the race detector, so their producers
// always fence.
func (memPlatform) register() bool { return false }

func (memPlatform) yield() { runtime.Gosched() }

func (memPlatform) barrier() bool { return true }

func (p memPlatform) alive(pid int32, start uint64) bool {
	if p.start != nil && start != 0 && start != p.start(pid) {
		return false
	}
	return p.dead == nil || !p.dead(pid)
}

// memRing is a queue layout in ordinary memory, shared by Queues that
// stand for separate processes.
type memRing struct {
	t    testing.TB
	data []byte
	plat memPlatform
	// reserve, if set, stands for shm.Segment.Allocate in Queues made
	// after it is set.
	reserve func(off, n int64) error
}

// newMemRing makes a queue in memory with DefaultLanes lanes.
func newMemRing(t testing.TB, capacity, maxMsg int) *memRing {
	t.Helper()
	return newMemLanes(t, capacity, maxMsg, DefaultLanes)
}

func newMemLanes(t testing.TB, capacity, maxMsg, lanes int) *memRing {
	t.Helper()
	c, err := roundCapacity(capacity)
	if err != nil {
		t.Fatal(err)
	}
	m, err := maxMessageFor(maxMsg, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLanes(lanes, c); err != nil {
		t.Fatal(err)
	}
	raw := make([]uint64, (layoutSize(c, lanes)+64)/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), len(raw)*8)
	skip := (64 - int(uintptr(unsafe.Pointer(&b[0]))%64)) % 64
	data := b[skip : skip+layoutSize(c, lanes)]
	if err := initLayout(data, c, m, lanes); err != nil {
		t.Fatal(err)
	}
	return &memRing{t: t, data: data}
}

// queue opens a Queue on the ring as process pid.
func (m *memRing) queue(pid int32, consumer bool) *Queue {
	m.t.Helper()
	r, err := newRing(m.data, m.plat, ident{pid: pid, start: uint64(pid) * 7}, m.reserve)
	if err != nil {
		m.t.Fatal(err)
	}
	if consumer {
		if err := r.claimOwner(); err != nil {
			m.t.Fatal(err)
		}
	}
	q := newQueue(r, "mem", consumer, r.maxMsg, DefaultSpin, nil)
	m.t.Cleanup(func() { q.Close() })
	return q
}
