package mq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testMsg builds message seq of producer id: 8 bytes of identity, then
// size-8 bytes derived from them, so a receiver can check every byte.
func testMsg(id, seq uint32, size int) []byte {
	size = max(size, 8)
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, id)
	binary.LittleEndian.PutUint32(b[4:], seq)
	for i := 8; i < size; i++ {
		b[i] = byte(id*31 + seq*7 + uint32(i))
	}
	return b
}

// checkMsg verifies a testMsg and returns its identity.
func checkMsg(t testing.TB, b []byte) (id, seq uint32) {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("message of %d bytes, want >= 8", len(b))
	}
	id, seq = binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	if want := testMsg(id, seq, len(b)); !bytes.Equal(b, want) {
		t.Fatalf("message %d/%d of %d bytes corrupted", id, seq, len(b))
	}
	return id, seq
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSendReceiveOrder(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	c := m.queue(1, true)
	p := m.queue(2, false)
	ctx := ctxT(t)
	done := make(chan error, 1)
	const n = 5000
	go func() {
		for i := range uint32(n) {
			if err := p.Send(ctx, testMsg(2, i, int(i%700))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range uint32(n) {
		b, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if id, seq := checkMsg(t, b); id != 2 || seq != i {
			t.Fatalf("got %d/%d, want 2/%d", id, seq, i)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Received != n || s.Used != 0 {
		t.Errorf("consumer stats %+v", s)
	}
	if s := p.Stats(); s.Sent != n {
		t.Errorf("producer stats %+v", s)
	}
}

func TestEmptyAndMaxMessages(t *testing.T) {
	m := newMemRing(t, 4096, 4096/2-16)
	c := m.queue(1, true)
	ctx := ctxT(t)
	for _, size := range []int{0, 1, 7, 8, 9, 15, 16, 17, 2032, 100, 0} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if err := c.Send(ctx, msg); err != nil {
			t.Fatalf("Send(%d bytes): %v", size, err)
		}
		got, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("size %d: got %d bytes", size, len(got))
		}
	}
}

func TestTooLarge(t *testing.T) {
	m := newMemRing(t, 4096, 100)
	p := m.queue(2, false)
	for _, err := range []error{
		p.Send(context.Background(), make([]byte, 101)),
		p.TrySend(make([]byte, 101)),
		func() error {
			_, err := p.SendBatch(context.Background(), [][]byte{nil, make([]byte, 101)})
			return err
		}(),
	} {
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
	}
	if err := p.TrySend(make([]byte, 100)); err != nil {
		t.Errorf("100 bytes: %v", err)
	}
}

func TestLimitsChecked(t *testing.T) {
	for _, tc := range []struct{ capacity, max int }{
		{0, 0}, {-1, 0}, {MaxCapacity + 1, 0}, {4096, 4096}, {4096, -1}, {4096, 2048 - 15},
	} {
		c, err := roundCapacity(tc.capacity)
		if err == nil {
			_, err = maxMessageFor(tc.max, c)
		}
		if err == nil {
			t.Errorf("capacity %d, max %d accepted", tc.capacity, tc.max)
		}
	}
	for _, tc := range []struct{ in, want int }{{1, MinCapacity}, {1024, 1024}, {1025, 2048}, {1 << 20, 1 << 20}} {
		if got, err := roundCapacity(tc.in); err != nil || got != tc.want {
			t.Errorf("roundCapacity(%d) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// TestWrapEveryOffset makes records of many sizes start at every offset of
// a small ring, including ones that need padding to the end.
func TestWrapEveryOffset(t *testing.T) {
	m := newMemRing(t, 1024, 0)
	c := m.queue(1, true)
	ctx := ctxT(t)
	max := c.MaxMessage()
	seq := uint32(0)
	for size := 8; size <= max; size += 13 {
		// Enough records of this size to move the start over every offset.
		for range 1024/8 + 3 {
			msg := testMsg(1, seq, size)
			if err := c.TrySend(msg); err != nil {
				t.Fatalf("size %d seq %d: %v", size, seq, err)
			}
			b, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if id, s := checkMsg(t, b); id != 1 || s != seq || len(b) != size {
				t.Fatalf("got %d/%d (%d bytes), want 1/%d (%d)", id, s, len(b), seq, size)
			}
			seq++
		}
	}
}

// TestFillDrain fills the ring with mixed sizes until ErrFull, then
// drains it, many times, so that the ring is full at every offset.
func TestFillDrain(t *testing.T) {
	m := newMemRing(t, 2048, 0)
	c := m.queue(1, true)
	p := m.queue(2, false)
	ctx := ctxT(t)
	var sent, got uint32
	for round := range 200 {
		for {
			err := p.TrySend(testMsg(2, sent, 8+int(sent*37)%300))
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if round%2 == 0 {
			for got < sent {
				b, err := c.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, s := checkMsg(t, b); s != got {
					t.Fatalf("got seq %d, want %d", s, got)
				}
				got++
			}
		} else {
			_, err := c.ReceiveBatch(ctx, func(b []byte) {
				if _, s := checkMsg(t, b); s != got {
					t.Fatalf("got seq %d, want %d", s, got)
				}
				got++
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if got == 0 || got > sent {
		t.Fatalf("got %d of %d", got, sent)
	}
}

func TestManyProducers(t *testing.T) {
	m := newMemRing(t, 1<<14, 0)
	c := m.queue(1, true)
	ctx := ctxT(t)
	const producers, each = 6, 3000
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for i := range producers {
		p := m.queue(int32(10+i), false)
		wg.Go(func() {
			id := uint32(10 + i)
			for s := uint32(0); s < each; {
				if i%2 == 0 {
					batch := [][]byte{testMsg(id, s, 8), testMsg(id, s+1, 20+int(s%50)), testMsg(id, s+2, 9)}
					if _, err := p.SendBatch(ctx, batch); err != nil {
						errs <- err
						return
					}
					s += 3
					continue
				}
				if err := p.Send(ctx, testMsg(id, s, 8+int(s%200))); err != nil {
					errs <- err
					return
				}
				s++
			}
		})
	}
	receiveInOrder(t, c, producers*each)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestFullBlocksAndCancels(t *testing.T) {
	m := newMemRing(t, 1024, 0)
	c := m.queue(1, true)
	p := m.queue(2, false)
	msg := make([]byte, 100)
	n := 0
	for p.TrySend(msg) == nil {
		n++
	}
	if n == 0 {
		t.Fatal("nothing fitted")
	}
	if err := p.TrySend(msg); !errors.Is(err, ErrFull) {
		t.Fatalf("TrySend on full: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Send(ctx, msg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on full with deadline: %v", err)
	}
	// A blocked Send goes through once the consumer makes room.
	sent := make(chan error, 1)
	go func() { sent <- p.Send(ctxT(t), msg) }()
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v on a full queue", err)
	case <-time.After(10 * time.Millisecond):
	}
	if _, err := c.ReceiveBatch(ctxT(t), func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.FullWaits != 2 || s.Sent != uint64(n+1) {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseUnblocks(t *testing.T) {
	m := newMemRing(t, 1024, 0)
	c := m.queue(1, true)
	p := m.queue(2, false)
	for p.TrySend(make([]byte, 100)) == nil {
	}
	errs := make(chan error, 2)
	go func() { errs <- p.Send(context.Background(), make([]byte, 100)) }()
	c2 := newMemRing(t, 1024, 0).queue(1, true)
	go func() { _, err := c2.Receive(context.Background()); errs <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("blocked call returned %v, want ErrClosed", err)
		}
	}
	if err := p.TrySend(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("TrySend after Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Receive(context.Background()); !errors.Is(err, ErrNotConsumer) && !errors.Is(err, ErrClosed) {
		t.Errorf("Receive on producer: %v", err)
	}
	_ = c
}

func TestReceiveCancel(t *testing.T) {
	m := newMemRing(t, 1024, 0)
	c := m.queue(1, true)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if _, err := c.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if err := c.Listen(ctx, func([]byte) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen: %v", err)
	}
}

func TestConsumerRestartKeepsUnread(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	c := m.queue(1, true)
	p := m.queue(2, false)
	ctx := ctxT(t)
	for i := range uint32(20) {
		if err := p.Send(ctx, testMsg(2, i, 30)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range uint32(5) {
		b, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, s := checkMsg(t, b); s != i {
			t.Fatalf("got %d want %d", s, i)
		}
	}
	// A second live consumer is refused.
	r2, err := newRing(m.data, m.plat, ident{pid: 3, start: 21}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.claimOwner(); !errors.Is(err, ErrBusy) {
		t.Fatalf("second consumer: %v", err)
	}
	c.Close()
	c = m.queue(1, true)
	for i := uint32(5); i < 20; i++ {
		b, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, s := checkMsg(t, b); s != i {
			t.Fatalf("after restart got %d want %d", s, i)
		}
	}
}

func TestDeadConsumerReplaced(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	m.plat.dead = func(pid int32) bool { return pid == 5 }
	r, _ := newRing(m.data, m.plat, ident{pid: 5, start: 35}, nil)
	if err := r.claimOwner(); err != nil {
		t.Fatal(err)
	}
	c := m.queue(1, true) // takes over from dead pid 5
	if err := c.TrySend([]byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestSendBatchWhole(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	c := m.queue(1, true)
	ctx := ctxT(t)
	var msgs [][]byte
	for i := range uint32(300) {
		msgs = append(msgs, testMsg(1, i, 8+int(i%40)))
	}
	errc := make(chan error, 1)
	go func() {
		n, err := c.SendBatch(ctx, msgs)
		if err == nil && n != len(msgs) {
			err = fmt.Errorf("sent %d of %d", n, len(msgs))
		}
		errc <- err
	}()
	want := uint32(0)
	for want < 300 {
		if _, err := c.ReceiveBatch(ctx, func(b []byte) {
			if _, s := checkMsg(t, b); s != want {
				t.Fatalf("got %d want %d", s, want)
			}
			want++
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestLaneLeasing: Queues lease dedicated lanes at their first send, in
// order; when all are taken by live processes the next ones share lane 0;
// Close gives a lane back, and a dead process's lane is taken over with
// its published messages, which are received before the new owner's.
func TestLaneLeasing(t *testing.T) {
	m := newMemLanes(t, 4096, 0, 2)
	dead := map[int32]bool{}
	m.plat.dead = func(pid int32) bool { return dead[pid] }
	c := m.queue(1, true)
	ctx := ctxT(t)
	lane := func(q *Queue) int { return q.Stats().Lane }
	a, b, s := m.queue(10, false), m.queue(11, false), m.queue(12, false)
	if lane(a) != -1 {
		t.Fatalf("lane %d before the first send", lane(a))
	}
	for i, q := range []*Queue{a, b, s} {
		if err := q.Send(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if lane(a) != 1 || lane(b) != 2 || lane(s) != 0 {
		t.Fatalf("lanes %d %d %d, want 1 2 0", lane(a), lane(b), lane(s))
	}
	// A second Queue of the same process gets a lane of its own.
	b2 := m.queue(11, false)
	b2.Send(ctx, []byte("b2"))
	if lane(b2) != 0 {
		t.Fatalf("second Queue of a process: lane %d, want 0", lane(b2))
	}
	a.Close()
	a2 := m.queue(13, false)
	a2.Send(ctx, []byte("a2"))
	if lane(a2) != 1 {
		t.Fatalf("after Close: lane %d, want 1", lane(a2))
	}
	// b dies with messages in its lane; the next producer takes it over.
	b.Send(ctx, []byte("b last"))
	dead[11] = true
	d := m.queue(14, false)
	d.Send(ctx, []byte("d first"))
	if lane(d) != 2 || d.Stats().Takeovers != 1 {
		t.Fatalf("takeover: lane %d, %d takeovers", lane(d), d.Stats().Takeovers)
	}
	var got []string
	for len(got) < 7 {
		if _, err := c.ReceiveBatch(ctx, func(m []byte) { got = append(got, string(m)) }); err != nil {
			t.Fatal(err)
		}
	}
	order := map[string]int{}
	for i, g := range got {
		order[g] = i
	}
	if len(order) != 7 || order["1"] > order["b last"] || order["b last"] > order["d first"] || order["2"] > order["b2"] {
		t.Fatalf("received %q", got)
	}
}

// TestSharedLane: more producers than lanes, some sending batches and
// gathered parts, all take turns in the shared lane; every message
// arrives once, in each producer's order.
func TestSharedLane(t *testing.T) {
	m := newMemLanes(t, 2048, 0, 1)
	c := m.queue(1, true)
	ctx := ctxT(t)
	const producers, each = 5, 2000
	var wg sync.WaitGroup
	for i := range producers {
		p := m.queue(int32(10+i), false)
		wg.Go(func() {
			id := uint32(10 + i)
			for s := uint32(0); s < each; {
				var err error
				switch s % 3 {
				case 0:
					_, err = p.SendBatch(ctx, [][]byte{testMsg(id, s, 8), testMsg(id, s+1, 30)})
					s += 2
				case 1:
					msg := testMsg(id, s, 8+int(s%300))
					err = p.SendParts(ctx, msg[:3], msg[3:8], msg[8:])
					s++
				default:
					err = p.Send(ctx, testMsg(id, s, 8+int(s%100)))
					s++
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	receiveInOrder(t, c, producers*each)
	wg.Wait()
}

// TestFairness: a producer with a full lane does not keep the consumer
// from another lane's messages for more than laneQuota messages.
func TestFairness(t *testing.T) {
	m := newMemLanes(t, 1<<16, 0, 2)
	c := m.queue(1, true)
	busy, quiet := m.queue(2, false), m.queue(3, false)
	for busy.TrySend([]byte("busy")) == nil {
	}
	if err := quiet.TrySend([]byte("quiet")); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		b, err := c.Receive(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) == "quiet" {
			break
		}
		if n++; n > laneQuota {
			t.Fatalf("quiet lane starved for %d messages", n)
		}
	}
}

// TestPanicRedelivers: a message whose handler panicked is delivered
// again by the next call, and the ones before it are not.
func TestPanicRedelivers(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	c := m.queue(1, true)
	for i := range 5 {
		c.TrySend(fmt.Appendf(nil, "m%d", i))
	}
	func() {
		defer func() { recover() }()
		c.ReceiveBatch(ctxT(t), func(b []byte) {
			if string(b) == "m2" {
				panic("handler")
			}
		})
	}()
	b, err := c.Receive(ctxT(t))
	if err != nil || string(b) != "m2" {
		t.Fatalf("after the panic: %q, %v", b, err)
	}
}

// receiveInOrder receives n test messages on c and fails unless each is
// intact and every producer's arrive in the order it numbered them.
func receiveInOrder(t *testing.T, c *Queue, n int) {
	ctx := ctxT(t)
	t.Helper()
	next := map[uint32]uint32{}
	for total := 0; total < n; {
		_, err := c.ReceiveBatch(ctx, func(b []byte) {
			id, s := checkMsg(t, b)
			if s != next[id] {
				t.Fatalf("producer %d: got seq %d, want %d", id, s, next[id])
			}
			next[id]++
			total++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
