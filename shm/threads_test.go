//go:build linux

package shm

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads line")
	return 0
}

// TestMutexWaitersDoNotPinThreads checks that goroutines of one process
// waiting for a held lock do not each block an OS thread in futex_wait.
func TestMutexWaitersDoNotPinThreads(t *testing.T) {
	s := newSeg(t, MutexSize)
	m := MutexAt(s.Data())
	m.Lock(context.Background())
	before := threads(t)
	const waiters = 200
	var wg sync.WaitGroup
	for range waiters {
		wg.Go(func() {
			m.Lock(context.Background())
			m.Unlock()
		})
	}
	time.Sleep(200 * time.Millisecond)
	during := threads(t)
	m.Unlock()
	wg.Wait()
	t.Logf("threads: %d before, %d with %d waiters", before, during, waiters)
	if during-before > waiters/4 {
		t.Fatalf("%d waiting goroutines grew the process from %d to %d threads", waiters, before, during)
	}
}
