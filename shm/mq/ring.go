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
	layoutVersion = 2

	offMagic   = 0   // uint32 layoutMagic
	offVersion = 4   // uint32 layoutVersion
	offCap     = 8   // uint64 ring capacity in bytes, a power of two
	offMaxMsg  = 16  // uint64 largest payload a producer may send
	offTail    = 64  // uint64 reservation cursor (producers), own cache line
	offHead    = 128 // uint64 release cursor (consumer)
	offHeadSeq = 136 // uint32 futex word: bumped when head moves and someone waits
	offWaiters = 140 // uint32 1 while some producer waits (or is about to) for room
	offWake    = 192 // uint32 futex word: 1 while the consumer sleeps or is about to
	offOwner   = 200 // uint64 consumer identity: pid<<42 | start time
	offTorn    = 256 // uint64 torn reservations skipped, over the queue's life
	headerSize = 512 // the claim table starts here, then the ring

	recHeader = 16 // record header: word0 (commit word), word1 (producer start time)
	recAlign  = 8  // records inside a batch
	slotSize  = 64 // records claimed on their own start at a slot boundary

	// A claim (in the claim table) is pid<<32 | state<<30 | length; a
	// record's word0 (in the ring) is lap<<32 | state<<30 | packed<<29 |
	// length, lap being the low 32 bits of position/capacity.
	stateShift  = 30
	stateMask   = 3 << stateShift
	flagPacked  = 1 << 29 // another record of the same batch follows at once
	lenMask     = flagPacked - 1
	stWriting   = 1 // claim: a producer is writing; length = payload bytes
	stCommitted = 2 // word0: a message; length = payload bytes
	stSkip      = 3 // claim: padding; word0: a consumer's progress in a batch; length = bytes

	startLapBits = 20 // word1 = start<<20 | lap: the lap tells a written start from leftovers

	// MinCapacity and MaxCapacity bound a queue's ring size in bytes.
	MinCapacity = 1 << 10
	MaxCapacity = 1 << 29

	ownerStartBits = 42
)

// freeWord is the value a slot's claim word holds while the slot is free:
// the lap (position / capacity) from which it may be claimed, and a fixed
// pattern in the low bits (state bits zero, so never mistaken for a claim).
// The consumer sets it to the next lap when it releases a record that
// started in the slot. A producer may claim a free slot whose lap is not
// later than its own position's lap; one that stalled for a whole lap
// finds its old slot marked for a later lap (or claimed) and fails, so a
// stale claim can never land in someone else's record.
func freeWord(lap uint64) uint64 { return uint64(uint32(lap))<<32 | freeMagic }

const freeMagic = 0x2e3c5a1b // 30 bits, state bits clear

func isFree(c uint64) bool { return c&(1<<32-1) == freeMagic }

// freeFor reports whether free claim word c may be claimed at position pos.
func (r *ring) freeFor(c, pos uint64) bool {
	return isFree(c) && int32(uint32(pos>>r.shift)-uint32(c>>32)) >= 0
}

func recSize(n int) uint64 { return (uint64(n) + recHeader + recAlign - 1) &^ (recAlign - 1) }

func slotRound(n uint64) uint64 { return (n + slotSize - 1) &^ (slotSize - 1) }

func headerWord(pid int32, state, n uint64) uint64 {
	return uint64(uint32(pid))<<32 | state<<stateShift | n
}

// claimSize is the number of ring bytes a claim covers, or 0 if the claim
// is malformed.
func claimSize(c uint64) uint64 {
	n := c & lenMask
	switch (c & stateMask) >> stateShift {
	case stWriting:
		return slotRound(recSize(int(n)))
	case stSkip:
		if n >= slotSize && n%slotSize == 0 {
			return n
		}
	}
	return 0
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
	data   []byte         // the whole data area: header, claim table, ring
	buf    []byte         // the ring itself
	base   unsafe.Pointer // &buf[0]
	claims unsafe.Pointer // the claim table: one uint64 per slot
	size   uint64         // capacity in bytes, a power of two
	mask   uint64
	shift  uint // log2(size)

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
	chain      bool   // rpos is inside a batch, which started at chainStart
	chainStart uint64
	pub        uint64 // last published head
	stuckPos   uint64 // rpos when the consumer started waiting on it
	stuckAt    time.Time
	stuck      bool
	tornLocal  uint64
	pending    []uint64 // slots whose claims release frees at the next publish
}

