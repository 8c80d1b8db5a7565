package mq

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/procwire/procwire/shm"
)

// Layout of the data area of a queue segment (layout version 5). docs/mq.md
// describes it byte by byte; keep the two in step. Every multi-byte field
// is in the host's native byte order, because producers and the consumer
// access them with atomic instructions.
const (
	layoutMagic   = 0x514d5750 // "PWMQ" read as a little-endian uint32
	layoutVersion = 5

	// Queue header. Words written by different parties are 128 bytes
	// apart: Intel cores fetch cache lines in 128-byte pairs, so 64 bytes
	// apart would still share.
	offMagic     = 0   // uint32 layoutMagic
	offVersion   = 4   // uint32 layoutVersion
	offCap       = 8   // uint64 lane capacity in bytes, a power of two
	offMaxMsg    = 16  // uint64 largest payload a producer may send
	offLanes     = 24  // uint32 dedicated lanes L (the segment holds L+1)
	offWake      = 128 // uint32 futex word: 1 while the consumer sleeps or is about to
	offOwner     = 256 // uint64 consumer identity: pid<<42 | start time
	offHigh      = 264 // uint32 lanes the consumer scans: 1 + highest lane ever leased
	offTakeovers = 272 // uint64 lanes taken over from dead producers, over the queue's life
	offFence     = 384 // uint32 the consumer's hint: 1 asks producers leasing a lane to keep the store-load fence
	headerSize   = 512 // the lane table starts here

	// Lane control block, one per lane, laneSize bytes each.
	laneSize  = 512
	lnOwner   = 0   // uint64 producer identity pid<<42 | start (dedicated lanes; 0 = free)
	lnWaiters = 8   // uint32 1 while a producer waits (or is about to) for room
	lnRoomSeq = 12  // uint32 futex word: bumped when head moves and someone waits
	lnRing    = 16  // uint32 1 once the lane's ring is reserved (see reserveLane); 0: not to be touched
	lnFast    = 20  // uint32 1 if the lane's producer skips the store-load fence: the consumer must membarrier before it sleeps
	lnLock    = 128 // shm.Mutex (64 bytes): serialises the shared lane's producers
	lnTail    = 256 // uint64 producer-written hint: a record boundary at or before the end (see endOf)
	lnHead    = 384 // uint64 consumer-written: end of the released records

	// The lanes' rings start on a 4 KiB boundary of the segment's file
	// (and mapping), so that reserving a ring takes whole pages: the
	// data area starts shm.HeaderSize bytes into the file.
	ringAlign = 4096

	recHeader = 8 // record header: payload length + 1, wrapMark, or 0 = no record yet (see put)
	recAlign  = 8
	// wrapMark in a record header means: no record here, the next one
	// starts at the beginning of the ring.
	wrapMark = 1 << 63

	// MinCapacity and MaxCapacity bound a lane's ring size in bytes.
	MinCapacity = 1 << 10
	MaxCapacity = 1 << 28

	// DefaultLanes is the number of dedicated lanes of a queue made with
	// Options.Lanes 0; MaxLanes is the most allowed.
	DefaultLanes = 16
	MaxLanes     = 1024

	// maxLayout bounds a queue's data area: (Lanes+1) × capacity.
	maxLayout = 1 << 36

	ownerStartBits = 42
)

func recSize(n int) uint64 { return (uint64(n) + recHeader + recAlign - 1) &^ (recAlign - 1) }

// platform is what the ring needs from the operating system: futex waits
// and wake-ups on words in shared memory, and a liveness test for processes
// that is safe against pid reuse.
type platform interface {
	// wait sleeps while *addr == val, at most timeout (<= 0: no limit).
	// It reports false if the timeout ended it.
	wait(addr *uint32, val uint32, timeout time.Duration) bool
	// wake wakes up to n waiters on addr.
	wake(addr *uint32, n int)
	// alive reports whether the process pid that started at start exists.
	alive(pid int32, start uint64) bool
	// register readies the process to take part in barrier's
	// barriers, and reports whether it does.
	register() bool
	// barrier executes a full memory barrier in every running thread of
	// every process that register readied, and reports whether it did.
	barrier() bool
	// yield gives the processor core to another runnable thread, of any
	// process, if there is one.
	yield()
}

