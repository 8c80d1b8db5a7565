package mq

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// Layout of the data area of a queue segment. docs/mq.md describes it byte
// by byte; keep the two in step. Every multi-byte field is in the host's
// native byte order, because producers and the consumer access them with
// atomic instructions.
const (
	layoutMagic   = 0x514d5750 // "PWMQ" read as a little-endian uint32
	layoutVersion = 1

	offMagic   = 0   // uint32 layoutMagic
	offVersion = 4   // uint32 layoutVersion
	offCap     = 8   // uint64 ring capacity in bytes, a power of two
	offMaxMsg  = 16  // uint64 largest payload a producer may send
	offTail    = 64  // uint64 reservation cursor (producers), own cache line
	offHead    = 128 // uint64 release cursor (consumer)
	offHeadSeq = 136 // uint32 futex word: bumped when head moves and someone waits
	offWaiters = 140 // uint32 number of producers waiting for room
	offWake    = 192 // uint32 futex word: 1 while the consumer sleeps or is about to
	offOwner   = 200 // uint64 consumer identity: pid<<42 | start time
	offTorn    = 256 // uint64 torn reservations skipped, over the queue's life
	headerSize = 512 // the ring starts here

	recHeader = 16 // record header: word0 (state), word1 (producer start time)
	recAlign  = 8

	// word0 of a record: pid<<32 | state<<30 | length.
	stateShift  = 30
	stateMask   = 3 << stateShift
	lenMask     = 1<<stateShift - 1
	stWriting   = 1 // reserved by a producer that is still copying; length = payload
	stCommitted = 2 // a message; length = payload bytes
	stSkip      = 3 // padding or a skipped reservation; length = record bytes

	// MinCapacity and MaxCapacity bound a queue's ring size in bytes.
	MinCapacity = 1 << 10
	MaxCapacity = 1 << 30

	ownerStartBits = 42
)

// freeWord is the value every 8-byte word of the ring holds while free, for
// the lap (position / capacity) in which it will next be used. Tagging free
// space with its lap means a producer that stalled for a whole lap can never
// claim a word that has since become someone else's: its compare-and-swap
// expects the free value of its own, older lap. The state bits are zero so a
// free word is never mistaken for a record header.
func freeWord(lap uint64) uint64 {
	// splitmix64 finaliser: free values look random, so payload bytes left
	// over from an earlier lap do not match them by accident.
	x := (lap + 1) * 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return x &^ stateMask
}

func recSize(n int) uint64 { return (uint64(n) + recHeader + recAlign - 1) &^ (recAlign - 1) }

func headerWord(pid int32, state, n uint64) uint64 {
	return uint64(uint32(pid))<<32 | state<<stateShift | n
}

// platform is what the ring needs from the operating system: futex waits
// and wake-ups on words in shared memory, and a liveness test for processes
// that is safe against pid reuse.
type platform interface {
	// wait sleeps while *addr == val, at most timeout (<= 0: no limit).
	wait(addr *uint32, val uint32, timeout time.Duration)
	// wake wakes up to n waiters on addr.
	wake(addr *uint32, n int)
	// alive reports whether the process pid that started at start exists.
	alive(pid int32, start uint64) bool
}

// ident identifies a process: pid and start time (clock ticks since boot).
type ident struct {
	pid   int32
	start uint64
}

// ring is a queue's data area viewed as the structure described above. The
// producer methods are safe for concurrent use by any number of goroutines
// and processes; the consumer methods must be called by one goroutine at a
// time (Queue serialises them).
type ring struct {
	data  []byte // the whole data area: header then ring
	buf   []byte // the ring itself
	base  unsafe.Pointer
	size  uint64 // capacity in bytes, a power of two
	mask  uint64
	shift uint // log2(size)

	maxMsg      int
	tornTimeout time.Duration
	plat        platform
	self        ident

	tail, head, owner, torn *uint64
	headSeq, waiters, wake  *uint32

	// headCache is a producer's last view of head, so that it reads the
	// consumer's cache line only when the ring looks full.
	headCache atomic.Uint64

	// Consumer state.
	rpos       uint64 // next record to read
	pub        uint64 // last published head
	stuckPos   uint64 // rpos when the consumer started waiting on it
	stuckAt    time.Time
	stuck      bool
	tornLocal  uint64
	pattern    []byte // free words for patLap, to fill released space fast
	patLap     uint64
	patternSet bool
}

