package dict

import (
	"context"
	"encoding/binary"
	"fmt"
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
				tb := &d.t
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
				tb := &d.t
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
				tb := &d.t
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
				tb := &d.t
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
				tb := &d.t
				o := tb.find("l", hashKey("l"))
				vo := tb.valOff(o)
				tb.put32(vo+lsCount, tb.u32(vo+lsCount)-1)
			},
			want: map[string]Value{"a": String("A")},
		},
		{
			name: "garbage LRU and bucket links",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.t
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
			name: "torn list element",
			crash: func(t *testing.T, d *Dict) {
				tb := &d.t
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
			if _, ok := tt.want["b"]; ok && !strings.Contains(tt.name, "garbage") && d.FreeSpace() != free0 {
				t.Errorf("FreeSpace = %d, want %d", d.FreeSpace(), free0)
			}
			if n, err := d.LLen("l"); err != nil || (n != 3 && n != 0) {
				t.Errorf("LLen = %d, %v", n, err)
			}
		})
	}
}

func TestRecoverUnreadableHeap(t *testing.T) {
	d, mu, _ := newMemDict(t, 64<<10)
	d.Set("a", String("A"), 0, 0)
	free0 := d.FreeSpace()
	mu.Lock(context.Background())
	d.t.put8(d.t.heap+chClass, 200)
	mu.Unlock()
	if err := d.Check(); err == nil {
		t.Fatal("Check passed a broken heap")
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
}

// FuzzLayout damages a populated region and checks that a bad header is
// refused, and that a region with a good header is either reported by
// Check or rebuilt into a consistent dictionary, never misread into a
// panic.
func FuzzLayout(f *testing.F) {
	f.Add([]byte{0, 0, 0xff})                         // magic
	f.Add([]byte{8, 0, 2})                            // version
	f.Add([]byte{24, 0, 0x11})                        // bucket count
	f.Add([]byte{0x40, 0x03, 0x19})                   // a chunk class in the heap
	f.Add([]byte{0x41, 0x03, 0x02, 0x48, 0x03, 0xff}) // chunk state, hash link
	f.Add([]byte{0x80, 0x00, 0x05, 0x90, 0x00, 0x01}) // LRU head, item count
	base := make([]byte, MinCapacity)
	if err := initRegion(base); err != nil {
		f.Fatal(err)
	}
	{
		d := newDict("fuzz", base, &procMutex{}, &Options{Logger: discardLogger()})
		for i := 0; i < 20; i++ {
			d.Set(fmt.Sprint("k", i), String(strings.Repeat("v", i*7)), 0, uint32(i))
			d.RPush("list", Number(float64(i)))
		}
	}
	f.Fuzz(func(t *testing.T, muts []byte) {
		data := make([]byte, len(base))
		copy(data, base)
		for i := 0; i+2 < len(muts); i += 3 {
			off := int(binary.LittleEndian.Uint16(muts[i:])) % len(data)
			data[off] = muts[i+2]
		}
		if err := validateHeader(data); err != nil {
			return // refused
		}
		d := newDict("fuzz", data, &procMutex{}, &Options{Logger: discardLogger()})
		_ = d.t.check()
		if _, _, err := d.t.rebuild(); err != nil {
			return // the lock's recovery would reset the heap
		}
		if err := d.t.check(); err != nil {
			t.Fatalf("check after rebuild: %v", err)
		}
		// The rebuilt dictionary is usable.
		d.Set("after", String("x"), 0, 0)
		if v, _, err := d.Get("after"); err != nil || v != String("x") {
			t.Fatalf("Get after rebuild = %v, %v", v, err)
		}
		if err := d.t.check(); err != nil {
			t.Fatalf("check after use: %v", err)
		}
	})
}

func TestValidateHeader(t *testing.T) {
	good := make([]byte, MinCapacity)
	if err := initRegion(good); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(b []byte) []byte
	}{
		{"zeroed", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"short", func(b []byte) []byte { return b[:100] }},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"version", func(b []byte) []byte { b[offVersion] = 2; return b }},
		{"capacity", func(b []byte) []byte { return append(b, make([]byte, 64)...) }},
		{"buckets", func(b []byte) []byte { b[offNBuckets] ^= 0x10; return b }},
		{"heap", func(b []byte) []byte { b[offHeap] ^= 0x40; return b }},
	}
	for _, tt := range tests {
		b := tt.mod(append([]byte(nil), good...))
		if err := validateHeader(b); err == nil || !strings.HasPrefix(err.Error(), ErrCorrupt.Error()) {
			t.Errorf("%s: validateHeader = %v", tt.name, err)
		}
	}
	if err := validateHeader(good); err != nil {
		t.Fatal(err)
	}
	if err := initRegion(make([]byte, MinCapacity-64)); err == nil {
		t.Error("initRegion accepted a region below MinCapacity")
	}
}
