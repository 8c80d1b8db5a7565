package mq

import (
	"context"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/procwire/procwire/shm"
)

// producer is the sending side of a Queue: the lane it writes to and its
// last view of that lane's head. A Queue leases its lane at its first send
// and keeps it until Close, so that its messages stay in order.
type producer struct {
	_  pad // written at every send: see pad
	r  *ring
	lk sendLock // serialises the Queue's sending goroutines; guards the rest

	l      *lane      // nil until the first send, and after Close
	idx    int        // l's index: 0 is the shared lane
	lock   *shm.Mutex // the shared lane's lock; nil for a dedicated lane
	closed bool
	sent   uint64 // messages sent, for Stats

	// fenceFree is set if the fast path may skip the store-load fence
	// between publishing a record and loading the consumer's wake flag:
	// plain stores publish and unlock (plainStores), the process is
	// registered for the consumer's membarrier, and the lane's fence flag
	// tells the consumer so.
	fenceFree bool

	// tail is where the next record goes, if known: in a dedicated lane
	// from the lease on (only we write it), in the shared lane while we
	// hold its lock. The lane's tail word is only a hint (see endOf).
	tail      uint64
	tailKnown bool

	// headCache is the lane's head as last read, so that the consumer's
	// cache line is read only when the lane looks full. Heads only grow,
	// so a stale value errs on the side of "full".
	headCache uint64
	_         pad
}

func newProducer(r *ring) *producer {
	return &producer{r: r, lk: sendLock{token: make(chan struct{}, 1)}}
}

// lease gives the producer a lane: a free dedicated lane, else one whose
// producer died, else the shared lane 0. If a dedicated lane's ring
// cannot be reserved it gives the lane back and looks on, among the lanes
// whose rings are reserved already, then falls back to lane 0, which
// needs no more memory if another producer uses it already; if that
// fails too it returns an error wrapping ErrNoSpace, and a later send
// tries again.
func (p *producer) lease() error {
	r := p.r
	me := packOwner(r.self)
	var noSpace error // a dedicated lane's ring could not be reserved
	for pass := range 2 {
		for i := 1; i < r.nlanes; i++ {
			l := &r.lanes[i]
			if noSpace != nil && atomic.LoadUint32(l.reserved) == 0 {
				continue // another ring would not fit either
			}
			o := atomic.LoadUint64(l.owner)
			switch {
			case o == 0:
				if !atomic.CompareAndSwapUint64(l.owner, 0, me) {
					continue
				}
			case pass == 0 || o == me:
				continue
			default:
				// A dead producer published only whole records (a record
				// is published by storing its header last), so its lane
				// is taken over as it is: its messages are read first,
				// then ours.
				id := unpackOwner(o)
				if r.plat.alive(id.pid, id.start) || !atomic.CompareAndSwapUint64(l.owner, o, me) {
					continue
				}
				atomic.AddUint64(r.takeovers, 1)
			}
			err := p.use(i)
			if err == nil {
				return nil
			}
			atomic.CompareAndSwapUint64(l.owner, me, 0)
			noSpace = err
		}
	}
	if err := p.use(0); err != nil {
		if noSpace != nil {
			return noSpace
		}
		return err
	}
	return nil
}

// use makes lane i the producer's, reserving its ring first if no one
// has.
func (p *producer) use(i int) error {
	r := p.r
	if err := r.reserveLane(i); err != nil {
		return err
	}
	// Before the first header store of ours and before raising high, so
	// that a consumer that has not seen the flag cannot have missed one
	// of our records either (see ring.fenceFree). The shared lane takes
	// the fenced path always, and so does every lane of a consumer that
	// asked for it (Options.Fence): a hint, read once, since either
	// choice is correct whatever the consumer does later.
	ff := plainStores && i != 0 && atomic.LoadUint32(r.fence) == 0 && r.plat.register()
	if i != 0 {
		var v uint32
		if ff {
			v = 1
		}
		atomic.StoreUint32(r.lanes[i].fast, v)
	}
	p.fenceFree = ff
	// The consumer must scan the lane before it can hold a record: raise
	// the scanned count first (sequentially consistent, before any header
	// store of ours).
	for {
		h := atomic.LoadUint32(r.high)
		if int(h) > i || atomic.CompareAndSwapUint32(r.high, h, uint32(i+1)) {
			break
		}
	}
	p.l, p.idx = &r.lanes[i], i
	p.headCache = atomic.LoadUint64(p.l.head)
	if i == 0 {
		p.lock = shm.MutexAt(p.l.lock)
	}
	return nil
}

// begin prepares a send: it leases a lane on first use, takes the shared
// lane's lock and finds where the next record goes. The caller holds the
// Queue's lock and calls end afterwards.
func (p *producer) begin(ctx context.Context) error {
	if p.l == nil {
		if err := p.lease(); err != nil {
			return err
		}
	}
	if p.lock != nil {
		// A holder that died is replaced within ~20 ms. There is nothing
		// to repair: a record becomes visible only when its header is
		// stored, after the rest, so a write it left unfinished is simply
		// overwritten.
		if _, err := p.lock.Lock(ctx); err != nil {
			return err
		}
		p.tailKnown = false // other processes have written since
	}
	if !p.tailKnown {
		t, err := p.r.endOf(p.l)
		if err != nil {
			p.end()
			return err
		}
		p.tail, p.tailKnown = t, true
	}
	return nil
}

// end finishes a send: in the shared lane it records the end of the
// records for the next writer and releases the lock.
func (p *producer) end() {
	if p.lock != nil {
		if p.tailKnown {
			atomic.StoreUint64(p.l.tail, p.tail)
		}
		p.lock.Unlock()
	}
}

