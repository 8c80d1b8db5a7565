//go:build linux

package mq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwire/procwire/shm"
)

func TestCreateOpenRemove(t *testing.T) {
	name := qName(t)
	if _, err := Open(name, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of missing queue: %v", err)
	}
	if err := Remove(name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove of missing queue: %v", err)
	}
	c := createQ(t, 5000, &Options{MaxMessage: 3000})
	if c.MaxMessage() != 3000 || c.Stats().Capacity != 8192 {
		t.Fatalf("MaxMessage %d, capacity %d", c.MaxMessage(), c.Stats().Capacity)
	}
	p, err := Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.MaxMessage() != 3000 {
		t.Errorf("producer MaxMessage %d", p.MaxMessage())
	}
	if _, err := Open(name, &Options{MaxMessage: 3001}); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Open with a larger MaxMessage: %v", err)
	}
	if _, err := Create(name, 5000, nil); !errors.Is(err, ErrBusy) {
		t.Errorf("second Create while the consumer lives: %v", err)
	}
	if err := p.Send(context.Background(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if b, err := c.Receive(context.Background()); err != nil || string(b) != "hello" {
		t.Fatalf("Receive: %q, %v", b, err)
	}
	c.Close()
	if _, err := Create(name, 1<<20, nil); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Create with another capacity: %v", err)
	}
	if _, err := Create(name, 8192, &Options{Lanes: DefaultLanes + 1}); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Create with another lane count: %v", err)
	}
	if c2, err := Create(name, 8192, &Options{Lanes: DefaultLanes}); err != nil {
		t.Errorf("Create with the same lane count: %v", err)
	} else {
		c2.Close()
	}
	for _, bad := range []string{"", "../x", "a/b", "sp ace"} {
		if _, err := Create(bad, 4096, nil); err == nil {
			t.Errorf("Create(%q) accepted", bad)
		}
	}
	for _, lanes := range []int{-1, MaxLanes + 1} {
		if _, err := Create(name+"x", 4096, &Options{Lanes: lanes}); err == nil {
			t.Errorf("Lanes %d accepted", lanes)
		}
	}
	if _, err := Create(name+"x", MaxCapacity, &Options{Lanes: MaxLanes}); err == nil {
		t.Error("a queue of MaxLanes × MaxCapacity accepted")
	}
	// A segment of another kind is not a queue.
	raw := name + ".raw"
	seg, err := shm.Create(raw, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	seg.Close()
	defer shm.Remove(raw)
	if _, err := Open(raw, nil); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Open of a raw segment: %v", err)
	}
	if err := Remove(raw); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Remove of a raw segment: %v", err)
	}
	if err := Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(name, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Remove: %v", err)
	}
}

