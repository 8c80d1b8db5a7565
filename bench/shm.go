package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	alertbench "github.com/procwire/procwire/alert/bench"
	"github.com/procwire/procwire/shm/dict"
	"github.com/procwire/procwire/shm/mq"
	"github.com/procwire/procwire/shm/sem"
)

// Command returns an unstarted command that runs this program so that it
// calls Helper with args, its standard input and its standard output. The
// shared-memory rows use it to put the other side of a measurement in a
// process of its own.
type Command func(args ...string) *exec.Cmd

// SelfCommand returns a Command that re-executes this program with prefix
// before the helper's arguments; `procwire bench` passes "bench", "helper".
func SelfCommand(prefix ...string) Command {
	return func(args ...string) *exec.Cmd {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		return exec.Command(exe, append(append([]string(nil), prefix...), args...)...)
	}
}

// The dict rows use OpenResty's usual shape: 16-byte keys, 100-byte
// values, 1024 keys, in a 64 MiB dictionary.
const (
	dictKeys     = 1024
	dictCapacity = 64 << 20
	dictValueLen = 100
	mqCapacity   = 1 << 20
)

func dictKeyList() []string {
	keys := make([]string, dictKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%011d", i)
	}
	return keys
}

var dictValue = dict.String(strings.Repeat("v", dictValueLen))

// timed runs op in batches until warmup, then counts the operations
// done in o.Duration. op does n operations and reports an error.
func timed(o Options, op func(n int) error) (Result, error) {
	const batch = 1024
	for end := time.Now().Add(o.Warmup); time.Now().Before(end); {
		if err := op(batch); err != nil {
			return Result{}, err
		}
	}
	start := time.Now()
	end := start.Add(o.Duration)
	var ops int64
	for time.Now().Before(end) {
		if err := op(batch); err != nil {
			return Result{}, err
		}
		ops += batch
	}
	return Result{Ops: ops, Elapsed: time.Since(start)}, nil
}

// xorshift is the key order of the dict rows: random, and cheap enough
// not to be measured instead of the dictionary.
type xorshift uint64

func (x *xorshift) next() uint64 {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return uint64(*x)
}