// layoutSize is the data-area size of a queue whose ring has capacity bytes.
func layoutSize(capacity int) int { return headerSize + capacity }

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

// maxMessageFor checks a requested message limit against a ring size. Zero
// means the default, a quarter of the ring; the largest allowed is half of
// it minus a record header, so that a producer can always make progress
// however the other producers' records are placed.
func maxMessageFor(req, capacity int) (int, error) {
	limit := capacity/2 - recHeader
	switch {
	case req == 0:
		return capacity / 4, nil
	case req < 0 || req > limit:
		return 0, fmt.Errorf("mq: MaxMessage %d out of range (1..%d for a %d-byte ring)", req, limit, capacity)
	}
	return req, nil
}

// initLayout writes a fresh queue into a zeroed data area.
func initLayout(data []byte, capacity, maxMsg int) error {
	if len(data) < layoutSize(capacity) {
		return fmt.Errorf("mq: data area of %d bytes too small for a %d-byte ring", len(data), capacity)
	}
	binary.NativeEndian.PutUint32(data[offMagic:], layoutMagic)
	binary.NativeEndian.PutUint32(data[offVersion:], layoutVersion)
	binary.NativeEndian.PutUint64(data[offCap:], uint64(capacity))
	binary.NativeEndian.PutUint64(data[offMaxMsg:], uint64(maxMsg))
	fillWords(data[headerSize:layoutSize(capacity)], freeWord(0))
	return nil
}

func fillWords(b []byte, v uint64) {
	if len(b) < 8 {
		return
	}
	binary.NativeEndian.PutUint64(b, v)
	for n := 8; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// checkLayout validates the header of a data area and returns the ring
// capacity and message limit stored in it. It never trusts a field before
// checking it, so a corrupt or foreign segment is refused, not misread.
func checkLayout(data []byte) (capacity, maxMsg int, err error) {
	if len(data) < headerSize {
		return 0, 0, fmt.Errorf("%w: data area of %d bytes is shorter than the %d-byte header", ErrCorrupt, len(data), headerSize)
	}
	if uintptr(unsafe.Pointer(&data[0]))%64 != 0 {
		return 0, 0, fmt.Errorf("mq: data area not 64-byte aligned")
	}
	if m := binary.NativeEndian.Uint32(data[offMagic:]); m != layoutMagic {
		return 0, 0, fmt.Errorf("%w: bad magic %#x", ErrCorrupt, m)
	}
	if v := binary.NativeEndian.Uint32(data[offVersion:]); v != layoutVersion {
		return 0, 0, fmt.Errorf("%w: layout version %d, this build reads %d", ErrCorrupt, v, layoutVersion)
	}
	c := binary.NativeEndian.Uint64(data[offCap:])
	if c < MinCapacity || c > MaxCapacity || c&(c-1) != 0 {
		return 0, 0, fmt.Errorf("%w: ring capacity %d is not a power of two in range", ErrCorrupt, c)
	}
	if uint64(len(data)) < headerSize+c {
		return 0, 0, fmt.Errorf("%w: ring of %d bytes does not fit a %d-byte data area", ErrCorrupt, c, len(data))
	}
	m := binary.NativeEndian.Uint64(data[offMaxMsg:])
	if m == 0 || m > c/2-recHeader {
		return 0, 0, fmt.Errorf("%w: message limit %d invalid for a %d-byte ring", ErrCorrupt, m, c)
	}
	// The cursors may be moving (other processes use the queue): read them
	// atomically.
	head := atomic.LoadUint64((*uint64)(unsafe.Pointer(&data[offHead])))
	tail := atomic.LoadUint64((*uint64)(unsafe.Pointer(&data[offTail])))
	if head%recAlign != 0 || tail%recAlign != 0 || head > tail || tail-head > c {
		return 0, 0, fmt.Errorf("%w: cursors head %d, tail %d inconsistent", ErrCorrupt, head, tail)
	}
	return int(c), int(m), nil
}

// newRing views a checked data area as a ring.
func newRing(data []byte, plat platform, self ident, tornTimeout time.Duration) (*ring, error) {
	capacity, maxMsg, err := checkLayout(data)
	if err != nil {
		return nil, err
	}
	r := &ring{
		data:        data,
		buf:         data[headerSize : headerSize+capacity : headerSize+capacity],
		size:        uint64(capacity),
		mask:        uint64(capacity) - 1,
		shift:       uint(bits.TrailingZeros64(uint64(capacity))),
		maxMsg:      maxMsg,
		tornTimeout: tornTimeout,
		plat:        plat,
		self:        self,
	}
	r.base = unsafe.Pointer(&r.buf[0])
	r.tail = r.u64(offTail)
	r.head = r.u64(offHead)
	r.owner = r.u64(offOwner)
	r.torn = r.u64(offTorn)
	r.headSeq = r.u32(offHeadSeq)
	r.waiters = r.u32(offWaiters)
	r.wake = r.u32(offWake)
	r.headCache.Store(atomic.LoadUint64(r.head))
	return r, nil
}

func (r *ring) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.data[off])) }
func (r *ring) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.data[off])) }

