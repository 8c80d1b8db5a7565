package dict

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Each case leaves the dictionary as a holder killed at some instant of an
// update would, then makes the next Lock report recovery: the operation
// after it must see a consistent dictionary with the expected contents.
func TestRecoverCrashStates(t *testing.T) {
	tests := []struct {
		name  string
		crash func(t *testing.T, d *Dict)
		want  map[string]Value // key -> value after recovery; absent keys must be missing
		gone  []string
	}{
		{
			name: "half-written item",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o, _ := tb.newItem("new", 100, true)
				tb.writeItem(o, "new", hashKey("new"), TypeString, 100, 0, 0)
				// killed before commit: linked, still stateAlloc
			},
			want: map[string]Value{"a": String("A")},
			gone: []string{"new"},
		},
		{
			name: "replacement committed, old not removed",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o, _ := tb.newItem("a", 3, true)
				tb.writeItem(o, "a", hashKey("a"), TypeString, 3, 0, 0)
				tb.putValue(o, String("new"))
				tb.commit(o)
			},
			want: map[string]Value{"a": String("new")},
		},
		{
			name: "removal cut short after unlinking",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o := tb.find("b", hashKey("b"))
				tb.unlinkHash(o)
				tb.lruUnlink(o)
			},
			// The delete did not land: b is still there.
			want: map[string]Value{"a": String("A"), "b": Number(2)},
		},
		{
			name: "split cut short",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				for c := tb.maxClass; c > 0; c-- {
					if o := tb.u32(offFreeLists + 4*uint32(c)); o != 0 {
						half := o + classSize(c-1)
						tb.put8(half+chClass, c-1)
						tb.put8(half+chState, stateFree)
						tb.pushFree(half, c-1)
						return
					}
				}
				t.Fatal("no free chunk to split")
			},
			want: map[string]Value{"a": String("A"), "b": Number(2)},
		},
		{
			name: "list push published, count not stored",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o := tb.find("l", hashKey("l"))
				vo := tb.valOff(o)
				tb.put32(vo+lsCount, tb.u32(vo+lsCount)-1)
			},
			want: map[string]Value{"a": String("A")},
		},
		{
			name: "garbage LRU and bucket links",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				for o := tb.u32(offLRUHead); o != 0; {
					next := tb.u32(o + chNext)
					tb.put32(o+chPrev, 12345)
					tb.put32(o+chNext, o)
					tb.put32(o+chHNext, o)
					o = next
				}
				tb.put32(offLRUHead, 7)
			},
			want: map[string]Value{"a": String("A"), "b": Number(2)},
		},
		{
			name: "overwrite in place journalled, not begun",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o := tb.find("a", hashKey("a"))
				tb.journalRewrite(o, String("new"), 3, 0, 0)
			},
			want: map[string]Value{"a": String("A"), "b": Number(2)},
		},
		{
			name: "overwrite in place torn",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o := tb.find("a", hashKey("a"))
				tb.journalRewrite(o, String("new"), 3, 0, 0)
				tb.storeState(o, stateRewrite)
				tb.put32(o+chValLen, 3)
				tb.put8(tb.valOff(o), 'x')
			},
			want: map[string]Value{"a": String("new"), "b": Number(2)},
		},
		{
			name: "overwrite in place written, state not restored",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o := tb.find("a", hashKey("a"))
				tb.journalRewrite(o, String("new"), 3, 0, 0)
				tb.storeState(o, stateRewrite)
				tb.applyJournal(o, tb.journal)
				tb.storeState(o, stateRewrite)
			},
			want: map[string]Value{"a": String("new"), "b": Number(2)},
		},
		{
			name: "overwrite in place, claims journalled in other slots",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o := tb.find("a", hashKey("a"))
				// Claims of a by other processes were journalled, with
				// higher numbers, and never made: only slot 0 counts.
				for i := uint32(1); i < journalSlots; i++ {
					tb.writeEntry(offJournal+i*journalSlotSize, o, String(fmt.Sprint("old", i)), 4, 0, 0, 1<<40)
				}
				tb.journalRewrite(o, String("new"), 3, 0, 0)
				tb.storeState(o, stateRewrite)
				tb.put8(tb.valOff(o), 'x')
			},
			want: map[string]Value{"a": String("new"), "b": Number(2)},
		},
		{
			name: "overwrite in place with no journal entry",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				tb.storeState(tb.find("a", hashKey("a")), stateRewrite)
			},
			// Never the result of a crash: the torn item is dropped.
			want: map[string]Value{"b": Number(2)},
			gone: []string{"a"},
		},
		{
			name: "torn list element",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.shards[0]
				o := tb.find("l", hashKey("l"))
				vo := tb.valOff(o)
				tb.put32(vo+tb.u32(vo+lsHead), 0xffffff01)
			},
			want: map[string]Value{"a": String("A")},
			gone: []string{"l"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, mu, _ := newMemDict(t, 64<<10)
			d.Set("a", String("A"), 0, 0)
			d.Set("b", Number(2), 0, 0)
			for i := 0; i < 3; i++ {
				d.RPush("l", String(fmt.Sprint(i)))
			}
			free0 := d.FreeSpace()
			mu.Lock(context.Background())
			tt.crash(t, d)
			mu.Unlock()
			mu.failNext()
			st, err := d.Stats()
			if err != nil || st.Recoveries != 1 || st.Resets != 0 {
				t.Fatalf("Stats = %+v, %v", st, err)
			}
			if err := d.Check(); err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if v, _, err := d.Get(k); err != nil || v != want {
					t.Errorf("Get(%s) = %v, %v; want %v", k, v, err, want)
				}
			}
			for _, k := range tt.gone {
				if _, _, _, err := d.GetStale(k); err != ErrNotFound {
					t.Errorf("GetStale(%s) = %v, want not found", k, err)
				}
			}
			if _, ok := tt.want["b"]; ok && len(tt.gone) == 0 && !strings.Contains(tt.name, "garbage") && d.FreeSpace() != free0 {
				t.Errorf("FreeSpace = %d, want %d", d.FreeSpace(), free0)
			}
			if n, err := d.LLen("l"); err != nil || (n != 3 && n != 0) {
				t.Errorf("LLen = %d, %v", n, err)
			}
		})
	}
}