// ident identifies a process: pid and start time (clock ticks since boot).
type ident struct {
	pid   int32
	start uint64
}

// lane is a view of one lane: its control block and its ring.
type lane struct {
	owner, tail, head *uint64
	waiters, roomSeq  *uint32
	reserved          *uint32        // lnRing
	fast              *uint32        // lnFast
	lock              []byte         // the shared lane's mutex bytes
	buf               []byte         // the ring
	base              unsafe.Pointer // &buf[0]
}

// cursor is the consumer's state for one lane.
type cursor struct {
	rpos uint64 // next record to read
	pub  uint64 // last published head
	ok   bool   // the lane's ring is reserved: it may be read
}

// ring is a queue's data area viewed as the structure described above. It
// holds what producers and the consumer share; the producer's own state is
// in producer, the consumer's in the cursors below, used by one goroutine
// at a time (Queue serialises them).
type ring struct {
	_      pad
	data   []byte
	size   uint64 // lane capacity in bytes, a power of two
	mask   uint64
	maxMsg int
	nlanes int // L+1
	plat   platform
	self   ident
	// reserve reserves n bytes of the data area from off (see
	// shm.Segment.Allocate); nil if the data area is all backed by memory.
	reserve func(off, n int64) error

	wake             *uint32
	high             *uint32
	fence            *uint32
	owner, takeovers *uint64
	lanes            []lane

	// Consumer state, written at every poll: on cache lines of its own,
	// so that a producer's ring allocated beside it (a Queue of another
	// goroutine) does not share them.
	_    pad
	cur  []cursor
	next int // lane where the next poll starts, for round-robin fairness
	// naps counts calls of sleep, sleeps the futex waits among them, and
	// lateWakes the waits that ran to their timeout while a record was
	// ready: lost wake-ups, caught by the bound on the sleep. For tests
	// and debugging.
	naps, sleeps, lateWakes int
	_                       pad
}

// pad keeps fields that one goroutine writes often off the cache lines
// that others read: 128 bytes, because Intel cores fetch lines in pairs.
// Queues of one process are heap objects of the same size, often
// allocated side by side, so a consumer's counters and a producer's
// fields would otherwise share a line.
type pad [128]byte

// ringsAt is the offset of lane 0's ring in a data area with L dedicated
// lanes: after the lane table, at a 4 KiB boundary of the segment's file.
func ringsAt(lanes int) int {
	inFile := shm.HeaderSize + headerSize + (lanes+1)*laneSize
	return (inFile+ringAlign-1)&^(ringAlign-1) - shm.HeaderSize
}

// layoutSize is the data-area size of a queue with L dedicated lanes of
// capacity bytes each.
func layoutSize(capacity, lanes int) int { return ringsAt(lanes) + (lanes+1)*capacity }

// roundCapacity returns the ring size used for a requested capacity: the
// next power of two, within [MinCapacity, MaxCapacity].
func roundCapacity(capacity int) (int, error) {
	if capacity <= 0 || capacity > MaxCapacity {
		return 0, fmt.Errorf("mq: capacity %d out of range (%d..%d bytes)", capacity, MinCapacity, MaxCapacity)
	}
	if capacity < MinCapacity {
		capacity = MinCapacity
	}
	return 1 << bits.Len(uint(capacity-1)), nil
}

// checkLanes checks a lane count against a (rounded) capacity.
func checkLanes(lanes, capacity int) error {
	if lanes < 1 || lanes > MaxLanes {
		return fmt.Errorf("mq: Lanes %d out of range (1..%d)", lanes, MaxLanes)
	}
	if uint64(lanes+1)*uint64(capacity) > maxLayout {
		return fmt.Errorf("mq: %d lanes of %d bytes exceed the %d-byte limit of a queue", lanes+1, capacity, uint64(maxLayout))
	}
	return nil
}

