package mq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	next := map[uint32]uint32{}
	total := 0
	for total < producers*each {
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
	r2, err := newRing(m.data, m.plat, ident{pid: 3, start: 21}, m.torn)
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
	r, _ := newRing(m.data, m.plat, ident{pid: 5, start: 35}, m.torn)
	if err := r.claimOwner(); err != nil {
		t.Fatal(err)
	}
	c := m.queue(1, true) // takes over from dead pid 5
	if err := c.TrySend([]byte("x")); err != nil {
		t.Fatal(err)
	}
}

// TestTornDeadProducer: a producer that claimed its header and died is
// skipped after TornTimeout; messages after it arrive.
func TestTornDeadProducer(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	m.plat.dead = func(pid int32) bool { return pid == 66 }
	c := m.queue(1, true)
	dead := m.queue(66, false)
	p := m.queue(2, false)
	ctx := ctxT(t)
	if _, ok := dead.r.reserve(50); !ok {
		t.Fatal("reserve failed")
	}
	p.Send(ctx, []byte("after"))
	b, err := c.Receive(ctx)
	if err != nil || string(b) != "after" {
		t.Fatalf("got %q, %v", b, err)
	}
	if s := c.Stats(); s.Torn != 1 {
		t.Errorf("Torn = %d, want 1", s.Torn)
	}
}

// TestTornBeforeTailMoved: a producer that claimed a slot and died before
// moving the tail past it is helped past by the next producer, and its
// slot is skipped by the consumer.
func TestTornBeforeTailMoved(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	m.plat.dead = func(pid int32) bool { return pid == 66 }
	c := m.queue(1, true)
	p := m.queue(2, false)
	ctx := ctxT(t)
	for _, n := range []uint64{40, 200} {
		tail := atomic.LoadUint64(c.r.tail)
		old := atomic.LoadUint64(c.r.claim(tail))
		if !c.r.freeFor(old, tail) || !atomic.CompareAndSwapUint64(c.r.claim(tail), old, headerWord(66, stWriting, n)) {
			t.Fatal("claim failed")
		}
		p.Send(ctx, []byte("after"))
		b, err := c.Receive(ctx)
		if err != nil || string(b) != "after" {
			t.Fatalf("got %q, %v", b, err)
		}
	}
	if s := c.Stats(); s.Torn != 2 {
		t.Errorf("Torn = %d, want 2", s.Torn)
	}
}