// TestProcessesOrder: several producer processes and goroutines; each
// one's messages arrive in order, every byte intact.
func TestProcessesOrder(t *testing.T) {
	q := createQ(t, 1<<14, nil)
	const n = 2000
	var kids []*child
	for i := range 3 {
		kids = append(kids, startChild(t, "send", "MQ_NAME="+q.Name(), "MQ_N="+itoa(n), "MQ_SIZE="+itoa(10+i*500)))
	}
	ctx := ctxT(t)
	got := 0
	for got < 3*(n+1) {
		_, err := q.ReceiveBatch(ctx, func(b []byte) {
			if string(b) != "ready" && len(b) != 10 && len(b) != 510 && len(b) != 1010 {
				t.Fatalf("unexpected %d-byte message", len(b))
			}
			got++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range kids {
		if err := k.wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
}

// TestKillMidWrite: a producer process killed half way through writing
// a message, in its own lane or in the shared lane holding its lock,
// leaves no trace of that message and does not wedge the queue: its
// whole messages are received, its lane is taken over by the next
// producer (or its lock recovered), and what that one sends follows.
func TestKillMidWrite(t *testing.T) {
	for _, role := range []string{"stall-write", "hold-shared"} {
		t.Run(role, func(t *testing.T) {
			q := createQ(t, 4096, &Options{Lanes: 1})
			k := startChild(t, role, "MQ_NAME="+q.Name(), "MQ_N=3")
			if l := k.line(t); !strings.HasPrefix(l, "stalled") {
				t.Fatalf("child said %q", l)
			}
			ctx := ctxT(t)
			for i := range 3 {
				b, err := q.Receive(ctx)
				if err != nil || string(b) != fmt.Sprintf("whole %d", i) {
					t.Fatalf("Receive: %q, %v", b, err)
				}
			}
			{
				// Nothing more is visible while the writer lives.
				short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				_, err := q.Receive(short)
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Receive beside a live writer: %v", err)
				}
			}
			if role == "stall-write" {
				// The one dedicated lane is the child's while it lives.
				p, err := Open(q.Name(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Send(ctx, []byte("beside")); err != nil {
					t.Fatal(err)
				}
				if s := p.Stats(); s.Lane != 0 {
					t.Errorf("producer beside a live lane owner got lane %d, want the shared 0", s.Lane)
				}
				p.Close()
				if b, err := q.Receive(ctx); err != nil || string(b) != "beside" {
					t.Fatalf("Receive: %q, %v", b, err)
				}
			}
			k.kill()
			p, err := Open(q.Name(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := range 50 {
				if err := p.Send(ctx, fmt.Appendf(nil, "after %d", i)); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 50 {
				b, err := q.Receive(ctx)
				if err != nil || string(b) != fmt.Sprintf("after %d", i) {
					t.Fatalf("Receive: %q, %v", b, err)
				}
			}
			s := p.Stats()
			switch role {
			case "stall-write":
				if s.Lane != 1 || s.Takeovers != 1 {
					t.Errorf("after the kill: lane %d, %d takeovers; want lane 1, 1", s.Lane, s.Takeovers)
				}
			case "hold-shared":
				if s.Lane != 1 || s.Takeovers != 0 {
					t.Errorf("after the kill: lane %d, %d takeovers; want lane 1, 0", s.Lane, s.Takeovers)
				}
				// The shared lane's lock, held by the dead child, is
				// recovered by the next producer that needs it.
				p2, err := Open(q.Name(), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer p2.Close()
				if err := p2.Send(ctx, []byte("shared")); err != nil {
					t.Fatal(err)
				}
				if b, err := q.Receive(ctx); err != nil || string(b) != "shared" {
					t.Fatalf("Receive: %q, %v", b, err)
				}
				if s := p2.Stats(); s.Lane != 0 || p2.p.lock.Recoveries() != 1 {
					t.Errorf("lane %d, %d lock recoveries; want 0, 1", s.Lane, p2.p.lock.Recoveries())
				}
			}
		})
	}
}

// TestConsumerDies: a consumer process killed after receiving some
// messages leaves the rest for the next consumer, which may take over
// only once it is dead.
func TestConsumerDies(t *testing.T) {
	name := qName(t)
	p0, err := Create(name, 8192, nil) // make it, then hand it over
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	for i := range uint32(20) {
		if err := p0.TrySend(testMsg(1, i, 40)); err != nil {
			t.Fatal(err)
		}
	}
	p0.Close()
	k := startChild(t, "consume", "MQ_NAME="+name, "MQ_CAP=8192", "MQ_N=5")
	if l := k.line(t); l != "received" {
		t.Fatalf("child said %q", l)
	}
	if _, err := Create(name, 8192, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("Create beside a live consumer: %v", err)
	}
	k.kill()
	q, err := Create(name, 8192, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := uint32(5); i < 20; i++ {
		b, err := q.Receive(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, s := checkMsg(t, b); s != i {
			t.Fatalf("got %d, want %d", s, i)
		}
	}
}

// TestCrashConsumers kills the consumer process with SIGKILL at random
// moments, 30 times, while a producer sends, and starts another each
// time. Each consumer sees a gapless run of the producer's messages that
// starts no later than just after the last message its predecessors were
// given (messages given by a ReceiveBatch call that had not returned may
// be given again), and the last consumer receives everything that was
// acknowledged.
func TestCrashConsumers(t *testing.T) {
	kills := 30
	if testing.Short() {
		kills = 10
	}
	const capacity = 1 << 12
	name := qName(t)
	q0, err := Create(name, capacity, nil)
	if err != nil {
		t.Fatal(err)
	}
	q0.Close()
	defer Remove(name)
	ackName := name + ".ack"
	ack, err := shm.Create(ackName, 16*(kills+1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ack.Close(); shm.Remove(ackName) }()

	p, err := Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var acked atomic.Uint32
	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := uint32(0); ; seq++ {
			if err := p.Send(ctx, testMsg(1, seq, 8+int(seq%60))); err != nil {
				return
			}
			acked.Store(seq + 1)
		}
	})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	seen := uint64(0) // highest seq+1 given to a consumer so far
	for id := range kills {
		k := startChild(t, "consume-record", "MQ_NAME="+name, "MQ_CAP="+itoa(capacity), "MQ_ACK="+ackName, "MQ_ID="+itoa(id))
		if l := k.line(t); l != "consuming" {
			t.Fatalf("consumer %d said %q", id, l)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(5 * time.Millisecond))))
		k.kill()
		if st := k.cmd.ProcessState; st.Exited() {
			t.Fatalf("consumer %d exited by itself: %v", id, st)
		}
		first, last := atomic.LoadUint64(ackSlot(ack, 2*id)), atomic.LoadUint64(ackSlot(ack, 2*id+1))
		if first == 0 {
			continue // killed before its first message
		}
		if first > seen+1 {
			t.Fatalf("consumer %d started at seq %d; its predecessors got up to %d: messages lost", id, first-1, int64(seen)-1)
		}
		seen = max(seen, last)
	}
	cancel()
	wg.Wait()
	q, err := Create(name, capacity, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Everything acknowledged is in the queue or was given to a killed
	// consumer; the producer has stopped, so drain without waiting.
	want := uint32(0)
	for {
		n, err := q.TryReceiveBatch(func(b []byte) {
			_, seq := checkMsg(t, b)
			if want == 0 && uint64(seq) > seen {
				t.Fatalf("last consumer started at seq %d; its predecessors got up to %d", seq, int64(seen)-1)
			}
			if want != 0 && seq != want {
				t.Fatalf("last consumer: got seq %d, want %d", seq, want)
			}
			want = seq + 1
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if got := max(uint64(want), seen); got != uint64(acked.Load()) {
		t.Fatalf("messages up to %d given to consumers, %d acknowledged", got, acked.Load())
	}
	t.Logf("%d consumer kills; %d messages acknowledged, the killed consumers were given up to %d", kills, acked.Load(), seen)
}

// TestCrashProducers kills producer processes with SIGKILL at random
// moments, about a hundred times, while the consumer reads. Afterwards no
// acknowledged message is lost, none is duplicated, each producer's
// messages arrived in order, and the queue still works.
//
// With 8 lanes every producer has a lane of its own (taken over from a
// dead one); with 1, most take turns in the shared lane and are killed
// while holding its lock, too.
func TestCrashProducers(t *testing.T) {
	for _, lanes := range []int{8, 1} {
		t.Run(fmt.Sprintf("lanes=%d", lanes), func(t *testing.T) { crashProducers(t, lanes) })
	}
}

func crashProducers(t *testing.T, lanes int) {
	kills := 100
	if testing.Short() {
		kills = 30
	}
	q := createQ(t, 1<<13, &Options{Lanes: lanes})
	ackName := q.Name() + ".ack"
	ack, err := shm.Create(ackName, 8*(kills+1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ack.Close(); shm.Remove(ackName) }()

	next := make([]uint64, kills+1) // next seq expected from each producer
	var bad atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	done := make(chan struct{})
	listenErr := make(chan error, 1)
	wg.Go(func() {
		listenErr <- q.Listen(ctx, func(b []byte) {
			if string(b) == "end" {
				close(done)
				return
			}
			if len(b) < 8 {
				bad.Store("short message")
				return
			}
			id, seq := checkMsgNoFatal(b)
			if id < 0 || id > kills || uint64(seq) != next[id] {
				bad.Store("producer " + itoa(id) + ": got seq " + itoa(int(seq)) + ", want " + itoa(int(next[max(0, min(id, kills))])))
				return
			}
			next[id]++
		})
	})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	sem := make(chan struct{}, 3)
	var kw sync.WaitGroup
	for id := range kills {
		sem <- struct{}{}
		role := "produce"
		if id%2 == 1 {
			role = "produce-batch"
		}
		k := startChild(t, role, "MQ_NAME="+q.Name(), "MQ_ACK="+ackName, "MQ_ID="+itoa(id))
		delay := time.Duration(rng.Int64N(int64(3 * time.Millisecond)))
		kw.Go(func() {
			defer func() { <-sem }()
			// Wait until it is sending, then kill it at a random moment.
			slot := ackSlot(ack, id)
			deadline := time.Now().Add(20 * time.Second)
			for atomic.LoadUint64(slot) == 0 && time.Now().Before(deadline) && len(listenErr) == 0 {
				time.Sleep(200 * time.Microsecond)
			}
			time.Sleep(delay)
			k.kill()
		})
	}
	kw.Wait()
	select {
	case err := <-listenErr:
		t.Fatalf("Listen: %v", err)
	default:
	}
	p, err := Open(q.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Send(ctxT(t), []byte("end")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case err := <-listenErr:
		t.Fatalf("Listen: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("queue wedged: end marker not received")
	}
	cancel()
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	var acked, received uint64
	for id := range kills {
		a := atomic.LoadUint64(ackSlot(ack, id))
		if a == 0 {
			t.Errorf("producer %d never sent", id)
		}
		if next[id] < a {
			t.Errorf("producer %d: %d acknowledged, %d received", id, a, next[id])
		}
		if next[id] > a+7 {
			t.Errorf("producer %d: %d received, only %d acknowledged", id, next[id], a)
		}
		acked += a
		received += next[id]
	}
	t.Logf("%d kills: %d messages acknowledged, %d received, %d lanes taken over, shared lane's lock recovered %d times",
		kills, acked, received, q.Stats().Takeovers, shm.MutexAt(q.r.lanes[0].lock).Recoveries())
}

func checkMsgNoFatal(b []byte) (int, uint32) {
	id, seq := int(le32(b)), le32(b[4:])
	if !bytes.Equal(b, testMsg(uint32(id), seq, len(b))) {
		return -1, seq
	}
	return id, seq
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// TestFullWithFutex: on a real segment, a Send blocked on a full queue
// sleeps on the futex and is woken by the consumer's release, by its
// context, or by Close.
func TestFullWithFutex(t *testing.T) {
	q := createQ(t, 1024, nil)
	p, err := Open(q.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 200)
	for p.TrySend(msg) == nil {
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := p.Send(ctx, msg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on full: %v", err)
	}
	sent := make(chan error, 1)
	go func() { sent <- p.Send(context.Background(), msg) }()
	time.Sleep(20 * time.Millisecond) // let it sleep on the futex
	if _, err := q.ReceiveBatch(ctxT(t), func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("blocked Send after release: %v", err)
	}
	for p.TrySend(msg) == nil {
	}
	go func() { sent <- p.Send(context.Background(), msg) }()
	time.Sleep(20 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Send after Close: %v", err)
	}
	if s := p.Stats(); s.FullWaits != 3 {
		t.Errorf("FullWaits = %d, want 3", s.FullWaits)
	}
}

// TestHandoffNoRace: a goroutine's writes before Send are visible to the
// receiver after Receive, and the race detector knows it (see race.go):
// callers need no synchronisation of their own.
func TestHandoffNoRace(t *testing.T) {
	c := createQ(t, 4096, nil)
	p, err := Open(c.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	shared := make([]int, 2000)
	ctx := ctxT(t)
	go func() {
		for i := range shared {
			shared[i] = i + 1
			p.Send(ctx, []byte{byte(i), byte(i >> 8)})
		}
	}()
	for i := 0; i < len(shared); {
		check := func(b []byte) {
			if got := int(b[0]) | int(b[1])<<8; got != i || shared[i] != i+1 {
				t.Fatalf("message %d: %d, shared %d", i, got, shared[i])
			}
			i++
		}
		if i%2 == 0 {
			b, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			check(b)
		} else if _, err := c.ReceiveBatch(ctx, check); err != nil {
			t.Fatal(err)
		}
	}
}
