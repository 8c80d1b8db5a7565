package mq

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSpin is how long the consumer polls an empty queue before it
// sleeps, when Options.Spin is 0.
const DefaultSpin = 20 * time.Microsecond

// Options configures Create and Open. The zero value (or nil) is useful.
type Options struct {
	// Mode is the permission of the segment Create makes; 0 means 0600.
	Mode os.FileMode
	// MaxMessage is the largest message in bytes. For Create of a new
	// queue, 0 means a quarter of the ring and the largest allowed is half
	// the ring minus 16. When attaching to an existing queue, 0 means the
	// queue's own limit; a non-zero value must not exceed it and lowers
	// the limit for this Queue only.
	MaxMessage int
	// Lanes is the number of dedicated lanes of a queue Create makes: up
	// to that many producer Queues get a lane of their own; the others
	// share one more lane, taking turns under a lock. 0 means
	// DefaultLanes. Every lane has a ring of the queue's capacity, but a
	// ring takes memory only once a producer leases its lane, so unused
	// lanes cost nothing but address space. When Create attaches to an
	// existing queue, 0 accepts its lane count and another value must
	// match it. Open ignores it.
	Lanes int
	// Spin is how long the consumer keeps polling an empty queue before
	// it sleeps on a futex. Polling costs a core while it lasts; sleeping
	// costs the next producer a wake-up system call and the consumer a
	// few microseconds of latency. 0 means DefaultSpin; a negative value
	// means sleep at once. Only Create uses it.
	Spin time.Duration
	// Fence says who pays for the order that keeps a producer from
	// missing the consumer's sleep: each producer, with a locked
	// instruction per send (a few nanoseconds), or the consumer, with a
	// membarrier system call each time it goes to sleep, which
	// interrupts every CPU running a producer (a few microseconds, tens
	// on some virtual machines). The zero value, FenceAuto, makes the
	// producers pay if Spin is negative (the consumer sleeps after most
	// messages, so a barrier per sleep would add to their latency) and
	// the consumer otherwise. Only Create uses it, and it applies to
	// producers as they lease their lanes (at their first send).
	Fence Fence
}

// Fence is the choice of Options.Fence.
type Fence int

const (
	// FenceAuto fences producers if and only if Options.Spin is negative.
	FenceAuto Fence = iota
	// FenceProducers makes every producer keep the fence: for consumers
	// that sleep often.
	FenceProducers
	// FenceConsumer lets producers on amd64 skip it, the consumer issuing
	// a membarrier before it sleeps: for consumers that seldom sleep
	// (they keep busy, or spin before sleeping, as alert's do).
	FenceConsumer
)

// String returns the Fence's name: auto, producers or consumer.
func (f Fence) String() string {
	switch f {
	case FenceAuto:
		return "auto"
	case FenceProducers:
		return "producers"
	case FenceConsumer:
		return "consumer"
	}
	return fmt.Sprintf("Fence(%d)", int(f))
}

// Stats are a Queue's counters.
type Stats struct {
	Sent      uint64 // messages sent through this Queue
	Received  uint64 // messages received through this Queue
	FullWaits uint64 // sends through this Queue that had to wait for room
	Takeovers uint64 // lanes taken over from dead producers, over the queue's life
	Capacity  int    // bytes of each lane's ring
	Lanes     int    // dedicated lanes (the queue has one more, shared)
	Lane      int    // the lane this Queue sends through: -1 before its first send, 0 the shared lane
	Used      int    // bytes published by producers and not yet released by the consumer, over all lanes
}

// Queue is a handle on a shared-memory message queue: the consumer's (from
// Create) or a producer's (from Open). Its methods are safe for concurrent
// use by multiple goroutines.
type Queue struct {
	_        pad
	r        *ring
	p        *producer
	name     string
	consumer bool
	maxMsg   int
	spin     time.Duration // consumer: poll this long before sleeping; <= 0: not at all

	closed atomic.Bool

	// Written by the consumer at every call: see pad.
	_ pad
	// blocked counts calls sleeping in the slow path, which Close wakes
	// and waits for.
	blocked atomic.Int32

	mu sync.Mutex // serialises the consumer side (the producer has its own)
	// resign is set by a consumer's Close; whoever next holds mu without
	// a receiving call running gives the consumer role up (see Close).
	resign atomic.Bool
	// role is set while this consumer holds the consumer role: a Queue
	// garbage collected unclosed gives it up then (see newQueue).
	role *atomic.Bool

	received, fullWaits atomic.Uint64 // sent is in producer
	_                   pad
}