// TestSlowProducerWaitedFor: a live producer is never skipped, however
// slow; one that stalls before claiming its header retries elsewhere.
func TestSlowProducerWaitedFor(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	c := m.queue(1, true)
	slow := m.queue(77, false) // alive: memPlatform.dead is nil
	ctx := ctxT(t)
	pos, ok := slow.r.reserve(5)
	if !ok {
		t.Fatal("reserve")
	}
	go func() {
		time.Sleep(4 * m.torn)
		copy(slow.r.buf[pos&slow.r.mask+recHeader:], "slow!")
		slow.r.commit(pos, 5)
	}()
	b, err := c.Receive(ctx)
	if err != nil || string(b) != "slow!" {
		t.Fatalf("got %q, %v", b, err)
	}

	// A producer that stalled for a whole lap cannot claim its old slot.
	t0 := atomic.LoadUint64(slow.r.tail)
	for i := range 200 {
		slow.Send(ctx, []byte("lap"))
		if _, err := c.Receive(ctx); err != nil {
			t.Fatal(err, i)
		}
	}
	if c := atomic.LoadUint64(slow.r.claim(t0)); slow.r.freeFor(c, t0) {
		t.Fatal("stale claim succeeded a lap later")
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

// TestTornBatchSkippedWhole: a batch whose producer died before its
// commit is skipped as a unit.
func TestTornBatchSkippedWhole(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	m.plat.dead = func(pid int32) bool { return pid == 66 }
	c := m.queue(1, true)
	dead := m.queue(66, false)
	ctx := ctxT(t)
	msgs := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}
	size := recSize(1) + recSize(2) + recSize(3)
	pos, ok := dead.r.reserve(int(size - recHeader))
	if !ok {
		t.Fatal("reserve")
	}
	// Write the later records, then die before the commit.
	p := pos + recSize(1)
	for _, msg := range msgs[1:] {
		copy(dead.r.buf[p&dead.r.mask+recHeader:], msg)
		*dead.r.word(p) = headerWord(66, stCommitted, uint64(len(msg)))
		p += recSize(len(msg))
	}
	c.Send(ctx, []byte("after"))
	b, err := c.Receive(ctx)
	if err != nil || string(b) != "after" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// TestRestartInsideBatch: a consumer that stops part way through a batch
// hands exactly the rest of it to the next consumer, whether it closed or
// died (the progress is recorded before Receive returns).
func TestRestartInsideBatch(t *testing.T) {
	for _, closeIt := range []bool{true, false} {
		m := newMemRing(t, 4096, 0)
		c := m.queue(1, true)
		ctx := ctxT(t)
		var batch [][]byte
		for i := range uint32(9) {
			batch = append(batch, testMsg(1, i, 8+int(i)*3))
		}
		if _, err := c.SendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		next := uint32(0)
		for range 3 {
			b, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, s := checkMsg(t, b); s != next {
				t.Fatalf("got %d want %d", s, next)
			}
			next++
		}
		if closeIt {
			c.Close()
		} else {
			c.r.releaseOwner() // as if it died: nothing else is done
		}
		c = m.queue(1, true)
		for next < 9 {
			_, err := c.ReceiveBatch(ctx, func(b []byte) {
				if _, s := checkMsg(t, b); s != next {
					t.Fatalf("after restart got %d want %d", s, next)
				}
				next++
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// And the ring goes on working across the batch's slots.
		for i := range uint32(200) {
			if err := c.Send(ctx, testMsg(2, i, 50)); err != nil {
				t.Fatal(err)
			}
			b, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, s := checkMsg(t, b); s != i {
				t.Fatalf("got %d want %d", s, i)
			}
		}
	}
}

// TestRestartAfterSkip: a consumer that skipped a torn record and died
// before moving head leaves a record of the skip in the ring, so its
// successor neither stalls nor mistakes the freed claim for damage.
func TestRestartAfterSkip(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	m.plat.dead = func(pid int32) bool { return pid == 66 }
	c := m.queue(1, true)
	dead := m.queue(66, false)
	p := m.queue(2, false)
	if _, ok := dead.r.reserve(100); !ok {
		t.Fatal("reserve")
	}
	p.TrySend([]byte("x"))
	r := c.r
	if _, _, err := r.prepareWait(time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, sleep, err := r.prepareWait(time.Now().Add(time.Hour)); err != nil || sleep {
		t.Fatalf("torn record not skipped: sleep %v, err %v", sleep, err)
	}
	if r.rpos == atomic.LoadUint64(r.head) {
		t.Fatal("read position did not move")
	}
	r.releaseOwner() // dies here, head not moved
	c2 := m.queue(1, true)
	b, err := c2.Receive(ctxT(t))
	if err != nil || string(b) != "x" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// TestClaimSeenBeforeTail: the consumer can see a claim before its
// producer has moved the tail past it (a padding claim, or the claim of a
// producer that died right after claiming); it must help the tail along
// rather than run past it.
func TestClaimSeenBeforeTail(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	m.plat.dead = func(pid int32) bool { return pid == 66 }
	c := m.queue(1, true)
	ctx := ctxT(t)
	// Move the tail near the end of the ring.
	for range 3 {
		c.TrySend(make([]byte, 1000))
		c.Receive(ctx)
	}
	claimAtTail := func(v uint64) uint64 {
		tail := atomic.LoadUint64(c.r.tail)
		old := atomic.LoadUint64(c.r.claim(tail))
		if !c.r.freeFor(old, tail) || !atomic.CompareAndSwapUint64(c.r.claim(tail), old, v) {
			t.Fatal("claim failed")
		}
		return tail
	}
	tail := claimAtTail(headerWord(66, stSkip, c.r.size-atomic.LoadUint64(c.r.tail)&c.r.mask))
	if n, err := c.r.poll(func([]byte) {}, 10); n != 0 || err != nil {
		t.Fatalf("poll: %d, %v", n, err)
	}
	if c.r.rpos <= tail || atomic.LoadUint64(c.r.tail) < c.r.rpos {
		t.Fatalf("read position %d, tail %d: padding not skipped with the tail", c.r.rpos, atomic.LoadUint64(c.r.tail))
	}
	c.r.publish()
	// A dead producer's claim, tail not moved, nobody else sending.
	claimAtTail(headerWord(66, stWriting, 40))
	short, cancel := context.WithTimeout(ctx, 4*m.torn)
	defer cancel()
	if _, err := c.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive: %v", err)
	}
	if s := c.Stats(); s.Torn != 1 || s.Used != 0 {
		t.Errorf("stats %+v, want one torn record and nothing used", s)
	}
	if err := c.TrySend([]byte("on")); err != nil {
		t.Fatal(err)
	}
	if b, err := c.Receive(ctx); err != nil || string(b) != "on" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// TestOldBytesNotTrusted: bytes that a message left in the ring a lap
// earlier, at what is now the start of a claimed but uncommitted record,
// are never taken for that record's commit word or start time, however
// well they imitate them. (They used to be: a payload that happened to
// spell the current lap in the high half of a slot's first word was read
// as a commit — ErrCorrupt, or worse, a forged message — and one that
// spelled a wrong start time got a live producer's record skipped.)
func TestOldBytesNotTrusted(t *testing.T) {
	for _, tc := range []struct {
		name          string
		commit, start bool // which words the old payload imitates
	}{
		{"commit word", true, false},
		{"start time", false, true},
		{"both", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemRing(t, 4096, 0)
			m.plat.start = func(pid int32) uint64 { return uint64(pid) * 7 } // as m.queue sets them
			c := m.queue(1, true)
			p := m.queue(2, false)
			slow := m.queue(77, false)
			ctx := ctxT(t)
			r := c.r
			lap1 := r.size + slotSize // slot 1 of lap 1
			// The record at 0 has its payload at 16, so slot 1 starts at
			// payload[48].
			old := make([]byte, 69)
			if tc.commit {
				binary.NativeEndian.PutUint64(old[48:], r.lapTag(lap1)|stCommitted<<stateShift|5)
				copy(old[64:], "forge")
			}
			if tc.start {
				binary.NativeEndian.PutUint64(old[56:], 12345<<startLapBits|(lap1>>r.shift)) // pid 77 started at 539
			}
			if err := p.Send(ctx, old); err != nil {
				t.Fatal(err)
			}
			for atomic.LoadUint64(r.tail) < r.size {
				if err := p.Send(ctx, make([]byte, 40)); err != nil {
					t.Fatal(err)
				}
			}
			if tail := atomic.LoadUint64(r.tail); tail != r.size {
				t.Fatalf("tail %d, want %d", tail, r.size)
			}
			for range r.size/slotSize - 1 {
				if _, err := c.Receive(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Send(ctx, []byte("first")); err != nil {
				t.Fatal(err)
			}
			// Producer 77 claims slot 1 and stalls before it writes its
			// start time (what reserve does between its claim and the word).
			pos := atomic.LoadUint64(r.tail)
			cw := atomic.LoadUint64(r.claim(pos))
			if pos != lap1 || !r.freeFor(cw, pos) || !atomic.CompareAndSwapUint64(r.claim(pos), cw, headerWord(77, stWriting, 5)) {
				t.Fatalf("claim at %d (%#x) failed", pos, cw)
			}
			atomic.CompareAndSwapUint64(r.tail, pos, pos+slotSize)
			if b, err := c.Receive(ctx); err != nil || string(b) != "first" {
				t.Fatalf("got %q, %v", b, err)
			}
			// Several torn timeouts: the record is neither read nor skipped.
			short, cancel := context.WithTimeout(ctx, 5*m.torn)
			defer cancel()
			if b, err := c.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("uncommitted record: got %q, %v", b, err)
			}
			if s := c.Stats(); s.Torn != 0 {
				t.Fatalf("Torn = %d, want 0: a live producer's record was skipped", s.Torn)
			}
			*slow.r.word(pos + 8) = slow.r.self.start<<startLapBits | pos>>r.shift
			copy(slow.r.buf[pos&slow.r.mask+recHeader:], "slow!")
			slow.r.commit(pos, 5)
			if b, err := c.Receive(ctx); err != nil || string(b) != "slow!" {
				t.Fatalf("got %q, %v", b, err)
			}
		})
	}
}

// TestRestartInsideRetire: a consumer that dies while retiring a message
// it has delivered, after the skip at the message's first slot and before
// the rest, leaves a range its successor steps over whole, whatever the
// later slots still hold.
func TestRestartInsideRetire(t *testing.T) {
	m := newMemRing(t, 4096, 0)
	c := m.queue(1, true)
	p := m.queue(2, false)
	ctx := ctxT(t)
	big := make([]byte, 300) // five slots
	for i := 48; i+8 <= len(big); i += slotSize {
		// Every later slot start spells a commit for this lap.
		binary.NativeEndian.PutUint64(big[i:], c.r.lapTag(0)|stCommitted<<stateShift|5)
	}
	if err := p.Send(ctx, big); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, []byte("next")); err != nil {
		t.Fatal(err)
	}
	r := c.r
	if n, err := r.poll(func([]byte) {}, 1); n != 1 || err != nil {
		t.Fatalf("poll: %d, %v", n, err)
	}
	// Undo the retiring of the later slots, as if it had not happened.
	copy(r.buf[recHeader:], big)
	r.releaseOwner() // dies here, head not moved
	c2 := m.queue(1, true)
	b, err := c2.Receive(ctx)
	if err != nil || string(b) != "next" {
		t.Fatalf("got %q, %v", b, err)
	}
}
