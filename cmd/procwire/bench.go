package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	alertbench "github.com/procwire/procwire/alert/bench"
	"github.com/procwire/procwire/bench"
	"github.com/procwire/procwire/conf"
	"github.com/procwire/procwire/jsonipc"
)

func init() {
	register(command{
		name:    "bench",
		summary: "measure procwire across processes (JSON IPC, dict, mq, sem, alerts) and print a table",
		run:     runBench,
	})
}

// benchParts are the parts of `procwire bench`, in the table's order.
var benchParts = []string{"jsonipc", "dict", "mq", "sem", "alert"}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "helper" { // started by the dict and mq rows
		return bench.Helper(ctx, args[1:], os.Stdin, stdout)
	}
	fs := newFlags("bench", "[--only LIST] [--socket PATH] [--duration D] [--sizes LIST] [--inflight N]", stderr)
	only := fs.String("only", strings.Join(benchParts, ","), "comma-separated `parts` to measure")
	socket := fs.String("socket", "", "measure the JSON IPC server at this `path` (default: start `procwire serve` as a child process on a private socket)")
	duration := fs.Duration("duration", 2*time.Second, "measured `time` per row, after a 100ms warm-up")
	sizes := fs.String("sizes", "1K,5K,10K,20K,100K", "comma-separated echo payload `sizes` for the JSON IPC round-trip rows")
	inflight := fs.Int("inflight", 64, "requests in flight for the pipelined JSON IPC row")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(benchParts, p) {
			return usageErr("unknown --only part %q (want some of %s)", p, strings.Join(benchParts, ", "))
		}
		parts[p] = true
	}
	opts := &bench.Options{Duration: *duration, InFlight: *inflight}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := conf.ParseSize(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return usageErr("bad --sizes entry %q: want a size such as 512, 1K or 1M (at least 2 bytes)", s)
		}
		opts.Sizes = append(opts.Sizes, int(n))
	}

	var rs []bench.Result
	run := func(part string, measure func() ([]bench.Result, error)) error {
		if !parts[part] || ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := measure()
		rs = append(rs, r...)
		return err
	}
	err := run("jsonipc", func() ([]bench.Result, error) {
		path := *socket
		if path == "" {
			p, stop, err := startChildServer(ctx, stderr)
			if err != nil {
				return nil, err
			}
			defer stop()
			path = p
			fmt.Fprintf(stdout, "server: `procwire serve` in a child process on %s\n", path)
		} else {
			fmt.Fprintf(stdout, "server: %s\n", path)
		}
		return bench.JSONIPC(ctx, path, opts)
	})
	helper := bench.SelfCommand("bench", "helper")
	if err == nil {
		err = run("dict", func() ([]bench.Result, error) { return bench.Dict(ctx, helper, opts) })
	}
	if err == nil {
		err = run("mq", func() ([]bench.Result, error) { return bench.MQ(ctx, helper, opts) })
	}
	if err == nil {
		err = run("sem", func() ([]bench.Result, error) { return bench.Sem(ctx, opts) })
	}
	if err == nil {
		err = run("alert", func() ([]bench.Result, error) {
			return bench.Alerts(ctx, alertbench.SelfSpawn("alert", "bench-member"), opts)
		})
	}
	if werr := bench.WriteTable(stdout, rs); err == nil {
		err = werr
	}
	return err
}

// startChildServer runs this binary's serve verb in a child process, so
// that the numbers include the process boundary a real client crosses.
func startChildServer(ctx context.Context, stderr io.Writer) (path string, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("finding the procwire binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "procwire-bench-")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "bench.sock")
	cmd := exec.Command(exe, "serve", "--socket", path, "--log-level", "warn")
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("starting the server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	// Wait until it answers: the child prints before it is ready to serve
	// only in the sense of having bound the socket, so ask it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := jsonipc.Dial(ctx, path, nil)
		if err == nil {
			c.Close()
			return path, stop, nil
		}
		select {
		case werr := <-exited:
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("server exited before serving: %v", werr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, errors.Join(errors.New("server did not start serving within 10s"), err)
		}
	}
}
