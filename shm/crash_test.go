//go:build linux

package shm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/proc/proctest"
)

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

func yield() { runtime.Gosched() }

// crashState is the structure the crash test protects with a Mutex: a
// counter, one tally per child incarnation, and an undo journal so that a
// process that recovers the lock can roll back a half-done increment.
type crashState struct {
	mu      [MutexSize]byte
	counter uint64
	active  uint64 // 1 while an increment is in progress
	slot    uint64 // journal: which tally
	oldCtr  uint64 // journal: counter before
	oldSlot uint64 // journal: tally before
	scratch uint64 // written in a loop to make the critical section longer
	_       [16]byte
	tally   [crashSlots]uint64
}

const crashSlots = 512

func crashAt(s *Segment) *crashState { return (*crashState)(unsafePointer(s.Data())) }

// repair rolls back an increment interrupted by the death of its process.
func (c *crashState) repair() {
	if atomic.LoadUint64(&c.active) == 1 {
		atomic.StoreUint64(&c.counter, atomic.LoadUint64(&c.oldCtr))
		atomic.StoreUint64(&c.tally[atomic.LoadUint64(&c.slot)], atomic.LoadUint64(&c.oldSlot))
		atomic.StoreUint64(&c.active, 0)
	}
}

// increment adds one to the counter and to tally[slot], journaled. The
// atomic stores keep the compiler from reordering the steps, so that a
// SIGKILL at any instruction leaves a state repair can undo.
func (c *crashState) increment(slot int) {
	atomic.StoreUint64(&c.oldCtr, atomic.LoadUint64(&c.counter))
	atomic.StoreUint64(&c.slot, uint64(slot))
	atomic.StoreUint64(&c.oldSlot, atomic.LoadUint64(&c.tally[slot]))
	atomic.StoreUint64(&c.active, 1)
	atomic.StoreUint64(&c.counter, atomic.LoadUint64(&c.counter)+1)
	for i := range 64 {
		atomic.StoreUint64(&c.scratch, uint64(i))
	}
	atomic.StoreUint64(&c.tally[slot], atomic.LoadUint64(&c.tally[slot])+1)
	atomic.StoreUint64(&c.active, 0)
}

// runCrashChild increments forever, printing one line per increment made
// (after Unlock): the parent counts those lines as acknowledged.
func runCrashChild(s *Segment, slot int) {
	c := crashAt(s)
	m := MutexAt(c.mu[:])
	ack := []byte("+\n")
	for {
		recovered, _ := m.Lock(context.Background())
		if recovered {
			c.repair()
		}
		c.increment(slot)
		m.Unlock()
		os.Stdout.Write(ack)
	}
}

// TestMutexCrash runs children that increment a shared counter under the
// lock while the parent SIGKILLs them at random moments. Afterwards no one
// may be stuck, and the counter must equal the sum of the per-child tallies,
// each of which must equal the child's acknowledged increments, or one more
// (an increment done but killed before it was acknowledged).
func TestMutexCrash(t *testing.T) {
	kills := 120
	if testing.Short() {
		kills = 30
	}
	const running = 4
	s := newSeg(t, int(unsafe.Sizeof(crashState{})))
	name := s.Name()
	var children []*proctest.Child // indexed by slot
	spawn := func() int {
		slot := len(children)
		children = append(children, proctest.Start(t, "crash", name, fmt.Sprint(slot)))
		return slot
	}
	live := map[int]bool{}
	for range running {
		live[spawn()] = true
	}
	t.Cleanup(func() {
		for slot := range live {
			children[slot].Kill()
		}
	})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	deadline := time.Now().Add(60 * time.Second)
	for k := 0; k < kills; k++ {
		// Kill a child that is past start-up and incrementing; a child
		// that stops making progress means a stuck lock.
		victim := -1
		for victim < 0 {
			for slot := range live {
				if children[slot].Acks() > 0 {
					victim = slot
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %d kills, no child made progress for too long: lock stuck?", k)
			}
			time.Sleep(200 * time.Microsecond)
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		children[victim].Kill()
		delete(live, victim)
		if len(children) < crashSlots {
			live[spawn()] = true
		}
	}
	for slot := range live {
		children[slot].Kill()
		delete(live, slot)
	}

	c := crashAt(s)
	m := MutexAt(c.mu[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recovered, err := m.Lock(ctx)
	if err != nil {
		t.Fatal("lock stuck after the last kill:", err)
	}
	if recovered {
		c.repair()
	}
	defer m.Unlock()
	var sum, acked uint64
	for slot, ch := range children {
		a, n := uint64(ch.Acks()), c.tally[slot]
		if n < a || n > a+1 {
			t.Errorf("child %d: %d increments in memory, %d acknowledged", slot, n, a)
		}
		sum += n
		acked += a
	}
	if c.counter != sum {
		t.Errorf("counter = %d, sum of tallies = %d", c.counter, sum)
	}
	t.Logf("%d kills, %d increments (%d acknowledged), %d lock recoveries", len(children)-running, c.counter, acked, m.Recoveries())
	if acked == 0 {
		t.Error("no increments were made")
	}
}