// word returns the 8-byte ring word at absolute position pos.
func (r *ring) word(pos uint64) *uint64 { return (*uint64)(unsafe.Add(r.base, pos&r.mask)) }

func (r *ring) free(pos uint64) uint64 { return freeWord(pos >> r.shift) }

// ---- producer side ----

// room reports whether need bytes starting at the tail position t fit. A
// stale t (the tail has moved past head since) also returns true: the
// caller's compare-and-swap on the tail will fail and it will retry.
func (r *ring) room(t, need uint64) bool {
	h := r.headCache.Load()
	if h > t || t+need-h <= r.size {
		return true
	}
	h = atomic.LoadUint64(r.head)
	r.headCache.Store(h)
	return h > t || t+need-h <= r.size
}

// reserve claims a record for an n-byte payload and returns its position,
// or false if the ring has no room now. The claimed record's header says
// stWriting and names this process, so the consumer can tell a slow
// producer from a dead one.
func (r *ring) reserve(n int) (uint64, bool) {
	size := recSize(n)
	claim := headerWord(r.self.pid, stWriting, uint64(n))
	for {
		t := atomic.LoadUint64(r.tail)
		off := t & r.mask
		need, padding := size, off+size > r.size
		if padding {
			need = r.size - off // pad to the end of the ring, then try again
		}
		if !r.room(t, need) {
			return 0, false
		}
		if !atomic.CompareAndSwapUint64(r.tail, t, t+need) {
			continue
		}
		w := r.word(t)
		if padding {
			// Failure means the consumer already skipped this space.
			atomic.CompareAndSwapUint64(w, r.free(t), headerWord(0, stSkip, need))
			continue
		}
		if atomic.CompareAndSwapUint64(w, r.free(t), claim) {
			*r.word(t + 8) = r.self.start
			return t, true
		}
		// The consumer gave up waiting for this reservation and skipped it
		// (we were descheduled for longer than TornTimeout): take another.
	}
}

// commit publishes the record at pos and wakes the consumer if it sleeps.
// The sequentially consistent store orders the payload before the header
// and the header before the read of the wake flag (the consumer does the
// mirror image), so a wake-up is never lost.
func (r *ring) commit(pos uint64, n int) {
	atomic.StoreUint64(r.word(pos), headerWord(r.self.pid, stCommitted, uint64(n)))
	r.wakeConsumer()
}

func (r *ring) wakeConsumer() {
	if atomic.LoadUint32(r.wake) != 0 && atomic.CompareAndSwapUint32(r.wake, 1, 0) {
		r.plat.wake(r.wake, 1)
	}
}

// put copies msg into a fresh record; false if the ring is full.
func (r *ring) put(msg []byte) bool {
	pos, ok := r.reserve(len(msg))
	if !ok {
		return false
	}
	off := pos & r.mask
	copy(r.buf[off+recHeader:], msg)
	r.commit(pos, len(msg))
	return true
}

// putBatch copies as many leading messages of msgs as fit contiguously (at
// least one, unless the ring is full) with one reservation and one commit,
// and returns how many it sent. Records after the first are written
// complete while the first is still stWriting, so the consumer, which
// reads in order, sees them only once the first commit publishes them all.
func (r *ring) putBatch(msgs [][]byte) int {
	var size uint64
	k := 0
	for _, m := range msgs {
		s := recSize(len(m))
		if size+s > r.size/4 && k > 0 {
			break
		}
		size += s
		k++
	}
	for ; k > 1; k-- {
		// A batch is one record as far as placement goes: payload length
		// such that recSize(n) == size.
		if pos, ok := r.reserve(int(size - recHeader)); ok {
			r.writeBatch(pos, msgs[:k])
			return k
		}
		if !r.roomAny(recSize(len(msgs[0]))) {
			return 0
		}
		size -= recSize(len(msgs[k-1]))
	}
	if r.put(msgs[0]) {
		return 1
	}
	return 0
}

