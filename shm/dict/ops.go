package dict

import (
	"math"
	"sync/atomic"
	"time"
)

// Dict is a shared dictionary opened by this process. Its methods are safe
// for concurrent use by many goroutines and many processes; each one is
// atomic (it runs under the dictionary's lock), as in ngx.shared.DICT,
// but atomicity does not extend across calls.
type Dict struct {
	t      table
	name   string
	closed atomic.Bool
	close  func() error
}

// newDict wires a Dict over a validated region and its lock.
func newDict(name string, data []byte, mu locker, opts *Options) *Dict {
	d := &Dict{name: name}
	d.t.data = data
	d.t.mu = mu
	d.t.now = wallMillis
	d.t.log = opts.logger()
	d.t.setGeometry()
	return d
}

// Name returns the name the dictionary was opened with.
func (d *Dict) Name() string { return d.name }

// Close releases this process's mapping of the dictionary; the contents
// stay for the other processes. It must not run concurrently with other
// methods on d. Calls after the first return nil.
func (d *Dict) Close() error {
	if d.closed.Swap(true) || d.close == nil {
		return nil
	}
	return d.close()
}

func (d *Dict) begin() (*table, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	d.t.lock()
	return &d.t, nil
}

func (d *Dict) clock() clock { return clock{now: d.t.now} }

// Get returns the value of key and its user flags. A missing or expired key
// gives ErrNotFound, a list ErrIsList. Get marks the item most recently
// used. String values are copied; see GetBytes for a read that does not
// allocate.
func (d *Dict) Get(key string) (Value, uint32, error) {
	if err := checkKey(key); err != nil {
		return Value{}, 0, err
	}
	t, err := d.begin()
	if err != nil {
		return Value{}, 0, err
	}
	defer t.mu.Unlock()
	o, err := t.getLive(key)
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
	t, err := d.begin()
	if err != nil {
		return buf, TypeNil, 0, err
	}
	defer t.mu.Unlock()
	o, err := t.getLive(key)
	if err != nil {
		return buf, TypeNil, 0, err
	}
	return t.appendValue(buf, o), Type(t.u8(o + chType)), t.u32(o + chFlags), nil
}

func (t *table) getLive(key string) (uint32, error) {
	o := t.find(key, hashKey(key))
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
	t.touch(o)
	return o, nil
}

// GetStale is Get that also returns an expired item not yet reclaimed,
// with stale set. Whether an expired item is still there is not
// guaranteed. It does not change the LRU order.
func (d *Dict) GetStale(key string) (v Value, flags uint32, stale bool, err error) {
	if err := checkKey(key); err != nil {
		return Value{}, 0, false, err
	}
	t, err := d.begin()
	if err != nil {
		return Value{}, 0, false, err
	}
	defer t.mu.Unlock()
	o := t.find(key, hashKey(key))
	if o == 0 {
		return Value{}, 0, false, ErrNotFound
	}
	if Type(t.u8(o+chType)) == TypeList {
		return Value{}, 0, false, ErrIsList
	}
	c := d.clock()
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
// It fails with ErrNoMemory if room cannot be made. A nil Value deletes key.
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
	}
	t, err := d.begin()
	if err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	c := d.clock()
	t.sweep(&c, 2)
	h := hashKey(key)
	old := t.find(key, h)
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
	o, forcible := t.newItemReplacing(key, vlen, safe, &old)
	if o == 0 {
		return forcible, ErrNoMemory
	}
	t.writeItem(o, key, h, v.typ, vlen, flags, ttlMillis(ttl, &c))
	t.putValue(o, v)
	t.commit(o)
	if old != 0 {
		t.removeHashed(old, h)
	}
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
	case initTTL != 0 && init == nil:
		return 0, false, ErrInitTTL
	case initTTL < 0:
		return 0, false, ErrBadExptime
	}
	t, err := d.begin()
	if err != nil {
		return 0, false, err
	}
	defer t.mu.Unlock()
	c := d.clock()
	t.sweep(&c, 2)
	h := hashKey(key)
	old := t.find(key, h)
	if old != 0 && !t.expired(old, &c) {
		if Type(t.u8(old+chType)) != TypeNumber {
			return 0, false, ErrNotNumber
		}
		vo := t.valOff(old)
		n := math.Float64frombits(t.u64(vo)) + delta
		t.store64(vo, math.Float64bits(n))
		t.touch(old)
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
	t, err := d.begin()
	if err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	c := d.clock()
	o := t.find(key, hashKey(key))
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
	t, err := d.begin()
	if err != nil {
		return err
	}
	defer t.mu.Unlock()
	c := d.clock()
	o := t.find(key, hashKey(key))
	if o == 0 || t.expired(o, &c) {
		return ErrNotFound
	}
	t.store64(o+chExpire, uint64(ttlMillis(ttl, &c)))
	return nil
}

