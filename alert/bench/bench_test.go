package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/procwire/procwire/alert"
)

func TestMain(m *testing.M) {
	if os.Getenv("PROCWIRE_BENCH_GROUP") != "" {
		if err := MemberFromEnv(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var spawn = SelfSpawn("-test.run=^$", "-test.bench=^$")

// benchDuration is the measured time of one benchmark run: several seconds
// by default, since short runs on a shared VM mislead.
func benchDuration(b *testing.B) time.Duration {
	if testing.Short() {
		return 500 * time.Millisecond
	}
	return 3 * time.Second
}

// BenchmarkAllToAll reports alerts delivered per second when every member
// process sends to every other as fast as it can. One iteration is one
// whole run; the metric is what matters. batch=1 sends each alert with
// Send; batch=256 hands 256 at a time to each destination with SendMany.
func BenchmarkAllToAll(b *testing.B) {
	for _, members := range []int{2, 5, 20} {
		for _, size := range []int{10, 10 << 10} {
			for _, batch := range []int{1, DefaultBatch} {
				b.Run(fmt.Sprintf("members=%d/size=%d/batch=%d", members, size, batch), func(b *testing.B) {
					benchAllToAll(b, Config{Members: members, Size: size, Batch: batch})
				})
			}
		}
	}
}

// BenchmarkAllToAllReuse is BenchmarkAllToAll with 5 members whose
// handlers get one reused *Alert (alert.Config.ReuseAlerts).
func BenchmarkAllToAllReuse(b *testing.B) {
	for _, size := range []int{10, 10 << 10} {
		for _, batch := range []int{1, DefaultBatch} {
			b.Run(fmt.Sprintf("members=5/size=%d/batch=%d", size, batch), func(b *testing.B) {
				benchAllToAll(b, Config{Members: 5, Size: size, Batch: batch, ReuseAlerts: true})
			})
		}
	}
}

func benchAllToAll(b *testing.B, cfg Config) {
	var rate float64
	var cpu time.Duration
	for i := range b.N {
		cfg.Group = fmt.Sprintf("bench%d-%d-%d-%d", os.Getpid(), cfg.Members, cfg.Size, i)
		cfg.Duration = benchDuration(b)
		r, err := AllToAll(context.Background(), cfg, spawn)
		if err != nil {
			b.Fatal(err)
		}
		rate += r.Rate()
		cpu += r.CPUPerAlert()
	}
	b.ReportMetric(rate/float64(b.N), "alerts/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/alert")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRoundTrip reports Send+Reply round-trip percentiles between two
// member processes, with the default spin and with spinning off.
func BenchmarkRoundTrip(b *testing.B) {
	for _, spin := range []time.Duration{0, alert.NoSpin} {
		name := "spin=default"
		if spin < 0 {
			name = "spin=off"
		}
		b.Run(name, func(b *testing.B) {
			var l Latency
			for i := range b.N {
				var err error
				l, err = RoundTrip(context.Background(), Config{
					Group:    fmt.Sprintf("rtt%d-%d", os.Getpid(), i),
					Size:     10,
					Duration: benchDuration(b),
					Spin:     spin,
				}, spawn)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(l.P50.Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(l.P99.Nanoseconds()), "p99-ns")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestAllToAllSmoke runs the harness briefly, so that it is known to work
// without running benchmarks.
func TestAllToAllSmoke(t *testing.T) {
	for _, batch := range []int{1, 0} {
		r, err := AllToAll(context.Background(), Config{
			Group: fmt.Sprintf("smoke%d-%d", os.Getpid(), batch), Members: 2, Size: 10, Duration: 200 * time.Millisecond, Batch: batch,
			ReuseAlerts: batch == 0,
		}, spawn)
		if err != nil {
			t.Fatal(err)
		}
		if r.Delivered == 0 || r.CPU <= 0 {
			t.Fatalf("batch %d: %+v", batch, r)
		}
	}
	l, err := RoundTrip(context.Background(), Config{
		Group: fmt.Sprintf("smokertt%d", os.Getpid()), Size: 10, Duration: 200 * time.Millisecond,
	}, spawn)
	if err != nil {
		t.Fatal(err)
	}
	if l.Samples == 0 || l.P50 <= 0 {
		t.Fatalf("round trip %+v", l)
	}
}

func TestBatchFor(t *testing.T) {
	for _, tc := range []struct{ size, want int }{
		{10, DefaultBatch},
		{1 << 10, DefaultBatch},
		{10 << 10, 50}, // 512 KiB / (10 KiB + 64)
		{1 << 20, 1},   // bigger than half a lane: one per call
		{alert.DefaultInboxSize, 1},
	} {
		if got := BatchFor(tc.size); got != tc.want {
			t.Errorf("BatchFor(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}
