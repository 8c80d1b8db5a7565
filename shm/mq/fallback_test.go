package mq

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/procwire/procwire/shm"
)

// TestReserveFailsReservedLaneFree: when /dev/shm is full, a producer
// uses a free dedicated lane whose ring is reserved already (it costs no
// memory) rather than fail: with lane 1 free and unreserved (given back
// by a producer whose reservation failed while another reserved lane 2)
// and lane 2 free and reserved, the send goes through lane 2. (lease used
// to take the first free lane and, if its ring could not be reserved, go
// to the shared lane only, failing with ErrNoSpace.)
func TestReserveFailsReservedLaneFree(t *testing.T) {
	const capacity = 4096
	m := newMemLanes(t, capacity, 0, 2)
	c := m.queue(1, true)
	ctx := ctxT(t)

	// Lane 1 leased by a live producer that has not reserved its ring
	// yet, so that the next producer leases lane 2 and reserves it.
	atomic.StoreUint64(c.r.lanes[1].owner, packOwner(ident{pid: 9, start: 63}))
	b := m.queue(2, false)
	if err := b.Send(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if lane := b.Stats().Lane; lane != 2 {
		t.Fatalf("b in lane %d, want 2", lane)
	}
	b.Close()
	// The first producer's reservation failed: it gives lane 1 back.
	atomic.StoreUint64(c.r.lanes[1].owner, 0)

	// Now no memory is left; lane 2 (free, reserved) needs none.
	m.reserve = func(off, n int64) error {
		return fmt.Errorf("shm: allocate test: %w", shm.ErrNoSpace)
	}
	p := m.queue(3, false)
	if err := p.Send(ctx, []byte("p")); err != nil {
		t.Fatalf("Send = %v, with lane 2 free and reserved", err)
	}
}
