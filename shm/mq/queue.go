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

// DefaultTornTimeout is how long the consumer waits for a reserved message
// before it checks whether its producer died, when Options.TornTimeout is 0.
const DefaultTornTimeout = time.Second

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
	// TornTimeout is how long the consumer waits for a message a producer
	// has reserved but not finished before it checks whether that producer
	// is still alive (and skips the message if not). 0 means
	// DefaultTornTimeout.
	TornTimeout time.Duration
	// Spin is how long the consumer keeps polling an empty queue before
	// it sleeps on a futex. Polling costs a core while it lasts; sleeping
	// costs the next producer a wake-up system call and the consumer a
	// few microseconds of latency. 0 means DefaultSpin; a negative value
	// means sleep at once. Only Create uses it.
	Spin time.Duration
}

// Stats are a Queue's counters.
type Stats struct {
	Sent      uint64 // messages sent through this Queue
	Received  uint64 // messages received through this Queue
	FullWaits uint64 // sends through this Queue that had to wait for room
	Torn      uint64 // reservations skipped because their producer died, over the queue's life
	Capacity  int    // ring size in bytes
	Used      int    // bytes reserved by producers and not yet released by the consumer
}

// Queue is a handle on a shared-memory message queue: the consumer's (from
// Create) or a producer's (from Open). Its methods are safe for concurrent
// use by multiple goroutines.
type Queue struct {
	r        *ring
	name     string
	consumer bool
	maxMsg   int
	spin     time.Duration // consumer: poll this long before sleeping; <= 0: not at all

	closed atomic.Bool
	// blocked counts calls sleeping in the slow path, which Close wakes
	// and waits for.
	blocked atomic.Int32

	mu sync.Mutex // serialises the consumer side

	sent, received, fullWaits atomic.Uint64
}

