package bench

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Options says how long and how hard to measure. The zero value is useful.
type Options struct {
	Duration time.Duration // measured time per row; 0 means 2s
	Warmup   time.Duration // run before measuring, not counted; 0 means 100ms, negative means none
	Sizes    []int         // payload sizes for round-trip rows; nil means 1K, 5K, 10K, 20K, 100K
	InFlight int           // requests kept in flight for throughput rows; 0 means 64
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Duration <= 0 {
		r.Duration = 2 * time.Second
	}
	if r.Warmup == 0 {
		r.Warmup = 100 * time.Millisecond
	}
	if r.Warmup < 0 {
		r.Warmup = 0
	}
	if r.Sizes == nil {
		r.Sizes = []int{1 << 10, 5 << 10, 10 << 10, 20 << 10, 100 << 10}
	}
	if r.InFlight <= 0 {
		r.InFlight = 64
	}
	return r
}

// Result is one row of a benchmark table.
type Result struct {
	Name    string        // what was measured, e.g. "jsonipc echo round trip 1K"
	Ops     int64         // operations completed in the measured time
	Elapsed time.Duration // the measured time
	// P50 and P99 are per-operation latencies; zero when the row measures
	// throughput with many operations in flight, where latency is not the point.
	P50, P99 time.Duration
}

// Rate is operations per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// WriteTable prints results as an aligned table.
func WriteTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "benchmark\tops/s\tp50\tp99\tops\t")
	for _, r := range rs {
		p50, p99 := "-", "-"
		if r.P50 > 0 {
			p50, p99 = fmtDur(r.P50), fmtDur(r.P99)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t\n", r.Name, fmtRate(r.Rate()), p50, p99, r.Ops)
	}
	return tw.Flush()
}

func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fK", r/1e3)
	default:
		return fmt.Sprintf("%.0f", r)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d.Nanoseconds())/1e3)
	default:
		return fmt.Sprintf("%.2fms", float64(d.Nanoseconds())/1e6)
	}
}

// latencies collects per-operation times and reports percentiles.
type latencies []time.Duration

func (l latencies) percentiles() (p50, p99 time.Duration) {
	if len(l) == 0 {
		return 0, 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}

// SizeName renders a byte count the way the tables in pixl-ipc's README do.
func SizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	default:
		return fmt.Sprintf("%dB", n)
	}
}
