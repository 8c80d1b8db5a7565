// Package bench measures alert groups across real processes: all-to-all
// throughput and Send+Reply round-trip latency. It is shared by the
// package's Go benchmarks and by `procwire alert bench`.
//
// A coordinator process joins the group, starts member processes (the
// caller says how, so that a test binary and the procwire binary can both
// re-execute themselves), tells them to start, and collects what each one
// measured. Members count what they receive, skip a warm-up period, and
// report by alert.
package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/procwire/procwire/alert"
)

// Config describes a run.
type Config struct {
	Group    string
	Members  int           // member processes (the coordinator is not one of them)
	Size     int           // payload bytes per alert
	Duration time.Duration // measured time, after Warmup
	Warmup   time.Duration // skipped at the start (default 100ms)
	Spin     time.Duration // members' alert.Config.Spin
	// ReuseAlerts is the members' alert.Config.ReuseAlerts: one *Alert
	// for every handler call instead of one allocated per alert.
	ReuseAlerts bool
	// Batch is how many alerts a member hands to each destination per
	// call in AllToAll: 1 means one Send per alert, more means one
	// SendMany of that many, 0 means BatchFor(Size). Every alert is still
	// in the destination's inbox when the call returns; only the per-call
	// cost is shared.
	Batch int
}

// DefaultBatch is the Config.Batch used when it is zero, for small alerts:
// enough for SendMany to pay its per-call costs once per few kilobytes.
// For large alerts the default is smaller (see BatchFor).
const DefaultBatch = 256

// BatchFor returns the batch that a zero Config.Batch stands for with
// size-byte alerts: DefaultBatch, or fewer so that one call carries at
// most half of a destination's inbox lane (alert.DefaultInboxSize). A
// call that carries more than the lane holds waits for its receiver in
// the middle of every call while the other destinations get nothing:
// with 5 members and 10 KB alerts, 256 per call delivered 1.9 M/s, 64
// per call 2.6 M/s (Nov 24, idle 2-core VM).
func BatchFor(size int) int {
	const record = 64 // an alert's record header and name, rounded up
	return max(1, min(DefaultBatch, alert.DefaultInboxSize/2/(size+record)))
}

// MemberConfig is what a member process needs to know before it joins.
type MemberConfig struct {
	Spin        time.Duration // alert.Config.Spin
	ReuseAlerts bool          // alert.Config.ReuseAlerts
}

// Spawn starts one member process, which must call Member with the group
// and configuration it is given. The returned command has been started;
// its stdin is a pipe that the coordinator closes to make it exit.
type Spawn func(ctx context.Context, group string, mc MemberConfig) (*exec.Cmd, io.WriteCloser, error)

// Result is the outcome of AllToAll.
type Result struct {
	Members   int
	Size      int
	Delivered uint64 // alerts handled by all members during the measured time
	// CPU is the processor time (user and system) the member processes
	// used during the measured time. Alerts per CPU second are a measure
	// of efficiency that holds up better than the rate on a machine that
	// other work shares.
	CPU     time.Duration
	Elapsed time.Duration // measured time
}

// Rate is delivered alerts per second.
func (r Result) Rate() float64 { return float64(r.Delivered) / r.Elapsed.Seconds() }

// CPUPerAlert is the members' processor time per delivered alert.
func (r Result) CPUPerAlert() time.Duration {
	if r.Delivered == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Delivered)
}

// Latency is the outcome of RoundTrip.
type Latency struct {
	Samples       int
	P50, P99, Max time.Duration
}

type coordinator struct {
	g       *alert.Group
	cmds    []*exec.Cmd
	stdins  []io.WriteCloser
	results chan []byte
}

func start(ctx context.Context, cfg Config, spawn Spawn, members int) (*coordinator, error) {
	c := &coordinator{results: make(chan []byte, members)}
	collect := func(ctx context.Context, a *alert.Alert) { c.results <- append([]byte(nil), a.Data...) }
	g, err := alert.Join(ctx, cfg.Group, &alert.Config{Handlers: map[string]alert.HandlerFunc{"result": collect}})
	if err != nil {
		return nil, err
	}
	c.g = g
	for range members {
		cmd, stdin, err := spawn(ctx, cfg.Group, MemberConfig{Spin: cfg.Spin, ReuseAlerts: cfg.ReuseAlerts})
		if err != nil {
			c.close()
			return nil, err
		}
		c.cmds = append(c.cmds, cmd)
		c.stdins = append(c.stdins, stdin)
	}
	for len(g.Members()) < members+1 {
		if err := ctx.Err(); err != nil {
			c.close()
			return nil, err
		}
		time.Sleep(time.Millisecond)
	}
	return c, nil
}

func (c *coordinator) others() []int {
	var pids []int
	for _, m := range c.g.Members() {
		if !m.Self {
			pids = append(pids, m.PID)
		}
	}
	return pids
}

