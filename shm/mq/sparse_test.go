package mq

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/procwire/procwire/shm"
)

// TestReserveFails: a lane whose ring cannot be reserved is given back,
// the producer falls back to the shared lane, and if that cannot be
// reserved either the send fails with ErrNoSpace (and shm.ErrNoSpace),
// nothing is touched, and a later send tries again.
func TestReserveFails(t *testing.T) {
	const capacity = 4096
	m := newMemLanes(t, capacity, 0, 1)
	type call struct{ off, n int64 }
	var calls []call
	fail := true
	m.reserve = func(off, n int64) error {
		calls = append(calls, call{off, n})
		if fail {
			return fmt.Errorf("shm: allocate test: %w", shm.ErrNoSpace)
		}
		return nil
	}
	c := m.queue(1, true)
	ctx := ctxT(t)
	flag := func(lane int) uint32 {
		return atomic.LoadUint32(c.r.lanes[lane].reserved)
	}
	owner := func(lane int) uint64 {
		return atomic.LoadUint64(c.r.lanes[lane].owner)
	}

	p2 := m.queue(2, false)
	err := p2.Send(ctx, []byte("a"))
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, shm.ErrNoSpace) {
		t.Fatalf("Send without memory for the lane = %v, want ErrNoSpace", err)
	}
	if owner(1) != 0 || flag(1) != 0 || flag(0) != 0 || p2.Stats().Lane != -1 {
		t.Fatalf("after the failed lease: owner %#x, flags %d %d, Stats.Lane %d; want the lanes free", owner(1), flag(1), flag(0), p2.Stats().Lane)
	}
	lane1, lane0 := call{int64(ringsAt(1)) + capacity, capacity}, call{int64(ringsAt(1)), capacity}
	if len(calls) != 2 || calls[0] != lane1 || calls[1] != lane0 {
		t.Fatalf("reserve calls %v, want [%v %v] (the dedicated lane, then the shared one)", calls, lane1, lane0)
	}
	if err := p2.TrySend([]byte("a")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("TrySend = %v, want ErrNoSpace", err)
	}
	if n, err := c.TryReceiveBatch(func([]byte) {}); n != 0 || err != nil {
		t.Fatalf("TryReceiveBatch = %d, %v", n, err)
	}

	fail = false
	if err := p2.Send(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if p2.Stats().Lane != 1 || flag(1) != 1 {
		t.Fatalf("lane %d, flag %d after the lease", p2.Stats().Lane, flag(1))
	}

	// The shared lane: its first user reserves it, and fails alike.
	fail = true
	p3 := m.queue(3, false)
	if err := p3.Send(ctx, []byte("b")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Send to the shared lane without memory = %v, want ErrNoSpace", err)
	}
	if flag(0) != 0 {
		t.Fatal("shared lane marked reserved after a failure")
	}
	fail = false
	if err := p3.Send(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if p3.Stats().Lane != 0 || flag(0) != 1 {
		t.Fatalf("lane %d, flag %d", p3.Stats().Lane, flag(0))
	}

	// A reserved lane is not reserved again by its next producer.
	n := len(calls)
	p2.Close()
	fail = true
	p4 := m.queue(4, false)
	if err := p4.Send(ctx, []byte("c")); err != nil || p4.Stats().Lane != 1 {
		t.Fatalf("Send through a lane reserved before: %v (lane %d)", err, p4.Stats().Lane)
	}
	if len(calls) != n {
		t.Fatalf("%d more reserve calls for lanes already reserved", len(calls)-n)
	}

	got := map[string]bool{}
	for len(got) < 3 {
		b, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[string(b)] = true
	}
	if !got["a"] || !got["b"] || !got["c"] {
		t.Fatalf("received %v", got)
	}
}

// TestTakeoverReserves: a producer that died after leasing a lane and
// before reserving its ring leaves the lane unreadable; the producer that
// takes the lane over reserves it, and its messages arrive.
func TestTakeoverReserves(t *testing.T) {
	m := newMemLanes(t, 4096, 0, 1)
	m.plat.dead = func(pid int32) bool { return pid == 9 }
	calls := 0
	m.reserve = func(off, n int64) error { calls++; return nil }
	c := m.queue(1, true)
	atomic.StoreUint64(c.r.lanes[1].owner, packOwner(ident{pid: 9, start: 63}))
	p := m.queue(2, false)
	ctx := ctxT(t)
	if err := p.Send(ctx, []byte("after the takeover")); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Lane != 1 || s.Takeovers != 1 || calls != 1 {
		t.Fatalf("lane %d, takeovers %d, %d reservations; want lane 1 taken over and reserved once", s.Lane, s.Takeovers, calls)
	}
	if b, err := c.Receive(ctx); err != nil || string(b) != "after the takeover" {
		t.Fatalf("Receive = %q, %v", b, err)
	}
}

// TestReserveFallsBack: a producer whose dedicated lane cannot be
// reserved sends through the shared lane when that one is reserved
// already, and keeps it; the dedicated lane stays free and untouched.
func TestReserveFallsBack(t *testing.T) {
	const capacity = 4096
	m := newMemLanes(t, capacity, 0, 1)
	lane1 := int64(ringsAt(1)) + capacity
	m.reserve = func(off, n int64) error {
		if off == lane1 {
			return fmt.Errorf("shm: allocate test: %w", shm.ErrNoSpace)
		}
		return nil
	}
	c := m.queue(1, true)
	ctx := ctxT(t)
	if err := c.r.reserveLane(0); err != nil {
		t.Fatal(err)
	}
	p := m.queue(2, false)
	for _, msg := range []string{"a", "b"} {
		if err := p.Send(ctx, []byte(msg)); err != nil {
			t.Fatalf("Send(%q) = %v, want it through the shared lane", msg, err)
		}
	}
	if lane := p.Stats().Lane; lane != 0 {
		t.Fatalf("Stats.Lane %d, want 0", lane)
	}
	if o, f := atomic.LoadUint64(c.r.lanes[1].owner), atomic.LoadUint32(c.r.lanes[1].reserved); o != 0 || f != 0 {
		t.Fatalf("dedicated lane: owner %#x, flag %d; want it free", o, f)
	}
	var got []string
	if _, err := c.TryReceiveBatch(func(b []byte) { got = append(got, string(b)) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("received %q, want [a b]", got)
	}
}
