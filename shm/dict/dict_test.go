package dict

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestKeyErrors(t *testing.T) {
	d, _, _ := newMemDict(t, 256<<10)
	long := strings.Repeat("k", MaxKeyLen+1)
	calls := map[string]func(key string) error{
		"Get":      func(k string) error { _, _, err := d.Get(k); return err },
		"GetStale": func(k string) error { _, _, _, err := d.GetStale(k); return err },
		"Set":      func(k string) error { _, err := d.Set(k, String("v"), 0, 0); return err },
		"SafeSet":  func(k string) error { return d.SafeSet(k, String("v"), 0, 0) },
		"Add":      func(k string) error { _, err := d.Add(k, String("v"), 0, 0); return err },
		"Replace":  func(k string) error { _, err := d.Replace(k, String("v"), 0, 0); return err },
		"Delete":   func(k string) error { return d.Delete(k) },
		"Incr":     func(k string) error { _, _, err := d.Incr(k, 1, ptr(0.0), 0); return err },
		"LPush":    func(k string) error { _, err := d.LPush(k, String("v")); return err },
		"RPop":     func(k string) error { _, err := d.RPop(k); return err },
		"LLen":     func(k string) error { _, err := d.LLen(k); return err },
		"TTL":      func(k string) error { _, err := d.TTL(k); return err },
		"Expire":   func(k string) error { return d.Expire(k, time.Second) },
	}
	for name, call := range calls {
		if err := call(""); err != ErrEmptyKey || err.Error() != "empty key" {
			t.Errorf("%s(\"\") = %v, want empty key", name, err)
		}
		if err := call(long); err != ErrKeyTooLong || err.Error() != "key too long" {
			t.Errorf("%s(65536 bytes) = %v, want key too long", name, err)
		}
	}
	// The longest key works.
	k := strings.Repeat("k", MaxKeyLen)
	if _, err := d.Set(k, Bool(true), 0, 0); err != nil {
		t.Fatal(err)
	}
	if v, _, err := d.Get(k); err != nil || v != Bool(true) {
		t.Fatalf("Get(longest key) = %v, %v", v, err)
	}
}