// newQueue wraps a ring. maxMsg is the caller's limit, already checked.
// release, if not nil, unmaps the ring's memory; it runs once the Queue is
// unreachable, not at Close, so that no call racing with Close can touch
// unmapped memory without every call paying for a reference count. A
// Queue dropped without Close gives its lane back then, and a consumer
// its role (which only it can hold in this process, so clearing the
// owner word cannot clear another's).
func newQueue(r *ring, name string, consumer bool, maxMsg int, spin time.Duration, release func() error) *Queue {
	p := newProducer(r)
	q := &Queue{r: r, p: p, name: name, consumer: consumer, maxMsg: maxMsg, spin: spin, role: new(atomic.Bool)}
	if consumer {
		r.attach()
		q.role.Store(true)
	}
	type remains struct {
		p    *producer
		role *atomic.Bool
	}
	runtime.AddCleanup(q, func(x remains) {
		x.p.free()
		if x.role.Load() {
			x.p.r.releaseOwner()
		}
		if release != nil {
			_ = release()
		}
	}, remains{p, q.role})
	return q
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// MaxMessage returns the largest message this Queue sends.
func (q *Queue) MaxMessage() int { return q.maxMsg }

func (q *Queue) tooLarge(n int) error {
	return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, q.maxMsg)
}

// Send appends msg to the queue, waiting while the queue is full until
// there is room, ctx ends (returning ctx.Err()) or the Queue is closed.
// Messages sent through one Queue are received in the order they were
// sent (by goroutines that take turns, in the order of their turns).
// Send returns ErrTooLarge for a message longer than MaxMessage. The
// first send of a Queue leases its lane; if there is no shared memory
// left for the lane's ring, it returns ErrNoSpace and the next send tries
// again.
func (q *Queue) Send(ctx context.Context, msg []byte) error {
	if len(msg) > q.maxMsg {
		return q.tooLarge(len(msg))
	}
	if q.fastSend(msg) {
		return nil
	}
	_, err := q.send(ctx, [][]byte{msg}, false, 0, true)
	return err
}

// fastSend sends msg if that is simple: the Queue has a dedicated lane
// with room for msg before the ring's end, and no other goroutine of the
// Queue is sending.
//
// The consumer is checked for sleep only after the unlock. A fenceFree
// producer's send then has one locked instruction, the lock's CAS: the
// header store and the unlock are plain stores, and the consumer's
// membarrier before it sleeps orders the header store before the load of
// the wake flag. Otherwise the unlock is an atomic store, a full fence on
// amd64, which orders them, so the header can still be a plain store
// (publishFast).
func (q *Queue) fastSend(msg []byte) bool {
	p := q.p
	if !p.lk.tryFast() {
		return false
	}
	ok := !q.closed.Load() && p.tryPut1(msg)
	p.lk.unlockFast(p.fenceFree)
	if ok {
		q.r.wakeConsumer()
	}
	return ok
}

// TrySend is Send without waiting for room: it returns ErrFull if the
// queue has no room for msg now. (A Queue that shares the shared lane may
// still wait a moment for its turn at the lane's lock.)
func (q *Queue) TrySend(msg []byte) error {
	if len(msg) > q.maxMsg {
		return q.tooLarge(len(msg))
	}
	if q.fastSend(msg) {
		return nil
	}
	_, err := q.send(context.Background(), [][]byte{msg}, false, 0, false)
	return err
}

// SendParts sends one message that is the concatenation of parts, as Send
// would send it, copying the parts straight into the queue (no
// intermediate buffer). It is meant for a message made of a header and a
// payload held in different buffers. ErrTooLarge applies to the total.
func (q *Queue) SendParts(ctx context.Context, parts ...[]byte) error {
	n := partsLen(parts)
	if n > q.maxMsg {
		return q.tooLarge(n)
	}
	if q.fastSendParts(parts, n) {
		return nil
	}
	_, err := q.send(ctx, parts, true, n, true)
	return err
}

// fastSendParts is fastSend for a gathered message of n bytes.
func (q *Queue) fastSendParts(parts [][]byte, n int) bool {
	p := q.p
	if !p.lk.tryFast() {
		return false
	}
	ok := !q.closed.Load() && p.tryPutParts(parts, n)
	p.lk.unlockFast(p.fenceFree)
	if ok {
		q.r.wakeConsumer()
	}
	return ok
}