// maxMessageFor checks a requested message limit against a ring size. Zero
// means the default, a quarter of the ring; the largest allowed is half of
// it minus 16, so that a record and the wrap marker before it always fit
// in an empty lane.
func maxMessageFor(req, capacity int) (int, error) {
	limit := capacity/2 - 16
	switch {
	case req == 0:
		return capacity / 4, nil
	case req < 0 || req > limit:
		return 0, fmt.Errorf("mq: MaxMessage %d out of range (1..%d for a %d-byte ring)", req, limit, capacity)
	}
	return req, nil
}

// initLayout writes a fresh queue into a zeroed data area.
func initLayout(data []byte, capacity, maxMsg, lanes int) error {
	if len(data) < layoutSize(capacity, lanes) {
		return fmt.Errorf("mq: data area of %d bytes too small for %d lanes of %d bytes", len(data), lanes+1, capacity)
	}
	binary.NativeEndian.PutUint32(data[offMagic:], layoutMagic)
	binary.NativeEndian.PutUint32(data[offVersion:], layoutVersion)
	binary.NativeEndian.PutUint64(data[offCap:], uint64(capacity))
	binary.NativeEndian.PutUint64(data[offMaxMsg:], uint64(maxMsg))
	binary.NativeEndian.PutUint32(data[offLanes:], uint32(lanes))
	binary.NativeEndian.PutUint32(data[offHigh:], 1)
	return nil
}

// geometry is what checkLayout reads from a header.
type geometry struct {
	capacity, maxMsg, lanes int
}

// checkLayout validates the header and lane table of a data area and
// returns the geometry stored in it. It never trusts a field before
// checking it, so a corrupt or foreign segment is refused, not misread.
func checkLayout(data []byte) (geometry, error) {
	var g geometry
	if len(data) < headerSize {
		return g, fmt.Errorf("%w: data area of %d bytes is shorter than the %d-byte header", ErrCorrupt, len(data), headerSize)
	}
	if uintptr(unsafe.Pointer(&data[0]))%64 != 0 {
		return g, fmt.Errorf("%w: data area not 64-byte aligned", ErrCorrupt)
	}
	if m := binary.NativeEndian.Uint32(data[offMagic:]); m != layoutMagic {
		return g, fmt.Errorf("%w: bad magic %#x", ErrCorrupt, m)
	}
	if v := binary.NativeEndian.Uint32(data[offVersion:]); v != layoutVersion {
		return g, fmt.Errorf("%w: layout version %d, this build reads %d", ErrCorrupt, v, layoutVersion)
	}
	c := binary.NativeEndian.Uint64(data[offCap:])
	if c < MinCapacity || c > MaxCapacity || c&(c-1) != 0 {
		return g, fmt.Errorf("%w: lane capacity %d is not a power of two in range", ErrCorrupt, c)
	}
	l := binary.NativeEndian.Uint32(data[offLanes:])
	if l < 1 || l > MaxLanes {
		return g, fmt.Errorf("%w: lane count %d out of range", ErrCorrupt, l)
	}
	g.capacity, g.lanes = int(c), int(l)
	if uint64(len(data)) < uint64(layoutSize(g.capacity, g.lanes)) {
		return g, fmt.Errorf("%w: %d lanes of %d bytes do not fit a %d-byte data area", ErrCorrupt, l+1, c, len(data))
	}
	m := binary.NativeEndian.Uint64(data[offMaxMsg:])
	if m == 0 || m > c/2-16 {
		return g, fmt.Errorf("%w: message limit %d invalid for a %d-byte ring", ErrCorrupt, m, c)
	}
	g.maxMsg = int(m)
	if h := atomic.LoadUint32((*uint32)(unsafe.Pointer(&data[offHigh]))); h < 1 || h > l+1 {
		return g, fmt.Errorf("%w: %d lanes in use, of %d", ErrCorrupt, h, l+1)
	}
	for i := range g.lanes + 1 {
		cb := data[headerSize+i*laneSize:]
		if err := checkCursors(cb, c); err != nil {
			return g, fmt.Errorf("%w (lane %d)", err, i)
		}
		if f := atomic.LoadUint32((*uint32)(unsafe.Pointer(&cb[lnRing]))); f > 1 {
			return g, fmt.Errorf("%w: lane %d: ring flag %d", ErrCorrupt, i, f)
		}
		if f := atomic.LoadUint32((*uint32)(unsafe.Pointer(&cb[lnFast]))); f > 1 {
			return g, fmt.Errorf("%w: lane %d: fence flag %d", ErrCorrupt, i, f)
		}
	}
	return g, nil
}

