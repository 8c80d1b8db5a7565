package dict

import (
	"math"
	"sync/atomic"
	"time"
)

// Dict is a shared dictionary opened by this process. Its methods are safe
// for concurrent use by many goroutines and many processes; each one is
// atomic (it runs under the lock of the key's shard), as in
// ngx.shared.DICT, but atomicity does not extend across calls. Methods
// that cover the whole dictionary (Keys, FlushAll, FlushExpired, Stats,
// Check) take the shards one after the other.
type Dict struct {
	shards []table
	mask   uint32 // len(shards)-1
	size   int    // bytes of the region
	name   string
	closed atomic.Bool
	unmap  func() error // releases the mapping; nil over plain memory
	peek   bool         // reads try table.peek before taking the lock
	claim  claimer      // stores try setClaimed before taking the lock if claim.j != 0
}

// newDict wires a Dict over a validated region, with lockAt giving the
// lock stored in a shard's header bytes.
func newDict(name string, data []byte, lockAt func(hdr []byte) locker, opts *Options) (*Dict, error) {
	n, size, err := validateRegion(data)
	if err != nil {
		return nil, err
	}
	d := &Dict{name: name, shards: make([]table, n), mask: uint32(n - 1), size: len(data)}
	for i := range d.shards {
		t := &d.shards[i]
		t.data = shardBytes(data, i, size)
		t.mu = lockAt(t.data[offMutex : offMutex+mutexSize])
		t.now = wallMillis
		t.log = opts.logger().With("dict", name, "shard", i)
		t.shard, t.shardMask = uint32(i), uint32(n-1)
		t.setGeometry()
		t.journal = offJournal
	}
	return d, nil
}

// Name returns the name the dictionary was opened with.
func (d *Dict) Name() string { return d.name }

// Close releases this process's mapping of the dictionary; the contents
// stay for the other processes. It must not run concurrently with other
// methods on d. Calls after the first return nil.
func (d *Dict) Close() error {
	if d.closed.Swap(true) || d.unmap == nil {
		return nil
	}
	if d.claim.release != nil {
		d.claim.release()
	}
	return d.unmap()
}

// lockKey locks the shard of key and returns it with the key's hash.
func (d *Dict) lockKey(key string) (*table, uint64, error) {
	if d.closed.Load() {
		return nil, 0, ErrClosed
	}
	t, h := d.shardOf(key)
	t.lock()
	return t, h, nil
}

// shardOf returns the shard of key and the key's hash.
func (d *Dict) shardOf(key string) (*table, uint64) {
	h := hashKey(key)
	return &d.shards[shardOf(h)&d.mask], h
}

// eachShard runs fn on every shard under its lock, stopping at an error.
func (d *Dict) eachShard(fn func(t *table) error) error {
	if d.closed.Load() {
		return ErrClosed
	}
	for i := range d.shards {
		if err := d.shards[i].locked(fn); err != nil {
			return err
		}
	}
	return nil
}

func (t *table) locked(fn func(t *table) error) error {
	t.lock()
	defer t.mu.Unlock()
	return fn(t)
}

// Get returns the value of key and its user flags. A missing or expired key
// gives ErrNotFound, a list ErrIsList. Get marks the item referenced, which
// protects it from the next eviction pass (see the package doc). String values are copied; see GetBytes for a read that does not
// allocate.
func (d *Dict) Get(key string) (Value, uint32, error) {
	if err := checkKey(key); err != nil {
		return Value{}, 0, err
	}
	if d.peek && !d.closed.Load() {
		t, h := d.shardOf(key)
		for range peekTries {
			var p peeked
			ok, busy := t.peek(key, h, &p)
			if ok {
				if v, ok := t.peekValue(&p); ok {
					return v, p.flags, nil
				}
			} else if !busy {
				break
			}
		}
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return Value{}, 0, err
	}
	defer t.mu.Unlock()
	o, err := t.getLive(key, h)
	if err != nil {
		return Value{}, 0, err
	}
	return t.value(o), t.u32(o + chFlags), nil
}