// TestRecoverStaleJournal crashes two overwrites in place of one item in
// a row: the first before it began (its journal entry is left, never
// applied), the second halfway. The second's value must win, not the
// entry of the first, which no Set ever completed.
func TestRecoverStaleJournal(t *testing.T) {
	d, mu, _ := newMemDict(t, 64<<10)
	d.Set("a", String("A"), 0, 0)
	tb := &d.shards[0]
	o := tb.find("a", hashKey("a"))

	mu.Lock(context.Background())
	tb.journalRewrite(o, String("never"), 5, 0, 0) // killed here
	mu.Unlock()
	mu.failNext()
	if v, _, err := d.Get("a"); err != nil || v != String("A") {
		t.Fatalf("after the first crash Get = %v, %v; want A", v, err)
	}

	mu.Lock(context.Background())
	tb.journalRewrite(o, String("later"), 5, 0, 0)
	tb.storeState(o, stateRewrite)
	tb.put8(tb.valOff(o), 'x') // killed here
	mu.Unlock()
	mu.failNext()
	if v, _, err := d.Get("a"); err != nil || v != String("later") {
		t.Fatalf("after the second crash Get = %v, %v; want later", v, err)
	}
	if st, _ := d.Stats(); st.Recoveries != 2 || st.Dropped != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestRecoverUnreadableHeap(t *testing.T) {
	d, mu, _ := newMemDict(t, 64<<10)
	var logged bytes.Buffer
	d.shards[0].log = slog.New(slog.NewTextHandler(&logged, nil))
	d.Set("a", String("A"), 0, 0)
	free0 := d.FreeSpace()
	mu.Lock(context.Background())
	d.shards[0].put8(d.shards[0].heap+chClass, 200)
	mu.Unlock()
	if err := d.Check(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check of a broken heap = %v", err)
	}
	mu.failNext()
	st, _ := d.Stats()
	if st.Resets != 1 || st.Items != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	if d.FreeSpace() <= free0 {
		t.Fatal("heap not reset")
	}
	if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), "all items were dropped") {
		t.Errorf("reset not logged as an error: %q", logged.String())
	}
	// A plain recovery is logged as a warning.
	logged.Reset()
	mu.failNext()
	d.Get("a")
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "index rebuilt") {
		t.Errorf("recovery not logged: %q", logged.String())
	}
}