func (c *coordinator) close() {
	for _, w := range c.stdins {
		w.Close()
	}
	for _, cmd := range c.cmds {
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	c.g.Close()
}

func (c *coordinator) wait(ctx context.Context, n int) ([][]byte, error) {
	var out [][]byte
	for len(out) < n {
		select {
		case b := <-c.results:
			out = append(out, b)
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

func defaults(cfg *Config) {
	if cfg.Warmup == 0 {
		cfg.Warmup = 100 * time.Millisecond
	}
	if cfg.Batch <= 0 {
		cfg.Batch = BatchFor(cfg.Size)
	}
}

// AllToAll runs cfg.Members processes that each send cfg.Size-byte alerts
// to every other member as fast as they can, and reports how many were
// delivered (handled) per second over cfg.Duration after the warm-up.
func AllToAll(ctx context.Context, cfg Config, spawn Spawn) (Result, error) {
	defaults(&cfg)
	if cfg.Members < 2 {
		return Result{}, errors.New("bench: all-to-all needs at least 2 members")
	}
	c, err := start(ctx, cfg, spawn, cfg.Members)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	order := binary.LittleEndian.AppendUint64(nil, uint64(cfg.Warmup))
	order = binary.LittleEndian.AppendUint64(order, uint64(cfg.Duration))
	order = binary.LittleEndian.AppendUint64(order, uint64(cfg.Size))
	order = binary.LittleEndian.AppendUint64(order, uint64(cfg.Batch))
	for _, pid := range c.others() {
		if err := c.g.Send(ctx, pid, "all", order); err != nil {
			return Result{}, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+30*time.Second)
	defer cancel()
	res, err := c.wait(wctx, cfg.Members)
	if err != nil {
		return Result{}, fmt.Errorf("bench: %d of %d members reported: %w", len(res), cfg.Members, err)
	}
	r := Result{Members: cfg.Members, Size: cfg.Size, Elapsed: cfg.Duration}
	for _, b := range res {
		r.Delivered += binary.LittleEndian.Uint64(b)
		r.CPU += time.Duration(binary.LittleEndian.Uint64(b[8:]))
	}
	return r, nil
}

// RoundTrip runs two members; one sends an alert to the other, whose
// handler replies, and the first handler sends the next as soon as the
// reply arrives. It reports the round-trip times over cfg.Duration.
func RoundTrip(ctx context.Context, cfg Config, spawn Spawn) (Latency, error) {
	defaults(&cfg)
	c, err := start(ctx, cfg, spawn, 2)
	if err != nil {
		return Latency{}, err
	}
	defer c.close()
	pids := c.others()
	order := binary.LittleEndian.AppendUint64(nil, uint64(cfg.Warmup))
	order = binary.LittleEndian.AppendUint64(order, uint64(cfg.Duration))
	order = binary.LittleEndian.AppendUint64(order, uint64(cfg.Size))
	order = binary.LittleEndian.AppendUint64(order, uint64(pids[1]))
	if err := c.g.Send(ctx, pids[0], "rtt", order); err != nil {
		return Latency{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+30*time.Second)
	defer cancel()
	res, err := c.wait(wctx, 1)
	if err != nil {
		return Latency{}, fmt.Errorf("bench: no round-trip result: %w", err)
	}
	b := res[0]
	return Latency{
		Samples: int(binary.LittleEndian.Uint64(b)),
		P50:     time.Duration(binary.LittleEndian.Uint64(b[8:])),
		P99:     time.Duration(binary.LittleEndian.Uint64(b[16:])),
		Max:     time.Duration(binary.LittleEndian.Uint64(b[24:])),
	}, nil
}

// Member is the body of a member process: it joins group and follows the
// coordinator's orders until stdin closes.
func Member(ctx context.Context, group string, mc MemberConfig, stdin io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Handlers may run before Join returns; those that need g wait for it.
	var g *alert.Group
	joined := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()

	// Round trip state, used only on the receive goroutine.
	var rtt struct {
		peer        int
		data        []byte
		sent        time.Time
		warm, end   time.Time
		samples     []time.Duration
		coordinator int
	}
	handlers := map[string]alert.HandlerFunc{
		// Alerts are counted by the group (Stats().Delivered, added once
		// per received batch), as an application would read them, not by
		// an atomic add per alert here, which would be a good part of the
		// receive path being measured.
		"b": func(ctx context.Context, a *alert.Alert) {},
		"all": func(ctx context.Context, a *alert.Alert) {
			<-joined
			warmup := time.Duration(binary.LittleEndian.Uint64(a.Data))
			d := time.Duration(binary.LittleEndian.Uint64(a.Data[8:]))
			size := int(binary.LittleEndian.Uint64(a.Data[16:]))
			batch := int(binary.LittleEndian.Uint64(a.Data[24:]))
			coordinator := a.Sender
			wg.Add(2)
			t0 := time.Now()
			sctx, scancel := context.WithDeadline(ctx, t0.Add(warmup+d))
			go func() {
				defer wg.Done()
				defer scancel()
				var targets []int
				for _, m := range g.Members() {
					if !m.Self && m.PID != coordinator {
						targets = append(targets, m.PID)
					}
				}
				data := make([]byte, size)
				if batch <= 1 {
					for sctx.Err() == nil {
						for _, pid := range targets {
							g.Send(sctx, pid, "b", data)
						}
					}
					return
				}
				msgs := make([]alert.Message, batch)
				for i := range msgs {
					msgs[i] = alert.Message{Name: "b", Data: data}
				}
				for sctx.Err() == nil {
					for _, pid := range targets {
						g.SendMany(sctx, pid, msgs)
					}
				}
			}()
			go func() {
				defer wg.Done()
				time.Sleep(time.Until(t0.Add(warmup)))
				c0, cpu0 := g.Stats().Delivered, cpuTime()
				time.Sleep(time.Until(t0.Add(warmup + d)))
				c1, cpu1 := g.Stats().Delivered, cpuTime()
				res := binary.LittleEndian.AppendUint64(nil, c1-c0)
				res = binary.LittleEndian.AppendUint64(res, uint64(cpu1-cpu0))
				g.Send(ctx, coordinator, "result", res)
			}()
		},
		"rtt": func(ctx context.Context, a *alert.Alert) {
			<-joined
			now := time.Now()
			rtt.warm = now.Add(time.Duration(binary.LittleEndian.Uint64(a.Data)))
			rtt.end = rtt.warm.Add(time.Duration(binary.LittleEndian.Uint64(a.Data[8:])))
			rtt.data = make([]byte, binary.LittleEndian.Uint64(a.Data[16:]))
			rtt.peer = int(binary.LittleEndian.Uint64(a.Data[24:]))
			rtt.coordinator = a.Sender
			rtt.sent = time.Now()
			g.Send(ctx, rtt.peer, "ping", rtt.data)
		},
		"ping": func(ctx context.Context, a *alert.Alert) { a.Reply(ctx, "pong", a.Data) },
		"pong": func(ctx context.Context, a *alert.Alert) {
			now := time.Now()
			if now.After(rtt.warm) {
				rtt.samples = append(rtt.samples, now.Sub(rtt.sent))
			}
			if now.Before(rtt.end) {
				rtt.sent = time.Now()
				g.Send(ctx, rtt.peer, "ping", rtt.data)
				return
			}
			s := rtt.samples
			slices.Sort(s)
			pct := func(p float64) uint64 {
				if len(s) == 0 {
					return 0
				}
				return uint64(s[int(math.Min(float64(len(s)-1), p*float64(len(s))))])
			}
			b := binary.LittleEndian.AppendUint64(nil, uint64(len(s)))
			b = binary.LittleEndian.AppendUint64(b, pct(0.50))
			b = binary.LittleEndian.AppendUint64(b, pct(0.99))
			b = binary.LittleEndian.AppendUint64(b, pct(1))
			g.Send(ctx, rtt.coordinator, "result", b)
		},
	}
	var err error
	g, err = alert.Join(ctx, group, &alert.Config{Spin: mc.Spin, ReuseAlerts: mc.ReuseAlerts, Handlers: handlers})
	if err != nil {
		return err
	}
	close(joined)
	defer g.Close()
	io.Copy(io.Discard, stdin)
	cancel()
	return nil
}

// SelfSpawn returns a Spawn that re-executes this program with args
// (which must lead it to call Member) and the environment variables
// PROCWIRE_BENCH_GROUP, PROCWIRE_BENCH_SPIN and PROCWIRE_BENCH_REUSE set.
func SelfSpawn(args ...string) Spawn {
	return func(ctx context.Context, group string, mc MemberConfig) (*exec.Cmd, io.WriteCloser, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, err
		}
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "PROCWIRE_BENCH_GROUP="+group, "PROCWIRE_BENCH_SPIN="+mc.Spin.String(),
			"PROCWIRE_BENCH_REUSE="+strconv.FormatBool(mc.ReuseAlerts))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		return cmd, stdin, nil
	}
}

// MemberFromEnv runs Member with the group and configuration SelfSpawn passed. If
// PROCWIRE_BENCH_CPUPROFILE is set, the member writes a CPU profile to
// that path with its pid appended, for looking at one member's send and
// receive paths under the real load.
func MemberFromEnv(ctx context.Context) error {
	spin, err := time.ParseDuration(os.Getenv("PROCWIRE_BENCH_SPIN"))
	if err != nil {
		return fmt.Errorf("bench: PROCWIRE_BENCH_SPIN: %w", err)
	}
	reuse, err := strconv.ParseBool(os.Getenv("PROCWIRE_BENCH_REUSE"))
	if err != nil {
		return fmt.Errorf("bench: PROCWIRE_BENCH_REUSE: %w", err)
	}
	if path := os.Getenv("PROCWIRE_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return Member(ctx, os.Getenv("PROCWIRE_BENCH_GROUP"), MemberConfig{Spin: spin, ReuseAlerts: reuse}, os.Stdin)
}

// cpuTime is the processor time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