// GetBytes appends the value of key in its String form (a string as is, a
// number as %.14g, "true"/"false") to buf and returns the extended buffer,
// the value's type and its flags. Errors are those of Get. With a buffer of
// enough capacity it does not allocate.
func (d *Dict) GetBytes(key string, buf []byte) ([]byte, Type, uint32, error) {
	if err := checkKey(key); err != nil {
		return buf, TypeNil, 0, err
	}
	if d.peek && !d.closed.Load() {
		t, h := d.shardOf(key)
		for range peekTries {
			var p peeked
			ok, busy := t.peek(key, h, &p)
			if !ok {
				if !busy {
					break
				}
				continue
			}
			if p.typ == TypeString {
				out := append(buf, t.data[p.vo:p.vo+uint64(p.vlen)]...)
				if t.still(&p) {
					return out, p.typ, p.flags, nil
				}
			} else if v, ok := t.peekValue(&p); ok {
				return v.AppendText(buf), p.typ, p.flags, nil
			}
		}
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return buf, TypeNil, 0, err
	}
	defer t.mu.Unlock()
	o, err := t.getLive(key, h)
	if err != nil {
		return buf, TypeNil, 0, err
	}
	return t.appendValue(buf, o), Type(t.u8(o + chType)), t.u32(o + chFlags), nil
}

func (t *table) getLive(key string, h uint64) (uint32, error) {
	o := t.find(key, h)
	if o == 0 {
		return 0, ErrNotFound
	}
	if t.u64(o+chExpire) != 0 {
		c := clock{now: t.now}
		if t.expired(o, &c) {
			return 0, ErrNotFound
		}
	}
	if Type(t.u8(o+chType)) == TypeList {
		return 0, ErrIsList
	}
	t.reference(o)
	return o, nil
}

// GetStale is Get that also returns an expired item not yet reclaimed,
// with stale set. Whether an expired item is still there is not
// guaranteed. It does not change the LRU order.
func (d *Dict) GetStale(key string) (v Value, flags uint32, stale bool, err error) {
	if err := checkKey(key); err != nil {
		return Value{}, 0, false, err
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return Value{}, 0, false, err
	}
	defer t.mu.Unlock()
	o := t.find(key, h)
	if o == 0 {
		return Value{}, 0, false, ErrNotFound
	}
	if Type(t.u8(o+chType)) == TypeList {
		return Value{}, 0, false, ErrIsList
	}
	c := t.clock()
	return t.value(o), t.u32(o + chFlags), t.expired(o, &c), nil
}

type storeMode uint8

const (
	modeSet storeMode = iota
	modeAdd
	modeReplace
)

// Set stores v under key whatever was there, with a TTL (0 = never expires,
// millisecond resolution) and user flags. When memory is short it evicts
// least recently used items, unexpired ones too, and reports forcible.
// It fails with ErrNoMemory if room cannot be made; the key's old value,
// freed to make room, is then gone too, as in OpenResty. A nil Value
// deletes key.
func (d *Dict) Set(key string, v Value, ttl time.Duration, flags uint32) (forcible bool, err error) {
	return d.store(modeSet, false, key, v, ttl, flags)
}

// SafeSet is Set that never evicts: ErrNoMemory instead.
func (d *Dict) SafeSet(key string, v Value, ttl time.Duration, flags uint32) error {
	_, err := d.store(modeSet, true, key, v, ttl, flags)
	return err
}

// Add is Set only if key is missing or expired; otherwise ErrExists.
func (d *Dict) Add(key string, v Value, ttl time.Duration, flags uint32) (forcible bool, err error) {
	return d.store(modeAdd, false, key, v, ttl, flags)
}

// SafeAdd is Add that never evicts: ErrNoMemory instead.
func (d *Dict) SafeAdd(key string, v Value, ttl time.Duration, flags uint32) error {
	_, err := d.store(modeAdd, true, key, v, ttl, flags)
	return err
}

// Replace is Set only if key is present and not expired; otherwise
// ErrNotFound.
func (d *Dict) Replace(key string, v Value, ttl time.Duration, flags uint32) (forcible bool, err error) {
	return d.store(modeReplace, false, key, v, ttl, flags)
}

// Delete removes key. Deleting a missing key is not an error.
func (d *Dict) Delete(key string) error {
	_, err := d.store(modeSet, false, key, Value{}, 0, 0)
	return err
}