// FuzzLayout damages a populated region and checks that a bad header is
// refused, and that a region with a good header is either reported by
// Check or rebuilt into a consistent dictionary, never misread into a
// panic.
func FuzzLayout(f *testing.F) {
	f.Add([]byte{0, 0, 0xff})                         // magic
	f.Add([]byte{8, 0, 2})                            // version
	f.Add([]byte{24, 0, 0x11})                        // bucket count
	f.Add([]byte{0x80, 0x06, 0x19})                   // a chunk class in the heap
	f.Add([]byte{0x81, 0x06, 0x02, 0x88, 0x06, 0xff}) // chunk state, hash link
	f.Add([]byte{0x80, 0x00, 0x05, 0x90, 0x00, 0x01}) // LRU head, item count
	f.Add([]byte{0x81, 0x37, 0x04})                   // an item being overwritten in place
	f.Add([]byte{0x81, 0x37, 0x04, 0x8c, 0x01, 0xff}) // ... and its journal entry's length
	f.Add([]byte{0x81, 0x37, 0x04, 0x98, 0x01, 0x00}) // ... and its sequence number
	f.Add([]byte{0x41, 0x0e, 0x05})                   // shard 0's first chunk claimed by slot 1
	f.Add([]byte{0x41, 0x0e, 0x0b, 0x80, 0x04, 0x40}) // ... by slot 7; slot 1's entry names another chunk
	base := make([]byte, 2*MinCapacity)
	if err := initRegion(base, 2); err != nil {
		f.Fatal(err)
	}
	mu := &procMutex{}
	lockAt := func([]byte) locker { return mu }
	opts := &Options{Logger: discardLogger()}
	{
		d, err := newDict("fuzz", base, lockAt, opts)
		if err != nil {
			f.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			d.Set(fmt.Sprint("k", i), String(strings.Repeat("v", i*7)), 0, uint32(i))
			d.RPush("list", Number(float64(i)))
		}
		// Overwrites in place, and claims journalled in slot 1.
		for i := 0; i < 20; i++ {
			d.Set(fmt.Sprint("k", i), String(strings.Repeat("w", i*7)), 0, uint32(i))
			k := fmt.Sprint("k", i)
			tb, h := d.shardOf(k)
			if o := tb.find(k, h); o != 0 {
				tb.writeEntry(offJournal+journalSlotSize, o, String("c"), 1, 0, 0, tb.u64(o+chSeq)+1)
				tb.put64(offJournal+journalSlotSize+jBase, tb.u64(o+chSeq))
			}
		}
	}
	f.Fuzz(func(t *testing.T, muts []byte) {
		data := make([]byte, len(base))
		copy(data, base)
		for i := 0; i+2 < len(muts); i += 3 {
			off := int(binary.LittleEndian.Uint16(muts[i:])) % len(data)
			data[off] = muts[i+2]
		}
		d, err := newDict("fuzz", data, lockAt, opts)
		if err != nil {
			return // refused
		}
		// A claim whose claimer lives is rightly waited for; the fuzzer
		// must not name a live one (such as itself).
		for i := range d.shards {
			for j := uint32(1); j < journalSlots; j++ {
				d.shards[i].put32(offJournal+j*journalSlotSize+jOwnerPID, 0)
			}
		}
		for i := range d.shards {
			tb := &d.shards[i]
			_ = tb.check()
			if _, _, err := tb.rebuild(); err != nil {
				tb.resetHeap() // what the lock's recovery does
			}
			if err := tb.check(); err != nil {
				t.Fatalf("shard %d: check after rebuild: %v", i, err)
			}
		}
		// The rebuilt dictionary is usable.
		d.Set("after", String("x"), 0, 0)
		if v, _, err := d.Get("after"); err != nil || v != String("x") {
			t.Fatalf("Get after rebuild = %v, %v", v, err)
		}
		if err := d.Check(); err != nil {
			t.Fatalf("check after use: %v", err)
		}
	})
}

func TestValidateRegion(t *testing.T) {
	good := make([]byte, 4*MinCapacity)
	if err := initRegion(good, 2); err != nil {
		t.Fatal(err)
	}
	shard1 := regionHdrSize + shardSize(len(good), 2)
	tests := []struct {
		name string
		mod  func(b []byte) []byte
	}{
		{"zeroed", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"short", func(b []byte) []byte { return b[:40] }},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"version", func(b []byte) []byte { b[offRVersion] = layoutVersion + 1; return b }},
		{"capacity", func(b []byte) []byte { return append(b, make([]byte, 64)...) }},
		{"shards", func(b []byte) []byte { b[offRShards] = 3; return b }},
		{"shard size", func(b []byte) []byte { b[offRShardSize] ^= 0x40; return b }},
		{"shard magic", func(b []byte) []byte { b[shard1] ^= 1; return b }},
		{"shard version", func(b []byte) []byte { b[shard1+offVersion] = layoutVersion + 1; return b }},
		{"shard capacity", func(b []byte) []byte { b[shard1+offCapacity] ^= 0x40; return b }},
		{"buckets", func(b []byte) []byte { b[shard1+offNBuckets] ^= 0x10; return b }},
		{"heap", func(b []byte) []byte { b[shard1+offHeap] ^= 0x40; return b }},
	}
	for _, tt := range tests {
		b := tt.mod(append([]byte(nil), good...))
		if _, _, err := validateRegion(b); err == nil || !strings.Contains(err.Error(), ErrCorrupt.Error()) {
			t.Errorf("%s: validateRegion = %v", tt.name, err)
		}
	}
	if n, _, err := validateRegion(good); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	for _, tt := range []struct{ size, shards int }{{MinCapacity - 64, 1}, {MinCapacity, 3}, {MinCapacity, 4}, {1 << 20, 32}} {
		if err := initRegion(make([]byte, tt.size), tt.shards); err == nil {
			t.Errorf("initRegion(%d bytes, %d shards) succeeded", tt.size, tt.shards)
		}
	}
	for _, tt := range []struct{ capacity, want int }{{MinCapacity, 1}, {8<<20 - 1, 1}, {8 << 20, 2}, {64 << 20, 16}, {1 << 30, 16}} {
		if got := defaultShards(tt.capacity); got != tt.want {
			t.Errorf("defaultShards(%d) = %d, want %d", tt.capacity, got, tt.want)
		}
	}
}