// FlushAll marks every item expired without freeing memory, as OpenResty
// does: Get no longer sees them, GetStale may, and stores or FlushExpired
// reclaim the memory.
func (d *Dict) FlushAll() error {
	t, err := d.begin()
	if err != nil {
		return err
	}
	defer t.mu.Unlock()
	for o := t.u32(offLRUHead); o != 0; o = t.u32(o + chNext) {
		t.store64(o+chExpire, 1)
	}
	return nil
}

// FlushExpired frees expired items, at most max of them (max <= 0: all),
// and returns how many it freed.
func (d *Dict) FlushExpired(max int) (int, error) {
	t, err := d.begin()
	if err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	c := d.clock()
	n := 0
	for o := t.u32(offLRUTail); o != 0 && (max <= 0 || n < max); {
		prev := t.u32(o + chPrev)
		if t.expired(o, &c) {
			t.remove(o)
			n++
		}
		o = prev
	}
	return n, nil
}

// Keys returns up to max live keys (max <= 0: all), most recently used
// first. ngx.shared.DICT's get_keys defaults to 1024; callers that mimic it
// pass 1024. It holds the lock for the whole scan, so it stalls every
// other user of a large dictionary.
func (d *Dict) Keys(max int) ([]string, error) {
	t, err := d.begin()
	if err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	c := d.clock()
	var keys []string
	for o := t.u32(offLRUHead); o != 0 && (max <= 0 || len(keys) < max); o = t.u32(o + chNext) {
		if !t.expired(o, &c) {
			keys = append(keys, string(t.keyAt(o)))
		}
	}
	return keys, nil
}

// Capacity returns the size in bytes of the dictionary's shared memory.
func (d *Dict) Capacity() int { return len(d.t.data) }

// FreeSpace returns the bytes in free chunks. Unlike OpenResty's it counts
// every free chunk, not only whole free pages; a store can still fail if
// no single free chunk is large enough.
// After Close it returns 0.
func (d *Dict) FreeSpace() int {
	t, err := d.begin()
	if err != nil {
		return 0
	}
	defer t.mu.Unlock()
	return int(t.u64(offFreeBytes))
}

// Stats are counters of a dictionary, for monitoring.
type Stats struct {
	Capacity   int    // bytes of shared memory
	Heap       int    // bytes available to items
	Free       int    // bytes in free chunks
	Items      int    // stored items, expired ones not yet reclaimed included
	Evictions  uint64 // live items evicted to make room
	Recoveries uint64 // rebuilds after a process died holding the lock
	Resets     uint64 // times the contents were unreadable and wiped
	Dropped    uint64 // malformed items dropped by rebuilds
}

// Stats returns the dictionary's counters.
func (d *Dict) Stats() (Stats, error) {
	t, err := d.begin()
	if err != nil {
		return Stats{}, err
	}
	defer t.mu.Unlock()
	return Stats{
		Capacity:   len(t.data),
		Heap:       int(t.heapLen),
		Free:       int(t.u64(offFreeBytes)),
		Items:      int(t.u64(offItems)),
		Evictions:  t.u64(offEvictions),
		Recoveries: t.u64(offRecoveries),
		Resets:     t.u64(offResets),
		Dropped:    t.u64(offDropped),
	}, nil
}
