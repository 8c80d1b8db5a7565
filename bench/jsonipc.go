package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procwire/procwire/jsonipc"
)

// JSONIPC measures a JSON IPC server listening on socket: the sequential
// echo round trip for each of opts.Sizes (pixl-ipc's own table), then
// pipelined 100-byte echoes with opts.InFlight requests in flight on one
// connection. It uses the built-in /ipcserver/test/echo, so any procwire
// or pixl-ipc server can be measured.
func JSONIPC(ctx context.Context, socket string, opts *Options) ([]Result, error) {
	o := opts.withDefaults()
	c, err := jsonipc.Dial(ctx, socket, &jsonipc.ClientConfig{UserAgent: "procwire-bench"})
	if err != nil {
		return nil, err
	}
	defer c.Close()

	var out []Result
	for _, size := range o.Sizes {
		r, err := roundTrip(ctx, c, size, o)
		if err != nil {
			return out, fmt.Errorf("echo round trip %s: %w", SizeName(size), err)
		}
		out = append(out, r)
	}
	r, err := pipelined(ctx, c, 100, o)
	if err != nil {
		return out, fmt.Errorf("pipelined echo: %w", err)
	}
	return append(out, r), nil
}

// payload returns a JSON string of exactly size bytes, quotes included.
func payload(size int) json.RawMessage {
	if size < 2 {
		size = 2
	}
	return json.RawMessage(`"` + strings.Repeat("x", size-2) + `"`)
}

func roundTrip(ctx context.Context, c *jsonipc.Client, size int, o Options) (Result, error) {
	data := payload(size)
	call := func() error {
		got, err := c.CallRaw(ctx, "/ipcserver/test/echo", data)
		if err == nil && len(got) != len(data) {
			err = fmt.Errorf("echo returned %d bytes, sent %d", len(got), len(data))
		}
		return err
	}
	for end := time.Now().Add(o.Warmup); time.Now().Before(end); {
		if err := call(); err != nil {
			return Result{}, err
		}
	}
	var lat latencies
	start := time.Now()
	end := start.Add(o.Duration)
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			break
		}
		if err := call(); err != nil {
			return Result{}, err
		}
		lat = append(lat, time.Since(t0))
	}
	r := Result{
		Name:    "jsonipc echo round trip " + SizeName(size),
		Ops:     int64(len(lat)),
		Elapsed: time.Since(start),
	}
	r.P50, r.P99 = lat.percentiles()
	return r, nil
}

func pipelined(ctx context.Context, c *jsonipc.Client, size int, o Options) (Result, error) {
	data := payload(size)
	var (
		ops      atomic.Int64
		counting atomic.Bool
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range o.InFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := c.CallRaw(ctx, "/ipcserver/test/echo", data); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				if counting.Load() {
					ops.Add(1)
				}
			}
		}()
	}
	sleep(ctx, o.Warmup)
	counting.Store(true)
	start := time.Now()
	sleep(ctx, o.Duration)
	n := ops.Load()
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return Result{
		Name:    fmt.Sprintf("jsonipc pipelined echo %s, %d in flight", SizeName(size), o.InFlight),
		Ops:     n,
		Elapsed: elapsed,
	}, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