// TrySendParts is SendParts without waiting for room: it returns ErrFull
// if the queue has no room for the message now.
func (q *Queue) TrySendParts(parts ...[]byte) error {
	n := partsLen(parts)
	if n > q.maxMsg {
		return q.tooLarge(n)
	}
	if q.fastSendParts(parts, n) {
		return nil
	}
	_, err := q.send(context.Background(), parts, true, n, false)
	return err
}

func partsLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// SendBatch sends msgs in order, like calling Send for each, but writes
// as many as there is room for before it makes them visible to the
// consumer with one store, which is much cheaper for small messages. It
// returns how many messages were sent; fewer than len(msgs) only with an
// error. If the process dies during SendBatch, the messages it had not
// yet made visible are lost (and were not acknowledged).
func (q *Queue) SendBatch(ctx context.Context, msgs [][]byte) (int, error) {
	for _, m := range msgs {
		if len(m) > q.maxMsg {
			return 0, q.tooLarge(len(m))
		}
	}
	if len(msgs) == 0 {
		if q.closed.Load() {
			return 0, ErrClosed
		}
		return 0, nil
	}
	return q.send(ctx, msgs, false, 0, true)
}

// waitTries is how many times a send finding its lane full retries,
// yielding the core, before it sleeps on the lane's futex.
const waitTries = 4

// send appends msgs (or, if gather, the one message made of the parts
// msgs, total bytes) to the Queue's lane. It waits for room if wait is
// set, else returns ErrFull. It returns the number of messages sent.
func (q *Queue) send(ctx context.Context, msgs [][]byte, gather bool, total int, wait bool) (int, error) {
	want := len(msgs)
	if gather {
		want = 1
	}
	p := q.p
	sent := 0
	waited := false
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for i := 0; ; i++ {
		var seq uint32
		p.lk.lock()
		if q.closed.Load() || p.closed {
			p.lk.unlock()
			return sent, ErrClosed
		}
		if err := p.begin(ctx); err != nil {
			p.lk.unlock()
			return sent, err
		}
		l := p.l
		if i > waitTries {
			// Read the sequence and raise the waiters flag before
			// trying: a head published after the attempt then either
			// changes the sequence (and the wait returns at once) or was
			// seen by the attempt.
			seq = atomic.LoadUint32(l.roomSeq)
			atomic.StoreUint32(l.waiters, 1)
		}
		k, err := p.put(msgs[sent:], gather, total)
		p.end()
		p.lk.unlock()
		sent += k
		switch {
		case err != nil:
			return sent, err
		case sent == want:
			return sent, nil
		case k > 0:
			i = -1 // progress: the lane may have room for the rest
			continue
		case !wait:
			return sent, ErrFull
		}
		if !waited {
			waited = true
			q.fullWaits.Add(1)
		}
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		if i <= waitTries {
			// Give the core away rather than only this goroutine's turn:
			// on a busy machine the consumer that would make room may be
			// waiting for this very core, and a futex sleep costs the
			// consumer a wake-up and this thread its P (see docs/mq.md).
			q.r.plat.yield()
			continue
		}
		if stop == nil && ctx.Done() != nil {
			stop = context.AfterFunc(ctx, func() { q.r.interruptLane(l) })
		}
		q.blocked.Add(1)
		if !q.closed.Load() {
			// Bounded, so that a wake-up lost to a consumer that died
			// between publishing a head and waking us costs a second,
			// not forever.
			q.r.plat.wait(l.roomSeq, seq, time.Second)
		}
		q.blocked.Add(-1)
	}
}