// newQueue wraps a ring. maxMsg is the caller's limit, already checked.
// release, if not nil, unmaps the ring's memory; it runs once the Queue is
// unreachable, not at Close, so that no call racing with Close can touch
// unmapped memory without every call paying for a reference count.
func newQueue(r *ring, name string, consumer bool, maxMsg int, spin time.Duration, release func() error) *Queue {
	q := &Queue{r: r, name: name, consumer: consumer, maxMsg: maxMsg, spin: spin}
	if consumer {
		r.attach()
	}
	if release != nil {
		runtime.AddCleanup(q, func(release func() error) { _ = release() }, release)
	}
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
// Messages from one goroutine are received in the order they were sent.
// Send returns ErrTooLarge for a message longer than MaxMessage.
func (q *Queue) Send(ctx context.Context, msg []byte) error {
	if len(msg) > q.maxMsg {
		return q.tooLarge(len(msg))
	}
	if q.closed.Load() {
		return ErrClosed
	}
	if q.r.put(msg) {
		q.sent.Add(1)
		return nil
	}
	if err := q.waitRoom(ctx, func() bool { return q.r.put(msg) }); err != nil {
		return err
	}
	q.sent.Add(1)
	return nil
}

// TrySend is Send without waiting: it returns ErrFull if the queue has no
// room for msg now.
func (q *Queue) TrySend(msg []byte) error {
	if len(msg) > q.maxMsg {
		return q.tooLarge(len(msg))
	}
	if q.closed.Load() {
		return ErrClosed
	}
	if !q.r.put(msg) {
		return ErrFull
	}
	q.sent.Add(1)
	return nil
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
	if q.closed.Load() {
		return ErrClosed
	}
	if !q.r.putParts(parts, n) {
		if err := q.waitRoom(ctx, func() bool { return q.r.putParts(parts, n) }); err != nil {
			return err
		}
	}
	q.sent.Add(1)
	return nil
}

// TrySendParts is SendParts without waiting: it returns ErrFull if the
// queue has no room for the message now.
func (q *Queue) TrySendParts(parts ...[]byte) error {
	n := partsLen(parts)
	if n > q.maxMsg {
		return q.tooLarge(n)
	}
	if q.closed.Load() {
		return ErrClosed
	}
	if !q.r.putParts(parts, n) {
		return ErrFull
	}
	q.sent.Add(1)
	return nil
}

func partsLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// SendBatch sends msgs in order, like calling Send for each, but reserves
// and publishes space for many of them at once, which is much cheaper for
// small messages. It returns how many messages were sent; fewer than
// len(msgs) only with an error. If the process dies during SendBatch, each
// group of messages it reserved together is either received whole or
// skipped whole.
func (q *Queue) SendBatch(ctx context.Context, msgs [][]byte) (int, error) {
	for _, m := range msgs {
		if len(m) > q.maxMsg {
			return 0, q.tooLarge(len(m))
		}
	}
	if q.closed.Load() {
		return 0, ErrClosed
	}
	sent := 0
	for sent < len(msgs) {
		k := q.r.putBatch(msgs[sent:])
		if k == 0 {
			err := q.waitRoom(ctx, func() bool {
				k = q.r.putBatch(msgs[sent:])
				return k > 0
			})
			if err != nil {
				q.sent.Add(uint64(sent))
				return sent, err
			}
		}
		sent += k
	}
	q.sent.Add(uint64(sent))
	return sent, nil
}

// waitRoom retries try until it succeeds, sleeping on the head futex
// between attempts.
func (q *Queue) waitRoom(ctx context.Context, try func() bool) error {
	q.fullWaits.Add(1)
	q.blocked.Add(1)
	defer q.blocked.Add(-1)
	r := q.r
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for i := 0; ; i++ {
		// Read the sequence and raise the waiters flag before trying: a
		// release after the attempt then either changes the sequence
		// (and the wait returns at once) or was seen by the attempt.
		seq := atomic.LoadUint32(r.headSeq)
		if i >= 4 {
			atomic.StoreUint32(r.waiters, 1)
		}
		if try() {
			return nil
		}
		if q.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if i < 4 {
			runtime.Gosched()
			continue
		}
		if stop == nil && ctx.Done() != nil {
			stop = context.AfterFunc(ctx, r.interruptProducers)
		}
		// Bounded, so that a wake-up lost to a consumer that died between
		// releasing space and waking us costs a second, not forever.
		r.plat.wait(r.headSeq, seq, time.Second)
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
	defer q.mu.Unlock()
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
	defer q.mu.Unlock()
	if q.closed.Load() {
		return 0, ErrClosed
	}
	r := q.r
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
		// Release what was read or skipped, whatever the outcome.
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
		d, sleep, err := r.prepareWait(time.Now())
		if err != nil {
			return 0, err
		}
		if !sleep {
			continue
		}
		if stop == nil && ctx.Done() != nil {
			stop = context.AfterFunc(ctx, r.interrupt)
		}
		q.blocked.Add(1)
		if !q.closed.Load() {
			r.sleep(d)
		}
		q.blocked.Add(-1)
	}
}

// Stats returns the Queue's counters.
func (q *Queue) Stats() Stats {
	r := q.r
	s := Stats{
		Sent:      q.sent.Load(),
		Received:  q.received.Load(),
		FullWaits: q.fullWaits.Load(),
		Capacity:  int(r.size),
	}
	s.Torn = atomic.LoadUint64(r.torn)
	s.Used = int(atomic.LoadUint64(r.tail) - atomic.LoadUint64(r.head))
	runtime.KeepAlive(q) // the mapping lives as long as q
	return s
}

// Close ends the use of the Queue: later calls and calls blocked in it
// return ErrClosed, and Close returns once the blocked ones have. A
// consumer's Close releases the space of the messages it received and
// gives up the consumer role, so that the next Create takes over the
// unread messages. The shared memory stays mapped until the Queue is
// garbage collected. Close does not remove the queue (see Remove).
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	for q.blocked.Load() != 0 {
		// Repeat the wake-ups: a call may go to sleep just after one.
		if q.consumer {
			q.r.interrupt()
		}
		q.r.interruptProducers()
		time.Sleep(50 * time.Microsecond)
	}
	if q.consumer {
		q.mu.Lock()
		q.r.publish()
		q.r.releaseOwner()
		q.mu.Unlock()
	}
	return nil
}