// checkCursors checks a lane's head and tail word: multiples of 8, and
// the tail (a hint, which may lag behind head) no further than capacity
// ahead of head. The cursors may be moving (other processes use the
// queue), so they cannot be read together: tail is read before and after
// head. Both only grow, and when head was read, tail was between the two
// readings; a check of one tail reading against head would refuse a busy
// lane whose tail moved on meanwhile.
func checkCursors(lane []byte, capacity uint64) error {
	tail1 := atomic.LoadUint64((*uint64)(unsafe.Pointer(&lane[lnTail])))
	head := atomic.LoadUint64((*uint64)(unsafe.Pointer(&lane[lnHead])))
	tail := atomic.LoadUint64((*uint64)(unsafe.Pointer(&lane[lnTail])))
	if head%recAlign != 0 || tail%recAlign != 0 || tail1 > tail || (tail1 > head && tail1-head > capacity) {
		return fmt.Errorf("%w: cursors head %d, tail %d inconsistent", ErrCorrupt, head, tail)
	}
	return nil
}

// newRing views a checked data area as a ring.
func newRing(data []byte, plat platform, self ident, reserve func(off, n int64) error) (*ring, error) {
	g, err := checkLayout(data)
	if err != nil {
		return nil, err
	}
	r := &ring{
		data:    data,
		size:    uint64(g.capacity),
		mask:    uint64(g.capacity) - 1,
		maxMsg:  g.maxMsg,
		nlanes:  g.lanes + 1,
		plat:    plat,
		self:    self,
		reserve: reserve,
	}
	r.wake = r.u32(offWake)
	r.high = r.u32(offHigh)
	r.owner = r.u64(offOwner)
	r.takeovers = r.u64(offTakeovers)
	r.fence = r.u32(offFence)
	r.lanes = make([]lane, r.nlanes)
	rings := ringsAt(g.lanes)
	for i := range r.lanes {
		cb := headerSize + i*laneSize
		at := rings + i*g.capacity
		buf := data[at : at+g.capacity : at+g.capacity]
		r.lanes[i] = lane{
			owner:    r.u64(cb + lnOwner),
			waiters:  r.u32(cb + lnWaiters),
			roomSeq:  r.u32(cb + lnRoomSeq),
			reserved: r.u32(cb + lnRing),
			fast:     r.u32(cb + lnFast),
			lock:     data[cb+lnLock : cb+lnLock+64 : cb+lnLock+64],
			tail:     r.u64(cb + lnTail),
			head:     r.u64(cb + lnHead),
			buf:      buf,
			base:     unsafe.Pointer(&buf[0]),
		}
	}
	return r, nil
}

func (r *ring) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.data[off])) }
func (r *ring) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.data[off])) }

// word returns the 8-byte word of lane l's ring at absolute position pos.
func (r *ring) word(l *lane, pos uint64) *uint64 {
	return (*uint64)(unsafe.Add(l.base, pos&r.mask))
}