// Receive waits for the next message and returns a copy of it. It returns
// ctx.Err() if ctx ends first and ErrClosed if the Queue is closed. Only
// the consumer (the Queue from Create) may receive.
func (q *Queue) Receive(ctx context.Context) ([]byte, error) {
	var out []byte
	_, err := q.receive(ctx, 1, func(m []byte) { out = append(make([]byte, 0, len(m)), m...) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReceiveBatch waits until at least one message is ready, then calls fn
// for each ready message in order, without copying: msg points into the
// shared ring and is valid only until fn returns. The space is released
// to producers after fn returns (in batches). It returns the number of
// messages passed to fn. If fn panics, the message it was given is
// delivered again by the next call. fn must not wait for room in this same
// queue (with Send): the space it would wait for is released only after
// fn returns.
func (q *Queue) ReceiveBatch(ctx context.Context, fn func(msg []byte)) (int, error) {
	return q.receive(ctx, 1<<30, fn)
}

// TryReceiveBatch is ReceiveBatch without waiting: it calls fn for each
// message ready now, in order, and returns how many it delivered; (0, nil)
// when the queue is empty. msg is valid only until fn returns.
func (q *Queue) TryReceiveBatch(fn func(msg []byte)) (int, error) {
	if !q.consumer {
		return 0, ErrNotConsumer
	}
	q.mu.Lock()
	defer q.unlockConsumer()
	if q.closed.Load() {
		return 0, ErrClosed
	}
	defer q.r.publish()
	n, err := q.r.poll(fn, 1<<30)
	q.received.Add(uint64(n))
	return n, err
}

// Listen calls fn for every message, in order, until ctx ends or an error
// occurs. It returns ctx.Err() when ctx ends. msg is valid only until fn
// returns.
func (q *Queue) Listen(ctx context.Context, fn func(msg []byte)) error {
	for {
		if _, err := q.receive(ctx, 1<<30, fn); err != nil {
			return err
		}
	}
}

func (q *Queue) receive(ctx context.Context, max int, fn func([]byte)) (int, error) {
	if !q.consumer {
		return 0, ErrNotConsumer
	}
	q.mu.Lock()
	defer q.unlockConsumer()
	if q.closed.Load() {
		return 0, ErrClosed
	}
	r := q.r
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
		// Release what was read, whatever the outcome.
		r.publish()
	}()
	for {
		n, err := r.poll(fn, max)
		if n > 0 || err != nil {
			q.received.Add(uint64(n))
			return n, err
		}
		if r.spin(q.spin) {
			continue
		}
		if q.closed.Load() {
			return 0, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// Producers waiting for room must not wait for our sleep.
		r.publish()
		if stop == nil && ctx.Done() != nil {
			stop = context.AfterFunc(ctx, r.interrupt)
		}
		q.blocked.Add(1)
		if !q.closed.Load() {
			r.sleep(ctx)
		}
		q.blocked.Add(-1)
	}
}

// Stats returns the Queue's counters.
func (q *Queue) Stats() Stats {
	r := q.r
	s := Stats{
		Received:  q.received.Load(),
		FullWaits: q.fullWaits.Load(),
		Takeovers: atomic.LoadUint64(r.takeovers),
		Capacity:  int(r.size),
		Lanes:     r.nlanes - 1,
		Lane:      -1,
		Used:      r.used(),
	}
	q.p.lk.lock()
	s.Sent = q.p.sent
	if q.p.l != nil {
		s.Lane = q.p.idx
	}
	q.p.lk.unlock()
	runtime.KeepAlive(q) // the mapping lives as long as q
	return s
}

// Close ends the use of the Queue: later calls and calls blocked in it
// return ErrClosed, and Close returns once the blocked ones have. A
// producer's Close gives its lane back for another producer. A
// consumer's Close releases the space of the messages it received and
// gives up the consumer role, so that the next Create takes over the
// unread messages; if a receiving call is running a handler then (the
// handler may be the caller), Close does not wait for it, and the call
// gives the role up as it returns. The shared memory stays mapped until
// the Queue is garbage collected. Close does not remove the queue (see
// Remove).
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	for q.blocked.Load() != 0 {
		// Repeat the wake-ups: a call may go to sleep just after one.
		if q.consumer {
			q.r.interrupt()
		}
		q.p.interrupt()
		time.Sleep(50 * time.Microsecond)
	}
	q.p.free()
	if q.consumer {
		// Not mu.Lock: a handler that calls Close runs inside a receiving
		// call that holds mu, on this very goroutine. The flag is stored
		// before the TryLock and read after every unlock, so either the
		// TryLock succeeds or the call holding mu sees the flag.
		q.resign.Store(true)
		q.resignIfIdle()
	}
	return nil
}

// unlockConsumer releases the consumer's mutex, then gives up the consumer
// role if a Close asked for it while the mutex was held.
func (q *Queue) unlockConsumer() {
	q.mu.Unlock()
	q.resignIfIdle()
}

// resignIfIdle gives up the consumer role, once, if Close asked for it and
// no receiving call holds the mutex.
func (q *Queue) resignIfIdle() {
	if q.resign.Load() && q.mu.TryLock() {
		if q.resign.Swap(false) {
			q.r.publish()
			q.r.releaseOwner()
			q.role.Store(false)
		}
		q.mu.Unlock()
	}
}
