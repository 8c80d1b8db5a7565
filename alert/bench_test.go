//go:build linux

package alert

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkSelfSend measures one process sending small alerts to itself:
// the per-alert cost of both the send and the receive path, without the
// scheduling noise of several processes.
func BenchmarkSelfSend(b *testing.B) {
	var got atomic.Int64
	g := join(b, testGroup(b), &Config{Handlers: map[string]HandlerFunc{
		"b": func(ctx context.Context, a *Alert) { got.Add(1) },
	}})
	ctx := context.Background()
	data := make([]byte, 10)
	pid := g.PID()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := g.Send(ctx, pid, "b", data); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N) {
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkSelfSendMany is BenchmarkSelfSend with SendMany packs of 256,
// for small and 10 KB alerts.
func BenchmarkSelfSendMany(b *testing.B) {
	for _, size := range []int{10, 10 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchSelfSendMany(b, size) })
	}
}

func benchSelfSendMany(b *testing.B, size int) {
	var got atomic.Int64
	g := join(b, testGroup(b), &Config{Handlers: map[string]HandlerFunc{
		"b": func(ctx context.Context, a *Alert) { got.Add(1) },
	}})
	ctx := context.Background()
	msgs := make([]Message, 256)
	for i := range msgs {
		msgs[i] = Message{Name: "b", Data: make([]byte, size)}
	}
	pid := g.PID()
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		n, err := g.SendMany(ctx, pid, msgs[:min(len(msgs), b.N-sent)])
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	for got.Load() < int64(b.N) {
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
	b.SetBytes(int64(size))
}

// BenchmarkBroadcast measures Broadcast of 10 KB alerts to this process
// and three child members (which drop them as unmatched).
func BenchmarkBroadcast(b *testing.B) {
	group := testGroup(b)
	g := join(b, group, &Config{Handlers: map[string]HandlerFunc{"b": func(ctx context.Context, a *Alert) {}}})
	for range 3 {
		c := startChild(b, group, "echo", 0, 0)
		b.Cleanup(func() { c.stop(b) })
	}
	waitFor(b, "members", func() bool { return len(g.Members()) == 4 })
	data := make([]byte, 10<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Broadcast(context.Background(), "b", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandleMessage measures the receive path alone, per alert: a
// pack of 256 small records decoded and dispatched to a handler, with no
// ring and no other process involved, so that its cost can be compared
// across changes on a noisy machine.
func BenchmarkHandleMessage(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) { benchHandleMessage(b, reuse) })
	}
}

func benchHandleMessage(b *testing.B, reuse bool) {
	var got int
	g := join(b, testGroup(b), &Config{ReuseAlerts: reuse, Handlers: map[string]HandlerFunc{
		"b": func(ctx context.Context, a *Alert) { got++ },
	}})
	var msg []byte
	for range 256 {
		msg = append(msg, encode(recWhole, 1, 2, 10, 0, "b", make([]byte, 10))...)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 256 {
		g.handleMessage(ctx, msg, nil)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
}