func TestSetGet(t *testing.T) {
	d, _, _ := newMemDict(t, 64<<10)
	tests := []struct {
		key   string
		v     Value
		flags uint32
	}{
		{"s", String("hello"), 0},
		{"empty", String(""), 7},
		{"bin", Bytes([]byte{0, 1, 2, 255}), 0},
		{"n", Number(3.25), 0},
		{"neg", Number(-1e300), 1<<32 - 1},
		{"nan-inf", Number(math.Inf(-1)), 0},
		{"t", Bool(true), 0},
		{"f", Bool(false), 42},
		{"big", String(strings.Repeat("x", 5000)), 0},
	}
	for _, tt := range tests {
		if forcible, err := d.Set(tt.key, tt.v, 0, tt.flags); err != nil || forcible {
			t.Fatalf("Set(%q) = %v, %v", tt.key, forcible, err)
		}
	}
	for _, tt := range tests {
		v, flags, err := d.Get(tt.key)
		if err != nil || v != tt.v || flags != tt.flags {
			t.Errorf("Get(%q) = %v, %d, %v; want %v, %d", tt.key, v, flags, err, tt.v, tt.flags)
		}
		buf, typ, flags, err := d.GetBytes(tt.key, []byte("pre:"))
		if err != nil || string(buf) != "pre:"+tt.v.String() || typ != tt.v.Type() || flags != tt.flags {
			t.Errorf("GetBytes(%q) = %q, %v, %d, %v", tt.key, buf, typ, flags, err)
		}
	}
	if _, _, err := d.Get("missing"); err != ErrNotFound || err.Error() != "not found" {
		t.Errorf("Get(missing) = %v", err)
	}
	// Overwrite with another type and size.
	if _, err := d.Set("s", Number(1), 0, 0); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := d.Get("s"); v != Number(1) {
		t.Errorf("after overwrite Get = %v", v)
	}
	// Set nil deletes; Delete of a missing key is fine.
	if _, err := d.Set("s", Value{}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Get("s"); err != ErrNotFound {
		t.Errorf("Get after Set(nil) = %v", err)
	}
	if err := d.Delete("n"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete("n"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Get("n"); err != ErrNotFound {
		t.Errorf("Get after Delete = %v", err)
	}
	if _, err := d.Set("bad", Value{typ: TypeList}, 0, 0); err != ErrBadValue || err.Error() != "bad value type" {
		t.Errorf("Set(list value) = %v", err)
	}
	if _, err := d.Set("bad", String("x"), -time.Second, 0); err != ErrBadExptime {
		t.Errorf("Set(negative ttl) = %v", err)
	}
}

func TestAddReplace(t *testing.T) {
	d, _, clk := newMemDict(t, 64<<10)
	if f, err := d.Add("k", String("a"), 0, 0); err != nil || f {
		t.Fatalf("Add new = %v, %v", f, err)
	}
	if _, err := d.Add("k", String("b"), 0, 0); err != ErrExists || err.Error() != "exists" {
		t.Fatalf("Add existing = %v", err)
	}
	if err := d.SafeAdd("k", String("b"), 0, 0); err != ErrExists {
		t.Fatalf("SafeAdd existing = %v", err)
	}
	if _, err := d.Replace("nope", String("b"), 0, 0); err != ErrNotFound {
		t.Fatalf("Replace missing = %v", err)
	}
	if _, err := d.Replace("k", String("b"), time.Second, 3); err != nil {
		t.Fatalf("Replace = %v", err)
	}
	if v, fl, _ := d.Get("k"); v != String("b") || fl != 3 {
		t.Fatalf("after Replace Get = %v %d", v, fl)
	}
	for _, add := range []bool{true, false} {
		_, err := d.Add("nil", Value{}, 0, 0)
		if !add {
			_, err = d.Replace("k", Value{}, 0, 0)
		}
		if err != ErrNilValue || err.Error() != "attempt to add or replace nil values" {
			t.Errorf("nil value: %v", err)
		}
	}
	clk.advance(1000) // k expires
	if _, err := d.Replace("k", String("c"), 0, 0); err != ErrNotFound {
		t.Fatalf("Replace expired = %v", err)
	}
	if _, err := d.Add("k", String("c"), 0, 0); err != nil {
		t.Fatalf("Add over expired = %v", err)
	}
	if v, fl, _ := d.Get("k"); v != String("c") || fl != 0 {
		t.Fatalf("after Add Get = %v %d", v, fl)
	}
}

func TestTTL(t *testing.T) {
	d, _, clk := newMemDict(t, 64<<10)
	d.Set("k", String("v"), 1500*time.Millisecond, 5)
	d.Set("forever", String("v"), 0, 0)
	d.Set("tiny", String("v"), time.Microsecond, 0) // rounds up to 1 ms, not "never"
	if ttl, err := d.TTL("k"); err != nil || ttl != 1500*time.Millisecond {
		t.Fatalf("TTL = %v, %v", ttl, err)
	}
	if ttl, err := d.TTL("forever"); err != nil || ttl != 0 {
		t.Fatalf("TTL(forever) = %v, %v", ttl, err)
	}
	if _, err := d.TTL("missing"); err != ErrNotFound {
		t.Fatalf("TTL(missing) = %v", err)
	}
	clk.advance(1)
	if _, _, err := d.Get("tiny"); err != ErrNotFound {
		t.Fatalf("Get(tiny) after 1ms = %v", err)
	}
	clk.advance(1000)
	if ttl, _ := d.TTL("k"); ttl != 499*time.Millisecond {
		t.Fatalf("TTL after 1001ms = %v", ttl)
	}
	if v, fl, err := d.Get("k"); err != nil || v != String("v") || fl != 5 {
		t.Fatalf("Get before expiry = %v %v %v", v, fl, err)
	}
	clk.advance(499)
	if _, _, err := d.Get("k"); err != ErrNotFound {
		t.Fatalf("Get at expiry = %v", err)
	}
	// Expired but not reclaimed: TTL and Expire see nothing, GetStale does.
	if _, err := d.TTL("k"); err != ErrNotFound {
		t.Fatalf("TTL(expired) = %v", err)
	}
	if err := d.Expire("k", time.Hour); err != ErrNotFound {
		t.Fatalf("Expire(expired) = %v", err)
	}
	v, fl, stale, err := d.GetStale("k")
	if err != nil || v != String("v") || fl != 5 || !stale {
		t.Fatalf("GetStale = %v %v %v %v", v, fl, stale, err)
	}
	v, _, stale, err = d.GetStale("forever")
	if err != nil || stale || v != String("v") {
		t.Fatalf("GetStale(live) = %v %v %v", v, stale, err)
	}
	// Expire changes the TTL, 0 makes it permanent.
	if err := d.Expire("forever", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := d.TTL("forever"); ttl != 2*time.Second {
		t.Fatalf("TTL after Expire = %v", ttl)
	}
	if err := d.Expire("forever", 0); err != nil {
		t.Fatal(err)
	}
	clk.advance(5000)
	if ttl, err := d.TTL("forever"); ttl != 0 || err != nil {
		t.Fatalf("TTL after Expire(0) = %v %v", ttl, err)
	}
	if err := d.Expire("forever", -1); err != ErrBadExptime {
		t.Fatalf("Expire(-1) = %v", err)
	}
	if err := d.Expire("missing", time.Second); err != ErrNotFound {
		t.Fatalf("Expire(missing) = %v", err)
	}
}

func TestIncr(t *testing.T) {
	d, _, clk := newMemDict(t, 64<<10)
	d.Set("s", String("1"), 0, 0)
	d.LPush("l", Number(1))
	d.Set("n", Number(10), 2*time.Second, 9)
	tests := []struct {
		name     string
		key      string
		delta    float64
		init     *float64
		initTTL  time.Duration
		want     float64
		wantErr  error
		wantText string
	}{
		{"missing no init", "x", 1, nil, 0, 0, ErrNotFound, "not found"},
		{"string", "s", 1, nil, 0, 0, ErrNotNumber, "not a number"},
		{"list", "l", 1, ptr(0.0), 0, 0, ErrNotNumber, "not a number"},
		{"existing", "n", 2.5, nil, 0, 12.5, nil, ""},
		{"existing ignores init", "n", -0.5, ptr(100.0), time.Hour, 12, nil, ""},
		{"init", "c", 1, ptr(41.0), 0, 42, nil, ""},
		{"init negative float", "f", -0.25, ptr(-1.0), 0, -1.25, nil, ""},
		{"init ttl", "e", 1, ptr(0.0), time.Second, 1, nil, ""},
		{"init_ttl without init", "z", 1, nil, time.Second, 0, ErrInitTTL, `must provide "init" when providing "init_ttl"`},
	}
	for _, tt := range tests {
		got, forcible, err := d.Incr(tt.key, tt.delta, tt.init, tt.initTTL)
		if err != tt.wantErr || got != tt.want || forcible {
			t.Errorf("%s: Incr = %v, %v, %v; want %v, %v", tt.name, got, forcible, err, tt.want, tt.wantErr)
		}
		if err != nil && err.Error() != tt.wantText {
			t.Errorf("%s: error text %q, want %q", tt.name, err, tt.wantText)
		}
	}
	// The TTL and flags of an existing item are unchanged by incr.
	if ttl, _ := d.TTL("n"); ttl != 2*time.Second {
		t.Errorf("TTL after incr = %v", ttl)
	}
	if _, fl, _ := d.Get("n"); fl != 9 {
		t.Errorf("flags after incr = %d", fl)
	}
	if ttl, _ := d.TTL("e"); ttl != time.Second {
		t.Errorf("TTL of init item = %v", ttl)
	}
	clk.advance(2000)
	if _, _, err := d.Incr("n", 1, nil, 0); err != ErrNotFound {
		t.Errorf("Incr(expired) = %v", err)
	}
	if v, _, err := d.Incr("n", 1, ptr(5.0), 0); err != nil || v != 6 {
		t.Errorf("Incr(expired, init) = %v, %v", v, err)
	}
	if ttl, _ := d.TTL("n"); ttl != 0 {
		t.Errorf("TTL after re-init = %v", ttl)
	}
}

func TestLists(t *testing.T) {
	d, _, clk := newMemDict(t, 256<<10)
	if n, err := d.LLen("l"); n != 0 || err != nil {
		t.Fatalf("LLen(missing) = %v %v", n, err)
	}
	if _, err := d.LPop("l"); err != ErrNotFound {
		t.Fatalf("LPop(missing) = %v", err)
	}
	// Build 1..N via rpush and lpush so both ends grow, across copies.
	const n = 500
	var want []Value
	for i := 0; i < n; i++ {
		var v Value
		if i%3 == 0 {
			v = Number(float64(i))
		} else {
			v = String(strings.Repeat("e", i%17) + fmt.Sprint(i))
		}
		var got int
		var err error
		if i%2 == 0 {
			got, err = d.RPush("l", v)
			want = append(want, v)
		} else {
			got, err = d.LPush("l", v)
			want = append([]Value{v}, want...)
		}
		if err != nil || got != i+1 {
			t.Fatalf("push %d = %d, %v", i, got, err)
		}
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.LLen("l"); got != n {
		t.Fatalf("LLen = %d", got)
	}
	if _, _, err := d.Get("l"); err != ErrIsList || err.Error() != "value is a list" {
		t.Fatalf("Get(list) = %v", err)
	}
	for i := 0; i < n; i++ {
		var v Value
		var err error
		var w Value
		if i%2 == 0 {
			v, err = d.LPop("l")
			w, want = want[0], want[1:]
		} else {
			v, err = d.RPop("l")
			w, want = want[len(want)-1], want[:len(want)-1]
		}
		if err != nil || v != w {
			t.Fatalf("pop %d = %v, %v; want %v", i, v, err, w)
		}
	}
	// Popping the last element deleted the key.
	if _, _, _, err := d.GetStale("l"); err != ErrNotFound {
		t.Fatalf("list not deleted when emptied: %v", err)
	}
	d.Set("s", String("x"), 0, 0)
	if _, err := d.LPush("s", String("x")); err != ErrNotList || err.Error() != "value not a list" {
		t.Fatalf("LPush(string key) = %v", err)
	}
	if _, err := d.RPop("s"); err != ErrNotList {
		t.Fatalf("RPop(string key) = %v", err)
	}
	if _, err := d.LLen("s"); err != ErrNotList {
		t.Fatalf("LLen(string key) = %v", err)
	}
	if _, err := d.LPush("b", Bool(true)); err != ErrBadValue {
		t.Fatalf("LPush(bool) = %v", err)
	}
	// An expired list is replaced by a new one.
	d.RPush("e", String("old"))
	d.Expire("e", time.Millisecond)
	clk.advance(1)
	if n, _ := d.LLen("e"); n != 0 {
		t.Fatalf("LLen(expired) = %d", n)
	}
	if n, err := d.RPush("e", String("new")); n != 1 || err != nil {
		t.Fatalf("RPush(expired) = %d %v", n, err)
	}
	if v, _ := d.LPop("e"); v != String("new") {
		t.Fatalf("LPop = %v", v)
	}
}

func TestEvictionLRU(t *testing.T) {
	d, _, _ := newMemDict(t, MinCapacity)
	val := String(strings.Repeat("v", 150)) // 256-byte chunks
	var keys []string
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%03d", i)
		if err := d.SafeSet(k, val, 0, 0); err != nil {
			if err != ErrNoMemory || err.Error() != "no memory" {
				t.Fatalf("SafeSet = %v", err)
			}
			break
		}
		keys = append(keys, k)
	}
	if len(keys) < 30 {
		t.Fatalf("only %d items fit", len(keys))
	}
	if err := d.SafeAdd("new", val, 0, 0); err != ErrNoMemory {
		t.Fatalf("SafeAdd when full = %v", err)
	}
	// Touch the oldest key: the second oldest becomes least recently used.
	if _, _, err := d.Get(keys[0]); err != nil {
		t.Fatal(err)
	}
	forcible, err := d.Set("new", val, 0, 0)
	if err != nil || !forcible {
		t.Fatalf("Set when full = %v, %v; want forcible", forcible, err)
	}
	if _, _, err := d.Get(keys[1]); err != ErrNotFound {
		t.Errorf("least recently used key survived: %v", err)
	}
	for _, k := range append([]string{keys[0], "new"}, keys[2:]...) {
		if _, _, err := d.Get(k); err != nil {
			t.Errorf("Get(%s) = %v", k, err)
		}
	}
	st, _ := d.Stats()
	if st.Evictions != 1 {
		t.Errorf("Evictions = %d", st.Evictions)
	}

	// Same-size overwrite of a full dictionary needs no eviction.
	if forcible, err := d.Set(keys[5], String(strings.Repeat("w", 150)), 0, 0); err != nil || forcible {
		t.Fatalf("overwrite when full = %v %v", forcible, err)
	}
	// Larger than the whole heap: no memory, nothing evicted.
	before, _ := d.Keys(0)
	if _, err := d.Set("huge", String(strings.Repeat("h", MinCapacity)), 0, 0); err != ErrNoMemory {
		t.Fatalf("Set(huge) = %v", err)
	}
	if after, _ := d.Keys(0); len(after) != len(before) {
		t.Errorf("Set(huge) evicted %d items", len(before)-len(after))
	}
	// Lists never evict.
	if _, err := d.RPush("list", String(strings.Repeat("l", 300))); err != ErrNoMemory {
		t.Fatalf("RPush when full = %v", err)
	}
}

func TestFlushKeysSpace(t *testing.T) {
	d, _, clk := newMemDict(t, 256<<10)
	free0 := d.FreeSpace()
	if d.Capacity() != 256<<10 {
		t.Fatalf("Capacity = %d", d.Capacity())
	}
	for i := 0; i < 2000; i++ {
		ttl := time.Duration(0)
		if i%2 == 1 {
			ttl = time.Second
		}
		if _, err := d.Set(fmt.Sprint("k", i), Number(float64(i)), ttl, 0); err != nil {
			t.Fatal(err)
		}
	}
	if d.FreeSpace() >= free0 {
		t.Fatal("FreeSpace did not shrink")
	}
	for _, tt := range []struct{ max, want int }{{1, 1}, {1024, 1024}, {0, 2000}, {-1, 2000}, {5000, 2000}} {
		if keys, _ := d.Keys(tt.max); len(keys) != tt.want {
			t.Errorf("Keys(%d) = %d keys, want %d", tt.max, len(keys), tt.want)
		}
	}
	if keys, _ := d.Keys(1); keys[0] != "k1999" {
		t.Errorf("Keys(1) = %v, want the most recent", keys)
	}
	clk.advance(1000)
	if keys, _ := d.Keys(0); len(keys) != 1000 {
		t.Errorf("Keys after expiry = %d", len(keys))
	}
	if n := d.FlushExpired(10); n != 10 {
		t.Errorf("FlushExpired(10) = %d", n)
	}
	if n := d.FlushExpired(0); n != 990 {
		t.Errorf("FlushExpired(0) = %d", n)
	}
	if n := d.FlushExpired(0); n != 0 {
		t.Errorf("FlushExpired again = %d", n)
	}
	d.FlushAll()
	if keys, _ := d.Keys(0); len(keys) != 0 {
		t.Errorf("Keys after FlushAll = %d", len(keys))
	}
	if _, _, err := d.Get("k0"); err != ErrNotFound {
		t.Errorf("Get after FlushAll = %v", err)
	}
	if _, _, stale, err := d.GetStale("k0"); err != nil || !stale {
		t.Errorf("GetStale after FlushAll = %v, %v", stale, err)
	}
	if n := d.FlushExpired(0); n != 1000 {
		t.Errorf("FlushExpired after FlushAll = %d", n)
	}
	// Freed chunks merge back: the heap is whole again.
	if got := d.FreeSpace(); got != free0 {
		t.Errorf("FreeSpace after flushing everything = %d, want %d", got, free0)
	}
	if _, err := d.Set("big", String(strings.Repeat("b", int(d.shards[0].heapLen)/2)), 0, 0); err != nil {
		t.Errorf("large item after flush: %v", err)
	}
}

func TestClosed(t *testing.T) {
	d, _, _ := newMemDict(t, MinCapacity)
	d.Close()
	if _, _, err := d.Get("k"); err != ErrClosed {
		t.Fatalf("Get after Close = %v", err)
	}
	if d.FreeSpace() != 0 || d.Close() != nil {
		t.Fatal("FreeSpace / second Close")
	}
}

// TestModel runs random operations against a map and checks the structure
// as it goes, with a dictionary small enough to evict.
func TestModel(t *testing.T) {
	for _, capacity := range []int{MinCapacity, 1 << 20, 16 << 20} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			d, mu, clk := newMemDict(t, capacity)
			model := map[string]Value{}
			lists := map[string][]Value{}
			expiry := map[string]int64{} // fake-clock ms; absent = never
			now := func() int64 { return clk.now() }
			live := func(k string) bool { e, ok := expiry[k]; return !ok || e > now() }
			// resync drops from the models what the dictionary evicted.
			resync := func() {
				for mk := range model {
					if _, _, _, err := d.GetStale(mk); err == ErrNotFound {
						delete(model, mk)
						delete(expiry, mk)
					}
				}
				for lk := range lists {
					if n, _ := d.LLen(lk); n == 0 {
						delete(lists, lk)
					}
				}
			}
			r := rand.New(rand.NewPCG(1, uint64(capacity)))
			noMemory := 0
			for i := 0; i < 20000; i++ {
				k := fmt.Sprint("key", r.IntN(300))
				lk := fmt.Sprint("list", r.IntN(10))
				switch op := r.IntN(14); {
				case op < 4:
					v := String(strings.Repeat("x", r.IntN(400)))
					if r.IntN(3) == 0 {
						v = Number(r.Float64())
					}
					ttl := time.Duration(0)
					if r.IntN(4) == 0 {
						ttl = time.Duration(1+r.IntN(20)) * time.Millisecond
					}
					f, err := d.Set(k, v, ttl, 0)
					if err != nil && err != ErrNoMemory {
						t.Fatal(err)
					}
					if f || err != nil {
						// Evicted keys are gone from the model too, and a
						// failed Set drops the old value, as in OpenResty.
						noMemory++
						delete(model, k)
						resync()
					}
					if err == nil {
						model[k] = v
						delete(expiry, k)
						if ttl > 0 {
							expiry[k] = now() + ttl.Milliseconds()
						}
					}
				case op < 5:
					d.Delete(k)
					delete(model, k)
					delete(expiry, k)
				case op < 6:
					if _, ok := model[k]; ok && live(k) {
						if _, isNum := model[k].Number(); isNum {
							n, _, err := d.Incr(k, 1, nil, 0)
							if err != nil {
								t.Fatal(err)
							}
							model[k] = Number(n)
						}
					}
				case op < 7 && i%50 == 0:
					mu.failNext() // the next Lock rebuilds the index
				case op < 7:
					clk.advance(int64(r.IntN(5)))
				case op < 9:
					v := String(fmt.Sprint("e", i))
					if r.IntN(2) == 0 {
						v = Number(float64(i))
					}
					var n int
					var err error
					if r.IntN(2) == 0 {
						n, err = d.RPush(lk, v)
						if err == nil {
							lists[lk] = append(lists[lk], v)
						}
					} else {
						n, err = d.LPush(lk, v)
						if err == nil {
							lists[lk] = append([]Value{v}, lists[lk]...)
						}
					}
					if err == ErrNoMemory {
						continue
					}
					if err != nil || n != len(lists[lk]) {
						t.Fatalf("op %d: push %s = %d, %v; model %d", i, lk, n, err, len(lists[lk]))
					}
				case op < 11:
					var v Value
					var err error
					var want Value
					l := lists[lk]
					if r.IntN(2) == 0 {
						v, err = d.LPop(lk)
						if len(l) > 0 {
							want, lists[lk] = l[0], l[1:]
						}
					} else {
						v, err = d.RPop(lk)
						if len(l) > 0 {
							want, lists[lk] = l[len(l)-1], l[:len(l)-1]
						}
					}
					if len(l) == 0 {
						if err != ErrNotFound {
							t.Fatalf("op %d: pop empty %s = %v, %v", i, lk, v, err)
						}
					} else if err != nil || v != want {
						t.Fatalf("op %d: pop %s = %v, %v; want %v", i, lk, v, err, want)
					}
					if len(lists[lk]) == 0 {
						delete(lists, lk)
					}
				default:
					v, _, err := d.Get(k)
					want, ok := model[k]
					ok = ok && live(k)
					if ok != (err == nil) || ok && v != want {
						t.Fatalf("op %d: Get(%s) = %v, %v; model %v, %v", i, k, v, err, want, ok)
					}
					if n, err := d.LLen(lk); err != nil || n != len(lists[lk]) {
						t.Fatalf("op %d: LLen(%s) = %d, %v; model %d", i, lk, n, err, len(lists[lk]))
					}
				}
				if i%1000 == 0 {
					if err := d.Check(); err != nil {
						t.Fatalf("op %d: %v", i, err)
					}
				}
			}
			t.Logf("%d stores evicted or failed", noMemory)
		})
	}
}

func TestErrorsIs(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", ErrNotFound)
	if !errors.Is(err, ErrNotFound) {
		t.Fatal("errors.Is")
	}
}

// TestGoroutines has goroutines share one Dict; run with -race.
func TestGoroutines(t *testing.T) {
	d, _, _ := newMemDict(t, 1<<20)
	const workers, each = 4, 2000
	done := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			one := 0.0
			for i := 0; i < each; i++ {
				if _, _, err := d.Incr("n", 1, &one, 0); err != nil {
					done <- err
					return
				}
				k := fmt.Sprint(w, "-", i%10)
				d.Set(k, String(k), 0, 0)
				if v, _, err := d.Get(k); err != nil || v != String(k) {
					done <- fmt.Errorf("Get(%s) = %v, %v", k, v, err)
					return
				}
				d.RPush("l", Number(float64(i)))
				d.LPop("l")
			}
			done <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if v, _, _ := d.Get("n"); v != Number(workers*each) {
		t.Fatalf("n = %v", v)
	}
}

func TestShards(t *testing.T) {
	d, _, _ := newMemDict(t, 16<<20)
	if len(d.shards) != 4 {
		t.Fatalf("%d shards for 16 MiB", len(d.shards))
	}
	const n = 4000
	for i := 0; i < n; i++ {
		if _, err := d.Set(fmt.Sprint("key", i), Number(float64(i)), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for i := range d.shards {
		if d.shards[i].u64(offItems) > 0 {
			used++
		}
	}
	if used != 4 {
		t.Errorf("keys landed in %d of 4 shards", used)
	}
	for i := 0; i < n; i += 97 {
		if v, _, err := d.Get(fmt.Sprint("key", i)); err != nil || v != Number(float64(i)) {
			t.Fatalf("Get(key%d) = %v, %v", i, v, err)
		}
	}
	if keys, _ := d.Keys(0); len(keys) != n {
		t.Errorf("Keys(0) = %d keys", len(keys))
	}
	if keys, _ := d.Keys(10); len(keys) != 10 {
		t.Errorf("Keys(10) = %d keys", len(keys))
	}
	st, _ := d.Stats()
	if st.Shards != 4 || st.Items != n || st.Capacity != 16<<20 || st.Free != d.FreeSpace() {
		t.Errorf("Stats = %+v", st)
	}
	d.FlushAll()
	if got := d.FlushExpired(0); got != n {
		t.Errorf("FlushExpired = %d", got)
	}
}

// TestEvictionSecondChance: items read since they were last at the LRU
// head are kept over items not read.
func TestEvictionSecondChance(t *testing.T) {
	d, _, _ := newMemDict(t, MinCapacity)
	val := String(strings.Repeat("v", 150))
	var keys []string
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%03d", i)
		if err := d.SafeSet(k, val, 0, 0); err != nil {
			break
		}
		keys = append(keys, k)
	}
	// Read keys 0..9; store ten more: keys 10..19, never read, go first.
	for _, k := range keys[:10] {
		d.Get(k)
	}
	for i := 0; i < 10; i++ {
		if f, err := d.Set(fmt.Sprint("more", i), val, 0, 0); err != nil || !f {
			t.Fatalf("Set = %v, %v", f, err)
		}
	}
	for _, k := range keys[10:20] {
		if _, _, _, err := d.GetStale(k); err != ErrNotFound {
			t.Errorf("unread key %s kept", k)
		}
	}
	for _, k := range keys[:10] {
		if _, _, err := d.Get(k); err != nil {
			t.Errorf("read key %s evicted", k)
		}
	}
}

// TestEvictionFragmented: a dictionary full of small items still takes a
// large one. The 30 least recently used small items do not make a large
// enough free chunk, so the store empties the region around the LRU tail
// (OpenResty would answer "no memory").
func TestEvictionFragmented(t *testing.T) {
	d, _, _ := newMemDict(t, MinCapacity)
	n := 0
	for ; ; n++ {
		if err := d.SafeSet(fmt.Sprintf("s%04d", n), Number(float64(n)), 0, 0); err != nil {
			break
		}
	}
	if n < 100 {
		t.Fatalf("only %d small items fit", n)
	}
	// Read every other item so that eviction second-chances them and
	// the evicted ones are scattered.
	for i := 0; i < n; i += 2 {
		d.Get(fmt.Sprintf("s%04d", i))
	}
	big := String(strings.Repeat("B", 3000)) // a 4 KiB chunk
	forcible, err := d.Set("big", big, 0, 0)
	if err != nil || !forcible {
		t.Fatalf("Set(big) = %v, %v", forcible, err)
	}
	if v, _, err := d.Get("big"); err != nil || v != big {
		t.Fatalf("Get(big) = %v", err)
	}
	st, _ := d.Stats()
	if st.Evictions <= 30 {
		t.Errorf("Evictions = %d, want the region emptied beyond 30 LRU evictions", st.Evictions)
	}
	if keys, _ := d.Keys(0); len(keys) < n/2 {
		t.Errorf("%d of %d keys left: evicted far more than a region", len(keys), n)
	}
	// SafeSet still refuses.
	if err := d.SafeSet("big2", big, 0, 0); err != ErrNoMemory {
		t.Errorf("SafeSet(big2) = %v", err)
	}
}

// TestSetInPlace checks that a store whose item needs a chunk of the old
// one's class overwrites it where it is, and that anything else still
// moves to a new chunk, with the same results either way.
func TestSetInPlace(t *testing.T) {
	d, _, clk := newMemDict(t, 256<<10)
	v100 := func(c byte) Value { return String(strings.Repeat(string(c), 100)) }
	for _, k := range []string{"a", "b", "c"} {
		d.Set(k, v100('0'), 0, 0)
	}
	tb, h := d.shardOf("b")
	at := tb.find("b", h)
	seq0 := tb.u64(at + chSeq)
	free0 := d.FreeSpace()
	tests := []struct {
		name    string
		v       Value
		ttl     time.Duration
		flags   uint32
		inPlace bool
	}{
		{"same length", v100('1'), 0, 0, true},
		{"flags and TTL", v100('2'), time.Minute, 7, true},
		{"TTL dropped", v100('3'), 0, 0, true},
		{"shorter, same class", String(strings.Repeat("4", 90)), 0, 1, true},
		{"smaller class", Number(5), 0, 0, false},
		{"back to the larger class", v100('6'), 0, 0, false},
		{"larger class", String(strings.Repeat("7", 300)), 0, 0, false},
		{"over the journal slot", String(strings.Repeat("8", journalMaxValue+1)), 0, 0, false},
		{"largest in place", String(strings.Repeat("9", journalMaxValue)), time.Second, 2, true},
	}
	for _, tt := range tests {
		before := tb.find("b", h)
		if forcible, err := d.Set("b", tt.v, tt.ttl, tt.flags); err != nil || forcible {
			t.Fatalf("%s: Set = %v, %v", tt.name, forcible, err)
		}
		after := tb.find("b", h)
		if (after == before) != tt.inPlace {
			t.Errorf("%s: item moved from %d to %d; want in place %v", tt.name, before, after, tt.inPlace)
		}
		if v, fl, err := d.Get("b"); err != nil || v != tt.v || fl != tt.flags {
			t.Errorf("%s: Get = %v, %d, %v", tt.name, v, fl, err)
		}
		if got, err := d.TTL("b"); err != nil || got != tt.ttl {
			t.Errorf("%s: TTL = %v, %v", tt.name, got, err)
		}
		// An overwrite keeps the item's LRU place, moved or not.
		if keys, _ := d.Keys(0); fmt.Sprint(keys) != "[c b a]" {
			t.Errorf("%s: Keys = %v", tt.name, keys)
		}
		if err := d.Check(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tt.name == "same length" {
			if d.FreeSpace() != free0 {
				t.Errorf("in place: FreeSpace %d, want %d", d.FreeSpace(), free0)
			}
			if s := tb.u64(after + chSeq); s <= seq0 {
				t.Errorf("in place: sequence number %d, was %d", s, seq0)
			}
		}
	}
	// An expired item is overwritten in place too, and the new value is live.
	d.Set("e", v100('a'), time.Millisecond, 0)
	e := tb.find("e", hashKey("e"))
	clk.advance(5)
	if _, err := d.Add("e", v100('b'), 0, 0); err != nil || tb.find("e", hashKey("e")) != e {
		t.Fatalf("Add over an expired item: %v", err)
	}
	if v, _, err := d.Get("e"); err != nil || v != v100('b') {
		t.Fatalf("Get = %v, %v", v, err)
	}
	// Freeing an item passes its sequence number on to the shard, so that
	// whatever is written into its chunk next gets a higher one.
	for i := 0; i < 5; i++ {
		d.Set("c", v100(byte('a'+i)), 0, 0)
	}
	c := tb.find("c", hashKey("c"))
	last := tb.u64(c + chSeq)
	d.Delete("c")
	if tb.u64(offSeq) < last {
		t.Fatalf("shard sequence %d after freeing an item at %d", tb.u64(offSeq), last)
	}
	d.Set("c2", v100('z'), 0, 0)
	if o := tb.find("c2", hashKey("c2")); tb.u64(o+chSeq) <= last {
		t.Fatalf("new item has sequence number %d, freed one had %d", tb.u64(o+chSeq), last)
	}
}