func (d *Dict) store(mode storeMode, safe bool, key string, v Value, ttl time.Duration, flags uint32) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	switch {
	case v.typ == TypeNil && mode != modeSet:
		return false, ErrNilValue
	case v.typ > TypeBool:
		return false, ErrBadValue
	case ttl < 0:
		return false, ErrBadExptime
	case uint64(len(v.str)) > math.MaxUint32:
		// Its length would not fit the item's u32 value length, and
		// truncated it would make the copy overrun the item.
		return false, ErrNoMemory
	}
	if d.claim.j != 0 && ttl == 0 && v.typ != TypeNil && mode != modeAdd && !d.closed.Load() {
		t, h := d.shardOf(key)
		if vlen := valueLen(v); vlen <= journalMaxValue && d.setClaimed(t, key, h, v, vlen, flags) {
			return false, nil
		}
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	c := t.clock()
	t.sweep(&c, 2)
	old, link := t.findLink(key, h)
	live := old != 0 && !t.expired(old, &c)
	switch {
	case mode == modeAdd && live:
		return false, ErrExists
	case mode == modeReplace && !live:
		return false, ErrNotFound
	case v.typ == TypeNil:
		if old != 0 {
			t.remove(old)
		}
		return false, nil
	}
	vlen := valueLen(v)
	if old != 0 && t.fitsInPlace(old, key, vlen) {
		t.rewrite(old, v, vlen, flags, ttlMillis(ttl, &c))
		return false, nil
	}
	o, forcible := t.newItemReplacing(key, vlen, safe, &old)
	if o == 0 {
		return forcible, ErrNoMemory
	}
	if old != 0 {
		// newItemReplacing found room without evicting, so the chain
		// and link are as findLink left them.
		t.raiseSeq(old)
		t.fillItem(o, key, h, v.typ, vlen, flags, ttlMillis(ttl, &c))
		t.putValue(o, v)
		t.replace(o, old, link)
		return forcible, nil
	}
	t.writeItem(o, key, h, v.typ, vlen, flags, ttlMillis(ttl, &c))
	t.putValue(o, v)
	t.commit(o)
	return forcible, nil
}

// newItemReplacing allocates a new item that is to replace *old. The new
// item is written before the old one is removed, so a holder killed in
// between leaves one of the two; only when memory is too short for both
// is the old one freed first (then set to 0).
func (t *table) newItemReplacing(key string, vlen uint32, safe bool, old *uint32) (uint32, bool) {
	o, _ := t.newItem(key, vlen, true)
	if o != 0 {
		return o, false
	}
	if *old != 0 {
		t.remove(*old)
		*old = 0
	}
	return t.newItem(key, vlen, safe)
}

// Incr adds delta to the number stored under key and returns the result.
// A missing or expired key gives ErrNotFound, unless init is given: then
// the key is created as *init + delta with TTL initTTL, evicting if needed
// (forcible). An existing item keeps its TTL. A non-number gives
// ErrNotNumber.
func (d *Dict) Incr(key string, delta float64, init *float64, initTTL time.Duration) (float64, bool, error) {
	if err := checkKey(key); err != nil {
		return 0, false, err
	}
	switch {
	case initTTL < 0:
		return 0, false, ErrBadInitTTL
	case initTTL != 0 && init == nil:
		return 0, false, ErrInitTTL
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return 0, false, err
	}
	defer t.mu.Unlock()
	c := t.clock()
	t.sweep(&c, 2)
	old := t.find(key, h)
	if old != 0 && !t.expired(old, &c) {
		if Type(t.u8(old+chType)) != TypeNumber {
			return 0, false, ErrNotNumber
		}
		vo := t.valOff(old)
		n := math.Float64frombits(t.u64(vo)) + delta
		t.store64(vo, math.Float64bits(n))
		t.reference(old)
		return n, false, nil
	}
	if init == nil {
		return 0, false, ErrNotFound
	}
	n := *init + delta
	o, forcible := t.newItemReplacing(key, 8, false, &old)
	if o == 0 {
		return 0, forcible, ErrNoMemory
	}
	if old != 0 {
		t.raiseSeq(old) // the new item must win over it in a rebuild
	}
	t.writeItem(o, key, h, TypeNumber, 8, 0, ttlMillis(initTTL, &c))
	t.putValue(o, Number(n))
	t.commit(o)
	if old != 0 {
		t.remove(old)
	}
	return n, forcible, nil
}

// TTL returns the time key has left to live, 0 if it never expires.
// A missing or expired key gives ErrNotFound (OpenResty reports a negative
// TTL for an expired item not yet reclaimed).
func (d *Dict) TTL(key string) (time.Duration, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	c := t.clock()
	o := t.find(key, h)
	if o == 0 || t.expired(o, &c) {
		return 0, ErrNotFound
	}
	exp := int64(t.u64(o + chExpire))
	if exp == 0 {
		return 0, nil
	}
	return time.Duration(exp-c.get()) * time.Millisecond, nil
}