// reserveLane makes sure lane i's ring is backed by memory before anyone
// touches it. The queue's segment is sparse: a ring takes memory only once
// a producer leases its lane, and touching (even reading) a page that no
// one reserved would allocate it on the spot, which raises SIGBUS if
// /dev/shm is full. So the first producer of a lane reserves the ring and
// then sets the lane's flag, and nobody, the consumer included, reads a
// ring whose flag is not set. Reserving is idempotent: concurrent first
// users may both do it.
func (r *ring) reserveLane(i int) error {
	l := &r.lanes[i]
	if atomic.LoadUint32(l.reserved) != 0 {
		return nil
	}
	if r.reserve != nil {
		off := int64(ringsAt(r.nlanes-1)) + int64(i)*int64(r.size)
		if err := r.reserve(off, int64(r.size)); err != nil {
			return fmt.Errorf("%w: lane %d (%d bytes): %w", ErrNoSpace, i, r.size, err)
		}
	}
	atomic.StoreUint32(l.reserved, 1)
	return nil
}

// readable reports whether the consumer may read lane i's ring: whether
// a producer has reserved it (see reserveLane). A producer sets the flag
// before it publishes any record, so a lane not yet readable holds none.
func (r *ring) readable(i int) bool {
	c := &r.cur[i]
	if !c.ok {
		c.ok = atomic.LoadUint32(r.lanes[i].reserved) != 0
	}
	return c.ok
}

// scanned returns the number of lanes the consumer must look at: lane 0
// and every dedicated lane ever leased.
func (r *ring) scanned() int {
	return max(1, min(int(atomic.LoadUint32(r.high)), r.nlanes))
}

// wakeConsumer wakes the consumer if it sleeps. The caller has just
// published a record, with a sequentially consistent store or (fenceFree
// producers) a plain one; in the first case the load below cannot be
// ordered before it, in the second the consumer's membarrier before it
// rereads the headers does that. Since the consumer stores the flag
// before it rereads the headers, one of the two sees the other (see
// docs/mq.md).
func (r *ring) wakeConsumer() {
	if atomic.LoadUint32(r.wake) != 0 && atomic.CompareAndSwapUint32(r.wake, 1, 0) {
		r.plat.wake(r.wake, 1)
	}
}

// ---- consumer side ----

// laneQuota is how many messages poll takes from one lane before it moves
// on to the next, so that a busy producer cannot starve the others.
const laneQuota = 256

// poll calls fn for each ready message, visiting the lanes round-robin,
// at most laneQuota messages from each lane and max in all, and returns
// how many it delivered. fn must not retain msg. If fn panics, the message
// it was given stays unread.
func (r *ring) poll(fn func(msg []byte), max int) (int, error) {
	nl := r.scanned()
	if len(r.cur) < nl {
		r.grow(nl)
	}
	n := 0
	for visited := 0; visited < nl && n < max; visited++ {
		i := r.next
		if r.next++; r.next >= nl {
			r.next = 0
		}
		if !r.readable(i) {
			continue
		}
		l, c := &r.lanes[i], &r.cur[i]
		h := atomic.LoadUint64(r.word(l, c.rpos))
		for quota := laneQuota; h != 0 && n < max && quota > 0; h = atomic.LoadUint64(r.word(l, c.rpos)) {
			raceAcquire() // each record may have been published since the last
			off := c.rpos & r.mask
			if h == wrapMark {
				c.rpos += r.size - off
			} else {
				m := h - 1
				if m > uint64(r.maxMsg) {
					return n, r.corrupt(i, c.rpos, fmt.Sprintf("record header %#x", h))
				}
				end := off + recHeader + m
				if end > r.size {
					return n, r.corrupt(i, c.rpos, fmt.Sprintf("record of %d bytes past the ring's end", m))
				}
				fn(l.buf[off+recHeader : end : end])
				c.rpos += recSize(int(m))
				n++
				quota--
			}
			// A producer leaves at least a terminator's room free.
			if c.rpos-c.pub > r.size-recHeader {
				return n, r.corrupt(i, c.rpos, "records beyond the lane's capacity")
			}
		}
		if c.rpos-c.pub >= r.size/4 {
			r.publishLane(i)
		}
	}
	return n, nil
}

func (r *ring) corrupt(lane int, pos uint64, what string) error {
	return fmt.Errorf("%w: lane %d: %s at position %d", ErrCorrupt, lane, what, pos)
}