// put appends msgs to the lane as separate messages or, if gather, as the
// parts of one message of total bytes, and publishes them all at once. It
// returns how many messages it appended: 0 if the lane has no room for
// the first. The caller is between begin and end.
//
// Each record is followed by a zero word, the terminator, that tells the
// consumer where the records end. Everything is written with plain stores
// except the header of the first record (or wrap marker), which is
// stored last with a sequentially consistent store: that store publishes
// the batch, and the terminator it leaves behind was written before it.
func (p *producer) put(msgs [][]byte, gather bool, total int) (int, error) {
	r, l := p.r, p.l
	count := len(msgs)
	if gather {
		count = 1
	}
	t0 := p.tail
	t := t0
	var first uint64 // the header word to store at t0, last
	k := 0
	var err error
	for k < count {
		n := total
		if !gather {
			n = len(msgs[k])
		}
		size := recSize(n)
		off := t & r.mask
		var pad uint64
		if off+size > r.size {
			pad = r.size - off // a wrap marker, then the record at the ring's start
		}
		if need := pad + size + recHeader; t < p.headCache || t+need-p.headCache > r.size {
			var ok bool
			if ok, err = p.room(t, need); !ok {
				break
			}
		}
		if pad != 0 {
			if t == t0 {
				first = wrapMark
			} else {
				*r.word(l, t) = wrapMark
			}
			t += pad
			off = 0
		}
		at := off + recHeader
		if gather {
			for _, part := range msgs {
				at += uint64(copy(l.buf[at:], part))
			}
		} else {
			copy(l.buf[at:], msgs[k])
		}
		if t == t0 {
			first = uint64(n) + 1
		} else {
			*r.word(l, t) = uint64(n) + 1
		}
		t += size
		k++
	}
	if k == 0 {
		return 0, err
	}
	*r.word(l, t) = 0 // the terminator
	raceRelease()
	atomic.StoreUint64(r.word(l, t0), first)
	r.wakeConsumer()
	p.tail = t
	p.sent += uint64(k)
	// Not for the consumer, which follows the headers: a hint for Stats
	// and for the next owner of the lane (see endOf). The fast path does
	// not store it.
	atomic.StoreUint64(l.tail, t)
	return k, err
}

// tryPut1 is put of one message into a dedicated lane without wrapping
// and without rereading the head, the common case, with none of put's
// generality. It reports false when put must do the work: before the
// lease, in the shared lane, at the ring's end, or when the lane looks
// full. The caller holds the lock.
func (p *producer) tryPut1(msg []byte) bool {
	off, ok := p.fastReserve(len(msg))
	if !ok {
		return false
	}
	copy(p.l.buf[off+recHeader:], msg)
	p.fastPublish(off, len(msg))
	return true
}

// tryPutParts is tryPut1 for a message of n bytes gathered from parts.
func (p *producer) tryPutParts(parts [][]byte, n int) bool {
	off, ok := p.fastReserve(n)
	if !ok {
		return false
	}
	at := off + recHeader
	for _, part := range parts {
		at += uint64(copy(p.l.buf[at:], part))
	}
	p.fastPublish(off, n)
	return true
}

// fastReserve returns the ring offset for a record of an n-byte payload
// if the fast path applies: a dedicated lane with room before the ring's
// end by the cached head. It writes the terminator after the record.
func (p *producer) fastReserve(n int) (uint64, bool) {
	l := p.l
	if l == nil || p.lock != nil || !p.tailKnown {
		return 0, false
	}
	r := p.r
	t := p.tail
	size := recSize(n)
	off := t & r.mask
	if off+size > r.size || t < p.headCache || t+size+recHeader-p.headCache > r.size {
		return 0, false
	}
	*r.word(l, t+size) = 0 // the terminator
	return off, true
}

// fastPublish publishes the n-byte record fastReserve placed at off.
func (p *producer) fastPublish(off uint64, n int) {
	raceRelease()
	// The caller's unlock orders this before its look at the wake flag
	// (see fastSend and publishFast).
	publishFast((*uint64)(unsafe.Add(p.l.base, off)), uint64(n)+1)
	p.tail += recSize(n)
	p.sent++
}

// room reports whether need bytes from tail position t have been released
// by the consumer.
func (p *producer) room(t, need uint64) (bool, error) {
	size := p.r.size
	if t >= p.headCache && t+need-p.headCache <= size {
		return true, nil
	}
	h := atomic.LoadUint64(p.l.head)
	raceAcquire()
	if h > t || t-h > size {
		return false, fmt.Errorf("%w: lane %d: head %d, tail %d inconsistent", ErrCorrupt, p.idx, h, t)
	}
	p.headCache = h
	return t+need-h <= size, nil
}

// free gives the lane back, for Close and for a Queue dropped unclosed.
func (p *producer) free() {
	p.lk.lock()
	defer p.lk.unlock()
	p.closed = true
	if p.l != nil && p.idx != 0 {
		if p.tailKnown {
			atomic.StoreUint64(p.l.tail, p.tail) // exact, for the next owner
		}
		if p.fenceFree {
			// No send of ours follows, and every header we stored is
			// visible before this store (the lock's CAS drained them, and
			// x86 keeps stores in order), so the consumer may stop issuing
			// barriers for the lane.
			atomic.StoreUint32(p.l.fast, 0)
		}
		atomic.CompareAndSwapUint64(p.l.owner, packOwner(p.r.self), 0)
	}
	p.l = nil
}

// interrupt wakes the Queue's goroutines waiting for room.
func (p *producer) interrupt() {
	p.lk.lock()
	l := p.l
	p.lk.unlock()
	if l != nil {
		p.r.interruptLane(l)
	}
}