// roomAny reports whether a record of size bytes could fit right now.
func (r *ring) roomAny(size uint64) bool {
	t := atomic.LoadUint64(r.tail)
	return r.room(t, size)
}

func (r *ring) writeBatch(pos uint64, msgs [][]byte) {
	p := pos + recSize(len(msgs[0]))
	for _, m := range msgs[1:] {
		off := p & r.mask
		copy(r.buf[off+recHeader:], m)
		*r.word(p + 8) = r.self.start
		*r.word(p) = headerWord(r.self.pid, stCommitted, uint64(len(m)))
		p += recSize(len(m))
	}
	off := pos & r.mask
	copy(r.buf[off+recHeader:], msgs[0])
	// The claim covered the whole batch; shrink it to the first record
	// before committing (the later headers are already in place).
	r.commit(pos, len(msgs[0]))
}

// ---- consumer side ----

// poll calls fn for each ready message at the read position, at most max
// messages and at most one ring's worth of bytes, and returns how many it
// delivered. It stops early at a record that is not ready. fn must not
// retain msg.
func (r *ring) poll(fn func(msg []byte), max int) (int, error) {
	n := 0
	start := r.rpos
	for n < max && r.rpos-start < r.size {
		off := r.rpos & r.mask
		w := atomic.LoadUint64((*uint64)(unsafe.Add(r.base, off)))
		ln := w & lenMask
		switch (w & stateMask) >> stateShift {
		case stCommitted:
			end := off + recHeader + ln
			if ln > uint64(r.maxMsg) || end > r.size {
				return n, r.corrupt(w, "message length out of bounds")
			}
			fn(r.buf[off+recHeader : end : end])
			r.rpos += recSize(int(ln))
			n++
		case stSkip:
			if ln < recAlign || ln%recAlign != 0 || off+ln > r.size {
				return n, r.corrupt(w, "skip length out of bounds")
			}
			r.rpos += ln
		case stWriting:
			return n, nil
		default:
			if w != r.free(r.rpos) {
				return n, r.corrupt(w, "unexpected word")
			}
			return n, nil
		}
		if r.rpos-r.pub >= r.size/8 {
			r.publish()
		}
	}
	return n, nil
}

func (r *ring) corrupt(w uint64, what string) error {
	return fmt.Errorf("%w: %s at position %d (word %#x)", ErrCorrupt, what, r.rpos, w)
}

// publish releases the space read so far to the producers: it refills it
// with the next lap's free words, then moves head, then wakes producers
// waiting for room.
func (r *ring) publish() {
	if r.rpos == r.pub {
		return
	}
	for p := r.pub; p < r.rpos; {
		lapEnd := (p>>r.shift + 1) << r.shift
		e := min(r.rpos, lapEnd)
		r.fill(r.buf[p&r.mask:p&r.mask+(e-p)], p>>r.shift+1)
		p = e
	}
	atomic.StoreUint64(r.head, r.rpos)
	r.pub = r.rpos
	if atomic.LoadUint32(r.waiters) != 0 {
		atomic.AddUint32(r.headSeq, 1)
		r.plat.wake(r.headSeq, 1<<31-1)
	}
}

func (r *ring) fill(b []byte, lap uint64) {
	if !r.patternSet || r.patLap != lap {
		if r.pattern == nil {
			r.pattern = make([]byte, 4096)
		}
		fillWords(r.pattern, freeWord(lap))
		r.patLap, r.patternSet = lap, true
	}
	for len(b) > 0 {
		k := copy(b, r.pattern)
		b = b[k:]
	}
}

// ready reports whether the record at the read position can be consumed.
func (r *ring) ready() bool {
	w := atomic.LoadUint64(r.word(r.rpos))
	s := (w & stateMask) >> stateShift
	return s == stCommitted || s == stSkip || (s == 0 && w != r.free(r.rpos))
}