// endOf returns the position after lane l's last published record, where
// its terminator is. It starts from the lane's head or its tail word,
// whichever is later: both are record boundaries at or before the end
// (the tail word is only stored now and then by a dedicated lane's
// producer, and a writer may die between publishing a record and storing
// it), and follows the headers from there. Records a dead producer left
// unpublished have no header yet, so they end the walk.
func (r *ring) endOf(l *lane) (uint64, error) {
	h := atomic.LoadUint64(l.head)
	pos := max(h, atomic.LoadUint64(l.tail)&^(recAlign-1))
	for {
		if pos-h > r.size-recHeader {
			return 0, fmt.Errorf("%w: no end to the records after head %d", ErrCorrupt, h)
		}
		w := atomic.LoadUint64(r.word(l, pos))
		off := pos & r.mask
		switch {
		case w == 0:
			return pos, nil
		case w == wrapMark:
			pos += r.size - off
		case w-1 <= uint64(r.maxMsg) && off+recHeader+w-1 <= r.size:
			pos += recSize(int(w - 1))
		default:
			return 0, fmt.Errorf("%w: record header %#x at position %d", ErrCorrupt, w, pos)
		}
	}
}

// grow extends the consumer's cursors to nl lanes, starting each at its
// published head.
func (r *ring) grow(nl int) {
	for i := len(r.cur); i < nl; i++ {
		h := atomic.LoadUint64(r.lanes[i].head)
		r.cur = append(r.cur, cursor{rpos: h, pub: h})
	}
}

// publish releases the space read so far in every lane to the producers.
func (r *ring) publish() {
	for i := range r.cur {
		if r.cur[i].rpos != r.cur[i].pub {
			r.publishLane(i)
		}
	}
}

// publishLane moves lane i's head to the read position, then wakes the
// lane's producers if one waits for room. The head store and the waiters
// load pair with the producer's waiters store and head load (see
// waitRoom), so a waiting producer sees the new head or is woken.
func (r *ring) publishLane(i int) {
	l, c := &r.lanes[i], &r.cur[i]
	raceRelease()
	atomic.StoreUint64(l.head, c.rpos)
	c.pub = c.rpos
	// A flag rather than a count of waiters, so that a producer killed
	// while waiting costs one spurious wake-up, not one per release
	// forever. Woken producers that still lack room set it again.
	if atomic.LoadUint32(l.waiters) != 0 {
		atomic.StoreUint32(l.waiters, 0)
		r.interruptLane(l)
	}
}

// ready reports whether some lane holds a record the consumer has not
// read.
func (r *ring) ready() bool {
	nl := r.scanned()
	if len(r.cur) < nl {
		return true // a lane leased since the last poll: let poll look
	}
	for i := range nl {
		if r.readable(i) && atomic.LoadUint64(r.word(&r.lanes[i], r.cur[i].rpos)) != 0 {
			return true
		}
	}
	return false
}

// spin polls ready for up to d before the consumer pays for a sleep; it
// reports whether a record became ready. A sleep costs the next producer a
// wake-up system call (microseconds), so a short poll pays for itself when
// messages arrive at high rates.
func (r *ring) spin(d time.Duration) bool {
	if d <= 0 {
		return r.ready()
	}
	var deadline time.Time
	for i := 0; ; i++ {
		if r.ready() {
			return true
		}
		if i%32 == 31 {
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(d)
			} else if now.After(deadline) {
				return false
			}
			runtime.Gosched()
		}
	}
}

// maxSleep bounds a consumer's sleep. No wake-up is lost while producers
// live; a producer killed between clearing the wake flag and its wake-up
// call would otherwise leave the consumer asleep beside a ready record.
const maxSleep = time.Second

// unfencedSleep bounds the sleep of a consumer that cannot issue the
// membarrier a fence-free producer relies on (a seccomp filter may allow
// the producer's registration and refuse the consumer's call): such a
// consumer may miss a wake-up, so it looks again this often.
const unfencedSleep = time.Millisecond