// mixedOps returns the loop body of the two-process row: half Sets, half
// Gets of random shared keys, the operation drawn apart from the key so
// that Gets also meet the keys the other process overwrites.
func mixedOps(d *dict.Dict, seed uint64) func(n int) error {
	keys := dictKeyList()
	x := xorshift(seed)
	buf := make([]byte, 0, 2*dictValueLen)
	return func(n int) error {
		for range n {
			r := x.next()
			k := keys[r%dictKeys]
			var err error
			if r>>32&1 == 0 {
				_, err = d.Set(k, dictValue, 0, 0)
			} else {
				buf, _, _, err = d.GetBytes(k, buf[:0])
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// Dict measures the shared dictionary: Get and Set in this process, then
// the mix of both from this process and a helper process at once, the
// row reporting their total.
func Dict(ctx context.Context, command Command, opts *Options) ([]Result, error) {
	o := opts.withDefaults()
	name := fmt.Sprintf("bench.%d.dict", os.Getpid())
	d, err := dict.Open(name, dictCapacity, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		d.Close()
		dict.Remove(name)
	}()
	keys := dictKeyList()
	for _, k := range keys {
		if _, err := d.Set(k, dictValue, 0, 0); err != nil {
			return nil, err
		}
	}
	var out []Result
	buf := make([]byte, 0, 2*dictValueLen)
	get, err := timed(o, func(n int) error {
		for j := range n {
			var err error
			buf, _, _, err = d.GetBytes(keys[j%dictKeys], buf[:0])
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("dict get: %w", err)
	}
	get.Name = "dict get, 16B key, 100B value"
	out = append(out, get)
	set, err := timed(o, func(n int) error {
		for j := range n {
			if _, err := d.Set(keys[j%dictKeys], dictValue, 0, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("dict set: %w", err)
	}
	set.Name = "dict set, 16B key, 100B value"
	out = append(out, set)

	h, err := startHelper(ctx, command, "dict-mixed", name)
	if err != nil {
		return out, fmt.Errorf("dict two processes: %w", err)
	}
	defer h.stop()
	if err := h.send("go %d %d", o.Warmup, o.Duration); err != nil {
		return out, fmt.Errorf("dict two processes: %w", err)
	}
	mixed, err := timed(o, mixedOps(d, 0x9e3779b97f4a7c15))
	if err != nil {
		return out, fmt.Errorf("dict two processes: %w", err)
	}
	other, err := h.result(ctx, o.Warmup+o.Duration+10*time.Second)
	if err != nil {
		return out, fmt.Errorf("dict two processes: %w", err)
	}
	mixed.Ops += other
	mixed.Name = "dict get+set 50/50, 2 processes, shared keys"
	return append(out, mixed), nil
}

// MQ measures message queues with producers in helper processes and the
// consumer here: 10-byte and 10 KB messages from one producer, 10-byte
// messages from four. A row counts the messages received in its measured
// time; each is checked for its length.
func MQ(ctx context.Context, command Command, opts *Options) ([]Result, error) {
	o := opts.withDefaults()
	var out []Result
	for i, c := range []struct{ producers, size int }{{1, 10}, {1, 10 << 10}, {4, 10}} {
		r, err := mqRow(ctx, command, o, fmt.Sprintf("bench.%d.mq%d", os.Getpid(), i), c.producers, c.size)
		if err != nil {
			return out, fmt.Errorf("mq %s, %d producers: %w", SizeName(c.size), c.producers, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func mqRow(ctx context.Context, command Command, o Options, name string, producers, size int) (Result, error) {
	// A producer that dies would leave the consumer waiting: bound the row.
	ctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+30*time.Second)
	defer cancel()
	q, err := mq.Create(name, mqCapacity, nil)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		q.Close()
		mq.Remove(name)
	}()
	var hs []*helper
	defer func() {
		for _, h := range hs {
			h.stop()
		}
	}()
	for range producers {
		h, err := startHelper(ctx, command, "mq-send", name, strconv.Itoa(size))
		if err != nil {
			return Result{}, err
		}
		hs = append(hs, h)
	}
	for _, h := range hs {
		if err := h.send("go"); err != nil {
			return Result{}, err
		}
	}
	var got int64
	bad := 0
	count := func(m []byte) {
		got++
		if len(m) != size {
			bad = len(m)
		}
	}
	receive := func(until time.Time) error {
		for time.Now().Before(until) {
			if _, err := q.ReceiveBatch(ctx, count); err != nil {
				return err
			}
			if bad != 0 {
				return fmt.Errorf("received a %d-byte message, sent %d bytes", bad, size)
			}
		}
		return nil
	}
	if err := receive(time.Now().Add(o.Warmup)); err != nil {
		return Result{}, err
	}
	got = 0
	start := time.Now()
	if err := receive(start.Add(o.Duration)); err != nil {
		return Result{}, err
	}
	elapsed := time.Since(start)
	p := "process"
	if producers > 1 {
		p = "processes"
	}
	return Result{
		Name:    fmt.Sprintf("mq %s messages, %d producer %s", SizeName(size), producers, p),
		Ops:     got,
		Elapsed: elapsed,
	}, nil
}

// Sem measures an uncontended semaphore: one acquire and one release per
// operation, in this process.
func Sem(ctx context.Context, opts *Options) ([]Result, error) {
	o := opts.withDefaults()
	name := fmt.Sprintf("bench.%d.sem", os.Getpid())
	s, err := sem.Open(name, 1, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		s.Close()
		sem.Remove(name)
	}()
	r, err := timed(o, func(n int) error {
		for range n {
			if !s.TryAcquire() {
				return errors.New("uncontended TryAcquire failed")
			}
			if err := s.Release(); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sem: %w", err)
	}
	r.Name = "sem acquire+release pair"
	return []Result{r}, nil
}

// Alerts measures alert groups (see alert/bench): all-to-all between 5
// member processes with one Send per alert, for 10-byte and 10 KB alerts,
// and the Send+Reply round trip between 2 members that spin (the
// default).
func Alerts(ctx context.Context, spawn alertbench.Spawn, opts *Options) ([]Result, error) {
	o := opts.withDefaults()
	var out []Result
	for i, size := range []int{10, 10 << 10} {
		cfg := alertbench.Config{
			Group: fmt.Sprintf("bench-%d-%d", os.Getpid(), i), Members: 5, Size: size,
			Duration: o.Duration, Warmup: o.Warmup, Batch: 1,
		}
		r, err := alertbench.AllToAll(ctx, cfg, spawn)
		if err != nil {
			return out, fmt.Errorf("alert all-to-all %s: %w", SizeName(size), err)
		}
		out = append(out, Result{
			Name:    fmt.Sprintf("alert %s all-to-all, 5 processes, Send", SizeName(size)),
			Ops:     int64(r.Delivered),
			Elapsed: r.Elapsed,
		})
	}
	cfg := alertbench.Config{Group: fmt.Sprintf("bench-%d-rtt", os.Getpid()), Size: 10, Duration: o.Duration, Warmup: o.Warmup}
	l, err := alertbench.RoundTrip(ctx, cfg, spawn)
	if err != nil {
		return out, fmt.Errorf("alert round trip: %w", err)
	}
	return append(out, Result{
		Name:    "alert 10B Send+Reply round trip, 2 processes",
		Ops:     int64(l.Samples),
		Elapsed: o.Duration,
		P50:     l.P50,
		P99:     l.P99,
	}), nil
}

// Helper is the body of a helper process that Dict and MQ start through
// a Command. args name its role: "dict-mixed NAME" runs the two-process
// dict mix on the dictionary NAME; "mq-send NAME SIZE" sends SIZE-byte
// messages to the queue NAME until its standard input closes. It says
// "ready" on stdout once set up, waits for a "go" line on stdin, and
// reports, if its role measures, "ops N".
func Helper(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench helper: no role")
	}
	in := bufio.NewReader(stdin)
	switch role := args[0]; {
	case role == "dict-mixed" && len(args) == 2:
		d, err := dict.Open(args[1], dictCapacity, nil)
		if err != nil {
			return err
		}
		defer d.Close()
		fmt.Fprintln(stdout, "ready")
		line, err := in.ReadString('\n')
		if err != nil {
			return fmt.Errorf("bench helper: waiting for go: %w", err)
		}
		var o Options
		if _, err := fmt.Sscanf(line, "go %d %d", &o.Warmup, &o.Duration); err != nil {
			return fmt.Errorf("bench helper: bad order %q: %w", line, err)
		}
		r, err := timed(o, mixedOps(d, 0x2545f4914f6cdd1d))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "ops %d\n", r.Ops)
		return err
	case role == "mq-send" && len(args) == 3:
		size, err := strconv.Atoi(args[2])
		if err != nil || size < 0 {
			return fmt.Errorf("bench helper: bad size %q", args[2])
		}
		q, err := mq.Open(args[1], nil)
		if err != nil {
			return err
		}
		defer q.Close()
		fmt.Fprintln(stdout, "ready")
		if _, err := in.ReadString('\n'); err != nil {
			return fmt.Errorf("bench helper: waiting for go: %w", err)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			io.Copy(io.Discard, in) // until the parent closes our stdin
			cancel()
		}()
		msg := make([]byte, size)
		for {
			if err := q.Send(ctx, msg); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	default:
		return fmt.Errorf("bench helper: unknown role %q", strings.Join(args, " "))
	}
}

// helper is a running helper process.
type helper struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	exited chan error
}

// startHelper starts a helper and waits until it says it is ready.
func startHelper(ctx context.Context, command Command, args ...string) (*helper, error) {
	cmd := command(args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a helper process: %w", err)
	}
	h := &helper{cmd: cmd, in: in, out: bufio.NewReader(out), exited: make(chan error, 1)}
	line, err := h.line(ctx, 10*time.Second)
	if err != nil || line != "ready" {
		h.stop()
		return nil, fmt.Errorf("helper %v did not get ready: %q, %v", args, line, err)
	}
	return h, nil
}

// line reads the helper's next line, giving up (and killing the helper)
// when ctx ends or after timeout.
func (h *helper) line(ctx context.Context, timeout time.Duration) (string, error) {
	type read struct {
		s   string
		err error
	}
	c := make(chan read, 1)
	go func() {
		s, err := h.out.ReadString('\n')
		c <- read{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-c:
		return r.s, r.err
	case <-ctx.Done():
		h.kill()
		return "", ctx.Err()
	case <-time.After(timeout):
		h.kill()
		return "", fmt.Errorf("no answer in %v", timeout)
	}
}

func (h *helper) send(format string, args ...any) error {
	_, err := fmt.Fprintf(h.in, format+"\n", args...)
	return err
}

// result reads the helper's "ops N" report, which comes after its
// measured time, within timeout.
func (h *helper) result(ctx context.Context, timeout time.Duration) (int64, error) {
	line, err := h.line(ctx, timeout)
	if err != nil {
		return 0, err
	}
	var n int64
	if _, err := fmt.Sscanf(line, "ops %d", &n); err != nil {
		return 0, fmt.Errorf("helper report %q: %w", line, err)
	}
	return n, nil
}

func (h *helper) kill() { h.cmd.Process.Kill() }

// stop closes the helper's stdin, which ends it, and waits for it; one
// that does not end within 10 seconds is killed.
func (h *helper) stop() error {
	h.in.Close()
	go func() { h.exited <- h.cmd.Wait() }()
	select {
	case err := <-h.exited:
		return err
	case <-time.After(10 * time.Second):
		h.kill()
		return <-h.exited
	}
}