// spin polls ready for a short while before the consumer pays for a sleep.
func (r *ring) spin() bool {
	for i := range 200 {
		if r.ready() {
			return true
		}
		if i%20 == 19 {
			runtime.Gosched()
		}
	}
	return false
}

// prepareWait decides how long the consumer may sleep on the record at the
// read position, skipping it first if it is torn. It returns false if the
// caller should look again at once (progress was made).
func (r *ring) prepareWait(now time.Time) (time.Duration, bool, error) {
	if !r.stuck || r.stuckPos != r.rpos {
		r.stuck, r.stuckPos, r.stuckAt = true, r.rpos, now
	}
	t := atomic.LoadUint64(r.tail)
	if r.rpos > t || t-r.rpos > r.size {
		return 0, false, fmt.Errorf("%w: read position %d beyond tail %d", ErrCorrupt, r.rpos, t)
	}
	if t == r.rpos {
		// Empty. Sleep bounded anyway, so that a reservation made and
		// abandoned before any wake-up is noticed eventually.
		r.stuckAt = now
		return r.tornTimeout, true, nil
	}
	waited := now.Sub(r.stuckAt)
	if waited < r.tornTimeout {
		return r.tornTimeout - waited, true, nil
	}
	if r.skipTorn(t) {
		return 0, false, nil
	}
	r.stuckAt = now // a live producer: give it another period
	return r.tornTimeout, true, nil
}

// skipTorn skips the reservation at the read position if its producer has
// had TornTimeout to finish it and either died or never wrote its header.
// It reports whether anything changed.
func (r *ring) skipTorn(tail uint64) bool {
	wp := r.word(r.rpos)
	w := atomic.LoadUint64(wp)
	switch (w & stateMask) >> stateShift {
	case stWriting:
		pid := int32(w >> 32)
		if pid == r.self.pid {
			return false // a goroutine of this process: alive by definition
		}
		start := atomic.LoadUint64(r.word(r.rpos + 8))
		if r.plat.alive(pid, start) {
			return false
		}
		size := recSize(int(w & lenMask))
		if off := r.rpos & r.mask; off+size > r.size {
			return false // corrupt; poll reports it
		}
		if atomic.CompareAndSwapUint64(wp, w, headerWord(0, stSkip, size)) {
			r.countTorn()
		}
		return true
	case 0:
		if w != r.free(r.rpos) {
			return true // changed; poll will look
		}
		// Reserved but no header: the producer stopped (or stalled)
		// between moving the tail and claiming its header, so nobody knows
		// the length. Mark every free word up to the first claimed header
		// as an 8-byte skip record. A producer that is merely slow finds
		// its claim refused and reserves again, so nothing is lost; a
		// later producer's claimed header stops the scan, because payload
		// is only written after a successful claim.
		marked := false
		for p := r.rpos; p < tail; p += recAlign {
			if !atomic.CompareAndSwapUint64(r.word(p), r.free(p), headerWord(0, stSkip, recAlign)) {
				break
			}
			marked = true
		}
		if marked {
			r.countTorn()
		}
		return true
	}
	return true
}

func (r *ring) countTorn() {
	atomic.AddUint64(r.torn, 1)
	r.tornLocal++
}

// sleep blocks the consumer until a producer commits, the timeout passes
// or interrupt is called. Setting the wake flag before the last look at
// the ring pairs with commit's store-then-load, so no wake-up is lost.
func (r *ring) sleep(timeout time.Duration) {
	atomic.StoreUint32(r.wake, 1)
	if r.ready() {
		atomic.StoreUint32(r.wake, 0)
		return
	}
	r.plat.wait(r.wake, 1, timeout)
	atomic.StoreUint32(r.wake, 0)
}

// interrupt wakes a sleeping consumer (for cancellation and Close).
func (r *ring) interrupt() {
	atomic.StoreUint32(r.wake, 0)
	r.plat.wake(r.wake, 1<<31-1)
}

// interruptProducers wakes every producer waiting for room.
func (r *ring) interruptProducers() {
	atomic.AddUint32(r.headSeq, 1)
	r.plat.wake(r.headSeq, 1<<31-1)
}

// attach makes the ring's consumer state continue from the published head.
func (r *ring) attach() {
	r.rpos = atomic.LoadUint64(r.head)
	r.pub = r.rpos
	r.stuck = false
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