// Expire sets a new TTL on key (0 = never expires). A missing or expired
// key gives ErrNotFound: an expired item is not revived, unlike OpenResty.
func (d *Dict) Expire(key string, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if ttl < 0 {
		return ErrBadExptime
	}
	t, h, err := d.lockKey(key)
	if err != nil {
		return err
	}
	defer t.mu.Unlock()
	c := t.clock()
	o := t.find(key, h)
	if o == 0 || t.expired(o, &c) {
		return ErrNotFound
	}
	exp := ttlMillis(ttl, &c)
	switch old := t.u64(o + chExpire); {
	case old == 0 && exp != 0:
		t.put64(offTTLItems, t.u64(offTTLItems)+1)
	case old != 0 && exp == 0:
		t.put64(offTTLItems, t.u64(offTTLItems)-1)
	}
	t.store64(o+chExpire, uint64(exp))
	return nil
}

// FlushAll marks every item expired without freeing memory, as OpenResty
// does: Get no longer sees them, GetStale may, and stores or FlushExpired
// reclaim the memory.
func (d *Dict) FlushAll() error {
	return d.eachShard(func(t *table) error {
		for o := t.u32(offLRUHead); o != 0; o = t.u32(o + chNext) {
			t.settle(o)
			t.store64(o+chExpire, 1)
		}
		t.put64(offTTLItems, t.u64(offItems))
		return nil
	})
}

// FlushExpired frees expired items, at most max of them (max <= 0: all),
// and returns how many it freed. After Close it returns 0.
func (d *Dict) FlushExpired(max int) int {
	n := 0
	d.eachShard(func(t *table) error {
		c := t.clock()
		for o := t.u32(offLRUTail); o != 0 && (max <= 0 || n < max); {
			prev := t.u32(o + chPrev)
			if t.expired(o, &c) {
				t.remove(o)
				n++
			}
			o = prev
		}
		return nil
	})
	return n
}

// Keys returns up to max live keys (max <= 0: all) in LRU order within
// each shard, most recently written first. ngx.shared.DICT's get_keys defaults to 1024;
// callers that mimic it pass 1024. It holds each shard's lock while
// scanning it, so it stalls other users of a large dictionary.
func (d *Dict) Keys(max int) ([]string, error) {
	var keys []string
	err := d.eachShard(func(t *table) error {
		c := t.clock()
		for o := t.u32(offLRUHead); o != 0 && (max <= 0 || len(keys) < max); o = t.u32(o + chNext) {
			if !t.expired(o, &c) {
				keys = append(keys, string(t.keyAt(o)))
			}
		}
		return nil
	})
	return keys, err
}

// Capacity returns the size in bytes of the dictionary's shared memory.
func (d *Dict) Capacity() int { return d.size }

// FreeSpace returns the bytes in free chunks. Unlike OpenResty's it counts
// every free chunk, not only whole free pages; a store can still fail if
// no single free chunk of the key's shard is large enough. After Close it
// returns 0.
func (d *Dict) FreeSpace() int {
	n := 0
	d.eachShard(func(t *table) error {
		n += int(t.u64(offFreeBytes))
		return nil
	})
	return n
}

// Stats are counters of a dictionary, for monitoring.
type Stats struct {
	Capacity   int    // bytes of shared memory
	Shards     int    // independently locked parts
	Heap       int    // bytes available to items
	Free       int    // bytes in free chunks
	Items      int    // stored items, expired ones not yet reclaimed included
	Evictions  uint64 // live items evicted to make room
	Recoveries uint64 // rebuilds after a process died holding a lock
	Resets     uint64 // times a shard was unreadable and wiped
	Dropped    uint64 // malformed items dropped by rebuilds
	// DeadClaims counts overwrites in place without the lock (docs/dict.md
	// §5b) that a process died during and another one finished.
	DeadClaims uint64
}

// Stats returns the dictionary's counters.
func (d *Dict) Stats() (Stats, error) {
	st := Stats{Capacity: d.size, Shards: len(d.shards)}
	err := d.eachShard(func(t *table) error {
		st.Heap += int(t.heapLen)
		st.Free += int(t.u64(offFreeBytes))
		st.Items += int(t.u64(offItems))
		st.Evictions += t.u64(offEvictions)
		st.Recoveries += t.u64(offRecoveries)
		st.Resets += t.u64(offResets)
		st.Dropped += t.u64(offDropped)
		st.DeadClaims += t.u64(offDeadClaims)
		return nil
	})
	return st, err
}
