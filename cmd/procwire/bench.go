package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/procwire/procwire/bench"
	"github.com/procwire/procwire/conf"
	"github.com/procwire/procwire/jsonipc"
)

func init() {
	register(command{
		name:    "bench",
		summary: "measure the JSON IPC server across processes and print a table",
		run:     runBench,
	})
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "[--socket PATH] [--duration D] [--sizes LIST] [--inflight N]", stderr)
	socket := fs.String("socket", "", "measure the server at this `path` (default: start `procwire serve` as a child process on a private socket)")
	duration := fs.Duration("duration", 2*time.Second, "measured `time` per row, after a 100ms warm-up")
	sizes := fs.String("sizes", "1K,5K,10K,20K,100K", "comma-separated echo payload `sizes` for the round-trip rows")
	inflight := fs.Int("inflight", 64, "requests in flight for the pipelined row")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	opts := &bench.Options{Duration: *duration, InFlight: *inflight}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := conf.ParseSize(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return usageErr("bad --sizes entry %q: want a size such as 512, 1K or 1M (at least 2 bytes)", s)
		}
		opts.Sizes = append(opts.Sizes, int(n))
	}

	if *socket == "" {
		path, stop, err := startChildServer(ctx, stderr)
		if err != nil {
			return err
		}
		defer stop()
		*socket = path
		fmt.Fprintf(stdout, "server: `procwire serve` in a child process on %s\n", path)
	} else {
		fmt.Fprintf(stdout, "server: %s\n", *socket)
	}
	rs, err := bench.JSONIPC(ctx, *socket, opts)
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