// sleep blocks the consumer until a producer publishes, maxSleep passes,
// ctx ends or interrupt is called. Setting the wake flag before the last
// look at the lanes pairs with the producers' publish-then-load, so no
// wake-up is lost: for producers that skip the fence between the two, the
// consumer's membarrier supplies it. The same store, before the look at
// ctx, pairs with interrupt's clearing of the flag when ctx ends: either
// the look sees the end, or the clear comes after the store and the wait
// returns.
func (r *ring) sleep(ctx context.Context) {
	r.naps++
	atomic.StoreUint32(r.wake, 1)
	timeout := maxSleep
	if r.fenceFree() && !r.plat.barrier() {
		timeout = unfencedSleep
	}
	if r.ready() || ctx.Err() != nil {
		atomic.StoreUint32(r.wake, 0)
		return
	}
	r.sleeps++
	if !r.plat.wait(r.wake, 1, timeout) && atomic.LoadUint32(r.wake) == 1 && r.ready() {
		// Only a producer that died between clearing the wake flag and
		// its wake-up call, or a consumer without membarrier, explains
		// this; the tests check that it does not happen otherwise.
		r.lateWakes++
	}
	atomic.StoreUint32(r.wake, 0)
}

// fenceFree reports whether the producer of a scanned lane may skip the
// store-load fence between publishing a record and loading the wake flag.
// The caller has stored the wake flag; a producer that leases a lane
// after this look sets the lane's flag and raises high with sequentially
// consistent operations before its first send, so that send sees the
// wake flag (see docs/mq.md).
func (r *ring) fenceFree() bool {
	for i := range r.scanned() {
		if atomic.LoadUint32(r.lanes[i].fast) != 0 {
			return true
		}
	}
	return false
}

// interrupt wakes a sleeping consumer (for cancellation and Close).
func (r *ring) interrupt() {
	atomic.StoreUint32(r.wake, 0)
	r.plat.wake(r.wake, 1<<31-1)
}

// interruptLane wakes every producer waiting for room in lane l.
func (r *ring) interruptLane(l *lane) {
	atomic.AddUint32(l.roomSeq, 1)
	r.plat.wake(l.roomSeq, 1<<31-1)
}

// attach makes the consumer state continue from the published heads.
func (r *ring) attach() {
	atomic.StoreUint32(r.wake, 0) // in case the last consumer died asleep
	r.cur = r.cur[:0]
	r.next = 0
	r.grow(r.scanned())
}

// used returns the bytes published by producers and not yet released by
// the consumer, over all lanes.
func (r *ring) used() int {
	var u uint64
	for i := range r.scanned() {
		if atomic.LoadUint32(r.lanes[i].reserved) == 0 {
			continue // no records, and not to be touched
		}
		h := atomic.LoadUint64(r.lanes[i].head)
		if t, err := r.endOf(&r.lanes[i]); err == nil && t > h {
			u += t - h
		}
	}
	return int(u)
}

// claimOwner makes self the queue's consumer unless a live one exists.
func (r *ring) claimOwner() error {
	me := packOwner(r.self)
	for {
		cur := atomic.LoadUint64(r.owner)
		if cur != 0 {
			id := unpackOwner(cur)
			if id == r.self || r.plat.alive(id.pid, id.start) {
				return fmt.Errorf("%w (pid %d)", ErrBusy, id.pid)
			}
		}
		if atomic.CompareAndSwapUint64(r.owner, cur, me) {
			return nil
		}
	}
}

func (r *ring) releaseOwner() {
	atomic.CompareAndSwapUint64(r.owner, packOwner(r.self), 0)
}

func packOwner(id ident) uint64 {
	return uint64(uint32(id.pid))<<ownerStartBits | id.start&(1<<ownerStartBits-1)
}

func unpackOwner(v uint64) ident {
	return ident{pid: int32(v >> ownerStartBits), start: v & (1<<ownerStartBits - 1)}
}
