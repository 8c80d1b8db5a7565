package dict

import (
	"fmt"
	"strings"
	"testing"
)

// benchKeys returns n distinct 16-byte keys.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%011d", i)
	}
	return keys
}

var benchValue = String(strings.Repeat("v", 100))

// The Mem benchmarks measure the engine over ordinary memory with a
// process-local lock; the shared-memory ones are in bench_test.go.

func BenchmarkMemGet(b *testing.B) {
	d, _, _ := newMemDict(b, 64<<20)
	benchGet(b, d)
}

func BenchmarkMemSet(b *testing.B) {
	d, _, _ := newMemDict(b, 64<<20)
	benchSet(b, d)
}

func benchGet(b *testing.B, d *Dict) {
	keys := benchKeys(1024)
	for _, k := range keys {
		if _, err := d.Set(k, benchValue, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var err error
		buf, _, _, err = d.GetBytes(keys[i&1023], buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func benchSet(b *testing.B, d *Dict) {
	keys := benchKeys(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := d.Set(keys[i&1023], benchValue, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkMemGetValue(b *testing.B) {
	d, _, _ := newMemDict(b, 64<<20)
	keys := benchKeys(1024)
	for _, k := range keys {
		d.Set(k, benchValue, 0, 0)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, _, err := d.Get(keys[i&1023]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemIncr(b *testing.B) {
	d, _, _ := newMemDict(b, 1<<20)
	init := 0.0
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.Incr("counter-16bytes!", 1, &init, 0); err != nil {
			b.Fatal(err)
		}
	}
}
