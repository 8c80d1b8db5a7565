package bench

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procwire/procwire/jsonipc"
)

func TestJSONIPC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.sock")
	srv := jsonipc.NewServer(nil)
	if err := srv.Listen(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}()

	rs, err := JSONIPC(context.Background(), path, &Options{
		Duration: 50 * time.Millisecond, Warmup: -1, Sizes: []int{10, 1 << 10}, InFlight: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("got %d rows, want 3 (two sizes and pipelined): %+v", len(rs), rs)
	}
	for _, r := range rs {
		if r.Ops <= 0 || r.Rate() <= 0 {
			t.Errorf("%s: no operations measured: %+v", r.Name, r)
		}
	}
	if rs[0].P50 <= 0 || rs[0].P99 < rs[0].P50 {
		t.Errorf("round-trip percentiles not sane: p50 %v p99 %v", rs[0].P50, rs[0].P99)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"round trip 10B", "round trip 1K", "pipelined echo 100B, 4 in flight", "ops/s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestJSONIPCNoServer(t *testing.T) {
	_, err := JSONIPC(context.Background(), filepath.Join(t.TempDir(), "none.sock"), nil)
	if err == nil {
		t.Fatal("benchmarking a missing server succeeded")
	}
}

func TestPercentiles(t *testing.T) {
	var l latencies
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i))
	}
	if p50, p99 := l.percentiles(); p50 != 51 || p99 != 100 {
		t.Errorf("percentiles of 1..100 = %v, %v; want 51, 100", p50, p99)
	}
	if p50, p99 := latencies(nil).percentiles(); p50 != 0 || p99 != 0 {
		t.Errorf("empty percentiles = %v, %v", p50, p99)
	}
}

func ExampleSizeName() {
	for _, n := range []int{100, 1024, 5 << 10, 1 << 20} {
		fmt.Println(SizeName(n))
	}
	// Output:
	// 100B
	// 1K
	// 5K
	// 1M
}