// layoutSize is the data-area size of a queue whose ring has capacity bytes.
func layoutSize(capacity int) int { return headerSize + capacity/slotSize*8 + capacity }

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
	fillWords(data[headerSize:headerSize+capacity/slotSize*8], freeWord(0))
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
	if uint64(len(data)) < uint64(layoutSize(int(c))) {
		return 0, 0, fmt.Errorf("%w: ring of %d bytes does not fit a %d-byte data area", ErrCorrupt, c, len(data))
	}
	m := binary.NativeEndian.Uint64(data[offMaxMsg:])
	if m == 0 || m > c/2-recHeader {
		return 0, 0, fmt.Errorf("%w: message limit %d invalid for a %d-byte ring", ErrCorrupt, m, c)
	}
	// The cursors may be moving (other processes use the queue), so they
	// cannot be read together: tail is read before and after head. When
	// head was read, tail was between the two readings, and head ≤ tail ≤
	// head + C held then; a check of one tail reading against head would
	// refuse a busy queue whose tail moved on meanwhile.
	tail1 := atomic.LoadUint64((*uint64)(unsafe.Pointer(&data[offTail])))
	head := atomic.LoadUint64((*uint64)(unsafe.Pointer(&data[offHead])))
	tail := atomic.LoadUint64((*uint64)(unsafe.Pointer(&data[offTail])))
	if head%slotSize != 0 || tail%slotSize != 0 || tail1 > tail || head > tail || tail1 > head+c {
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
	ringAt := headerSize + capacity/slotSize*8
	r := &ring{
		data:        data,
		claims:      unsafe.Pointer(&data[headerSize]),
		buf:         data[ringAt : ringAt+capacity : ringAt+capacity],
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

// claim returns the claim word of the slot at absolute position pos.
func (r *ring) claim(pos uint64) *uint64 {
	return (*uint64)(unsafe.Add(r.claims, (pos&r.mask)/slotSize*8))
}

// lapTag is the lap field of the words written at pos.
func (r *ring) lapTag(pos uint64) uint64 { return uint64(uint32(pos>>r.shift)) << 32 }

// ---- producer side ----

// room reports whether need bytes starting at the tail position t have
// been released by the consumer. It is false for a stale t (the tail has
// since moved past head); the caller then rereads the tail.
func (r *ring) room(t, need uint64) bool {
	h := r.headCache.Load()
	if h <= t && t+need-h <= r.size {
		return true
	}
	h = atomic.LoadUint64(r.head)
	r.headCache.Store(h)
	return h <= t && t+need-h <= r.size
}

// reserve claims a record for an n-byte payload and returns its position,
// or false if the ring has no room now. A producer first claims the slot
// at the tail in the claim table, then moves the tail past its record; a
// producer that finds the tail's slot already claimed helps move the tail
// past it, so a producer that dies between the two steps does not block
// the others. The claim names this process, so the consumer can tell a
// slow producer from a dead one.
func (r *ring) reserve(n int) (uint64, bool) {
	size := slotRound(recSize(n))
	claim := headerWord(r.self.pid, stWriting, uint64(n))
	for {
		t := atomic.LoadUint64(r.tail)
		// Room for the tail's slot first: only then is its claim word
		// this lap's (head is read before the claim word for that).
		if !r.room(t, slotSize) {
			if atomic.LoadUint64(r.tail) != t {
				continue
			}
			return 0, false
		}
		cp := r.claim(t)
		c := atomic.LoadUint64(cp)
		if !r.freeFor(c, t) {
			if c&stateMask == 0 {
				if atomic.LoadUint64(r.tail) == t {
					return 0, false // corrupt claim table: behave as full
				}
				continue
			}
			cs := claimSize(c)
			if cs == 0 || t&r.mask+cs > r.size {
				if atomic.LoadUint64(r.tail) == t {
					return 0, false
				}
				continue
			}
			atomic.CompareAndSwapUint64(r.tail, t, t+cs) // help
			continue
		}
		off := t & r.mask
		need, c2 := size, claim
		if off+size > r.size {
			// Pad to the end of the ring, then try again at its start.
			need = r.size - off
			c2 = headerWord(r.self.pid, stSkip, need)
		}
		if !r.room(t, need) {
			if atomic.LoadUint64(r.tail) != t {
				continue
			}
			return 0, false
		}
		if !atomic.CompareAndSwapUint64(cp, c, c2) {
			continue
		}
		if need == size {
			*r.word(t + 8) = r.self.start<<startLapBits | (t>>r.shift)&(1<<startLapBits-1)
		}
		atomic.CompareAndSwapUint64(r.tail, t, t+need) // or someone helped
		if need == size {
			return t, true
		}
	}
}

// commit publishes the record at pos and wakes the consumer if it sleeps.
// The sequentially consistent store orders the payload before the header
// and the header before the read of the wake flag (the consumer does the
// mirror image), so a wake-up is never lost.
func (r *ring) commit(pos uint64, n int) {
	atomic.StoreUint64(r.word(pos), r.lapTag(pos)|stCommitted<<stateShift|uint64(n))
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

// putParts copies the concatenation of parts, n bytes in all, into a fresh
// record; false if the ring is full.
func (r *ring) putParts(parts [][]byte, n int) bool {
	pos, ok := r.reserve(n)
	if !ok {
		return false
	}
	off := pos&r.mask + recHeader
	for _, p := range parts {
		off += uint64(copy(r.buf[off:], p))
	}
	r.commit(pos, n)
	return true
}

// putBatch copies as many leading messages of msgs as fit contiguously (at
// least one, unless the ring is full) with one reservation and one commit,
// and returns how many it sent. Records after the first are written
// complete before the first is committed, so the consumer, which reads in
// order, sees them only once that commit publishes them all.
func (r *ring) putBatch(msgs [][]byte) int {
	var size uint64
	k := 0
	for _, m := range msgs {
		s := recSize(len(m))
		if slotRound(size+s) > r.size/4 && k > 0 {
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
		if !r.roomAny(slotRound(recSize(len(msgs[0])))) {
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
	for i, m := range msgs[1:] {
		off := p & r.mask
		copy(r.buf[off+recHeader:], m)
		h := r.lapTag(p) | stCommitted<<stateShift | uint64(len(m))
		if i < len(msgs)-2 {
			h |= flagPacked
		}
		*r.word(p) = h
		p += recSize(len(m))
	}
	off := pos & r.mask
	copy(r.buf[off+recHeader:], msgs[0])
	// The claim covered the whole batch; the commit shrinks it to the
	// first record, marked packed: the later headers are already in place.
	atomic.StoreUint64(r.word(pos), r.lapTag(pos)|stCommitted<<stateShift|flagPacked|uint64(len(msgs[0])))
	r.wakeConsumer()
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
		if w&^(1<<32-1) == r.lapTag(r.rpos) {
			switch (w & stateMask) >> stateShift {
			case stCommitted:
				end := off + recHeader + ln
				if ln > uint64(r.maxMsg) || end > r.size {
					return n, r.corrupt(w, "message length out of bounds")
				}
				fn(r.buf[off+recHeader : end : end])
				if !r.chain {
					r.release(r.rpos)
				}
				if w&flagPacked != 0 {
					if !r.chain {
						r.chain, r.chainStart = true, r.rpos
					}
					r.rpos += recSize(int(ln))
				} else {
					start, stop := r.rpos, slotRound(r.rpos+recSize(int(ln)))
					if r.chain {
						start = r.chainStart
					}
					r.retire(start, stop)
					r.rpos = stop
					r.chain = false
				}
				n++
				goto next
			case stSkip:
				// Left by a consumer: padding or a torn record it skipped
				// (so that a successor need not ask the freed claim), or,
				// packed, its progress through a batch.
				if ln < recAlign || ln%recAlign != 0 || off+ln > r.size || off%slotSize != 0 || r.chain {
					return n, r.corrupt(w, "bad skip record")
				}
				if w&flagPacked != 0 {
					r.chain, r.chainStart = true, r.rpos
					r.rpos += ln
				} else {
					if ln%slotSize != 0 {
						return n, r.corrupt(w, "bad skip record")
					}
					r.release(r.rpos)
					r.retire(r.rpos, r.rpos+ln) // again, in case a consumer died doing so
					r.rpos += ln
				}
				goto next
			}
		}
		if r.chain || off%slotSize != 0 {
			return n, r.corrupt(w, "missing record inside a batch")
		}
		{
			c := atomic.LoadUint64(r.claim(r.rpos))
			switch (c & stateMask) >> stateShift {
			case stSkip:
				cs := claimSize(c)
				if cs == 0 || off+cs > r.size {
					return n, r.corrupt(c, "bad padding claim")
				}
				// The padder may not have moved the tail past it yet.
				atomic.CompareAndSwapUint64(r.tail, r.rpos, r.rpos+cs)
				r.skip(cs)
			case stWriting:
				return n, nil
			default:
				if !isFree(c) {
					return n, r.corrupt(c, "bad claim")
				}
				return n, nil
			}
		}
	next:
		if r.rpos-r.pub >= r.size/8 && !r.chain {
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
	target := r.rpos
	if r.chain {
		// Part way through a batch: head can only move to the batch's
		// start (a slot boundary), so record the progress there instead,
		// as a skip record over the messages already delivered. A
		// consumer that takes over resumes exactly at the read position.
		atomic.StoreUint64(r.word(r.chainStart), r.lapTag(r.chainStart)|stSkip<<stateShift|flagPacked|(r.rpos-r.chainStart))
		target = r.chainStart
	}
	r.flushReleases()
	if target == r.pub {
		return
	}
	atomic.StoreUint64(r.head, target)
	r.pub = target
	// A flag rather than a count of waiters, so that a producer killed
	// while waiting costs one spurious wake-up, not one per release
	// forever. Woken producers that still lack room set it again.
	if atomic.LoadUint32(r.waiters) != 0 {
		atomic.StoreUint32(r.waiters, 0)
		r.interruptProducers()
	}
}

// ready reports whether poll would make progress (or report corruption)
// at the read position.
func (r *ring) ready() bool {
	w := atomic.LoadUint64(r.word(r.rpos))
	if w&^(1<<32-1) == r.lapTag(r.rpos) && w&stateMask != 0 {
		return true
	}
	if r.chain || r.rpos%slotSize != 0 {
		return true
	}
	c := atomic.LoadUint64(r.claim(r.rpos))
	return !isFree(c) && (c&stateMask)>>stateShift != stWriting
}

// skip steps over size bytes of padding or a torn record at the read
// position. It first records the skip in the ring, where a consumer that
// takes over after a crash (before head moved past it) will find it: the
// claim word that described it is freed at once.
func (r *ring) skip(size uint64) {
	r.retire(r.rpos, r.rpos+size)
	r.release(r.rpos)
	r.rpos += size
}

// retire overwrites the first two words of every slot in [start, end), a
// record, batch, padding or torn record the consumer is done with, before
// the space is released. Without it, bytes left there (any payload) could
// be read a lap later as the commit word or the start time of a record
// claimed at one of those slots but not yet written: the lap tag in those
// words can tell the bytes of earlier laps from this lap's only if every
// slot start is rewritten each lap. The first word becomes a skip record
// over the whole range, and is written first, so that a consumer that
// takes over after this one died part way steps over the range rather
// than reading a record whose later slots are already overwritten; the
// other slots get one-slot skip records of this lap, and every second
// word a zero start time (unknown: liveness is then decided by pid).
func (r *ring) retire(start, end uint64) {
	// A range never wraps (padding fills the ring's end), so it is all in
	// start's lap.
	skip := r.lapTag(start) | stSkip<<stateShift
	if end-start > slotSize {
		atomic.StoreUint64(r.word(start), skip|(end-start))
		for p := start + slotSize; p < end; p += slotSize {
			w := (*[2]uint64)(unsafe.Add(r.base, p&r.mask))
			w[0], w[1] = skip|slotSize, 0
		}
	} else {
		*r.word(start) = skip | slotSize
	}
	*r.word(start + 8) = 0
}

// release frees the claim of the slot at pos, where a record the consumer
// has read started, for the next lap. Producers cannot reach the slot's
// next lap before head moves past pos, so it is enough to do so before
// publishing head; doing it then, in bulk, keeps the consumer off the
// claim table's cache lines while producers claim slots in them.
func (r *ring) release(pos uint64) {
	if len(r.pending) == cap(r.pending) && len(r.pending) > 0 {
		r.flushReleases()
	}
	r.pending = append(r.pending, pos)
}

func (r *ring) flushReleases() {
	for _, p := range r.pending {
		atomic.StoreUint64(r.claim(p), freeWord(p>>r.shift+1))
	}
	r.pending = r.pending[:0]
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

// prepareWait decides how long the consumer may sleep on the record at the
// read position, skipping it first if it is torn. It returns false if the
// caller should look again at once (progress was made).
func (r *ring) prepareWait(now time.Time) (time.Duration, bool, error) {
	if !r.stuck || r.stuckPos != r.rpos {
		r.stuck, r.stuckPos, r.stuckAt = true, r.rpos, now
	}
	t := atomic.LoadUint64(r.tail)
	if t == r.rpos && !r.chain && r.rpos%slotSize == 0 {
		// A claim the tail has not been moved past: its producer may have
		// died between the two steps. Help, as a producer would.
		c := atomic.LoadUint64(r.claim(t))
		if cs := claimSize(c); cs != 0 && t&r.mask+cs <= r.size {
			atomic.CompareAndSwapUint64(r.tail, t, t+cs)
			t = atomic.LoadUint64(r.tail)
		}
	}
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
	if progress, err := r.skipTorn(t); progress || err != nil {
		return 0, false, err
	}
	r.stuckAt = now // a live producer: give it another period
	return r.tornTimeout, true, nil
}

// skipTorn skips the record at the read position if its producer has had
// TornTimeout to finish it and has died. It reports whether anything
// changed.
func (r *ring) skipTorn(tail uint64) (bool, error) {
	if r.chain || r.rpos%slotSize != 0 || r.ready() {
		return true, nil // poll will deliver it or report the corruption
	}
	w0 := atomic.LoadUint64(r.word(r.rpos))
	c := atomic.LoadUint64(r.claim(r.rpos))
	if (c&stateMask)>>stateShift != stWriting {
		// Free, yet below the tail (read before it): producers claim a
		// slot before they move the tail past it, so this is damage.
		return false, fmt.Errorf("%w: unclaimed slot at %d below tail %d", ErrCorrupt, r.rpos, tail)
	}
	pid := int32(c >> 32)
	if pid == r.self.pid {
		return false, nil // a goroutine of this process: alive by definition
	}
	// The start time is valid only if it carries this lap: the producer
	// may have died (or stalled) between its claim and writing it. Without
	// it, the pid alone decides.
	var start uint64
	if w1 := atomic.LoadUint64(r.word(r.rpos + 8)); w1&(1<<startLapBits-1) == (r.rpos>>r.shift)&(1<<startLapBits-1) {
		start = w1 >> startLapBits
	}
	if r.plat.alive(pid, start) {
		return false, nil
	}
	cs := claimSize(c)
	if cs == 0 || r.rpos&r.mask+cs > r.size || r.rpos+cs > tail {
		return false, r.corrupt(c, "bad claim")
	}
	// The producer may have committed (and then died) since ready was
	// checked: skip only if the commit word is still what it was.
	if !atomic.CompareAndSwapUint64(r.word(r.rpos), w0, r.lapTag(r.rpos)|stSkip<<stateShift|cs) {
		return true, nil
	}
	r.retire(r.rpos, r.rpos+cs) // the dead producer's start time and payload
	r.release(r.rpos)
	r.rpos += cs
	r.countTorn()
	return true, nil
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
	if r.pending == nil {
		r.pending = make([]uint64, 0, 1024)
	}
	atomic.StoreUint32(r.wake, 0) // in case the last consumer died asleep
	r.rpos = atomic.LoadUint64(r.head)
	r.pub = r.rpos
	r.stuck = false
	r.chain = false
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
