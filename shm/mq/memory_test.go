//go:build linux

package mq

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/shm"
)

// heldBytes returns the memory the queue's segment holds (st_blocks).
func heldBytes(t *testing.T, name string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(shm.Dir+"/procwire."+name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestQueueMemory: a queue holds the memory of its header and of the
// lanes leased so far, whatever its lane count, and the consumer, which
// scans every lane, adds none.
func TestQueueMemory(t *testing.T) {
	const capacity = 1 << 20
	q := createQ(t, capacity, nil)
	if l := q.Stats().Lanes; l != DefaultLanes || DefaultLanes != 16 {
		t.Fatalf("%d lanes, DefaultLanes %d; want 16", l, DefaultLanes)
	}
	name := q.Name()
	// The headers and the lane table, then the rings, on 4 KiB
	// boundaries: exact with 4 KiB pages, a page more per part with
	// larger ones.
	prefix := int64(shm.HeaderSize + ringsAt(DefaultLanes))
	check := func(lanes int, when string) {
		t.Helper()
		want := prefix + int64(lanes)*capacity
		slack := int64(lanes+1) * int64(os.Getpagesize()-ringAlign)
		got := heldBytes(t, name)
		if got < want || got > want+slack {
			t.Fatalf("%s: queue holds %d bytes, want %d lanes' worth and the header: %d to %d", when, got, lanes, want, want+slack)
		}
		t.Logf("%s: %d bytes (%d lanes of %d bytes)", when, got, lanes, capacity)
	}
	check(0, "created")

	ctx := ctxT(t)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err := q.Receive(short) // the consumer scans and sleeps
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive of an empty queue: %v", err)
	}
	check(0, "after the consumer scanned")

	var ps []*Queue
	for i := 1; i <= 3; i++ {
		p, err := Open(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.Send(ctx, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if b, err := q.Receive(ctx); err != nil || string(b) != "hello" {
			t.Fatalf("Receive = %q, %v", b, err)
		}
		check(i, "after producer "+itoa(i))
		ps = append(ps, p)
	}
	// A lane given back and leased again costs nothing more.
	ps[0].Close()
	p, err := Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Send(ctx, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if p.Stats().Lane != 1 {
		t.Fatalf("new producer on lane %d, want 1", p.Stats().Lane)
	}
	check(3, "after a lane was given back and leased again")
}
