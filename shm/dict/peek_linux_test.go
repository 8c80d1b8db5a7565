package dict

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// peekValue is the g-th value written under key: it names its key and
// generation and carries a padding of a length and byte derived from g, so
// a reader can tell a torn or misplaced copy from a real value.
func peekValue(key string, g int) string {
	return key + "|" + strconv.Itoa(g) + "|" + strings.Repeat(string(rune('a'+g%26)), g%300)
}

func checkPeekValue(key, v string) error {
	parts := strings.SplitN(v, "|", 3)
	if len(parts) != 3 || parts[0] != key {
		return fmt.Errorf("value %.40q for key %q", v, key)
	}
	g, err := strconv.Atoi(parts[1])
	if err != nil || parts[2] != strings.Repeat(string(rune('a'+g%26)), g%300) {
		return fmt.Errorf("torn value %.60q for key %q", v, key)
	}
	return nil
}

// TestReadsDuringWrites has readers hammer keys that a writer keeps
// replacing (with values of changing sizes, so chunks are freed, merged,
// split and reused), deleting and turning into numbers, in a dictionary
// small enough to evict all the time. Readers (lock-free where the
// platform allows) must only ever see a whole value of the right key.
func TestReadsDuringWrites(t *testing.T) {
	d, err := Open(testName(t), MinCapacity*4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	keys := benchKeys(64)
	const rounds = 20000
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for g := 0; g < rounds; g++ {
			k := keys[(g*7)%len(keys)]
			var err error
			switch g % 10 {
			case 3:
				err = d.Delete(k)
			case 6:
				_, err = d.Set(k, Number(float64(g)), 0, 0)
			default:
				_, err = d.Set(k, String(peekValue(k, g)), 0, uint32(g))
			}
			if err != nil && !errors.Is(err, ErrNoMemory) {
				t.Errorf("write %d: %v", g, err)
				return
			}
		}
	}()
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := keys[(i*13+r)%len(keys)]
				var typ Type
				var err error
				if i%2 == 0 {
					buf, typ, _, err = d.GetBytes(k, buf[:0])
				} else {
					var v Value
					v, _, err = d.Get(k)
					typ, buf = v.Type(), v.AppendText(buf[:0])
				}
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					t.Errorf("get %q: %v", k, err)
					return
				case typ == TypeNumber:
					if _, err := strconv.ParseFloat(string(buf), 64); err != nil {
						t.Errorf("get %q: number %q", k, buf)
						return
					}
				case typ == TypeString:
					if err := checkPeekValue(k, string(buf)); err != nil {
						t.Error(err)
						return
					}
				default:
					t.Errorf("get %q: type %v", k, typ)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGetValue is Get (a Value out, the string copied) of 100-byte
// values: one allocation per call, lock-free or not.
func BenchmarkGetValue(b *testing.B) {
	d, err := Open(testName(b), 64<<20, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	keys := benchKeys(1024)
	for _, k := range keys {
		d.Set(k, benchValue, 0, 0)
		d.Get(k)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if v, _, err := d.Get(keys[i&1023]); err != nil || v.Type() != TypeString {
			b.Fatal(v, err)
		}
	}
}
