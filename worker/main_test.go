//go:build linux

package worker_test

// The tests run real processes: the test binary re-executes itself as a
// master (WORKERTEST_ROLE=master), and the master re-executes it again as
// workers (worker.IsWorker). Workers append one line per event to a status
// file that the tests read.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/worker"
)

const (
	envRole    = "WORKERTEST_ROLE"    // "master" in a master started by a test
	envMode    = "WORKERTEST_MODE"    // what workers do: serve, crash, stubborn
	envStatus  = "WORKERTEST_STATUS"  // the status file
	envWorkers = "WORKERTEST_WORKERS" // master: Config.Workers
	envUnix    = "WORKERTEST_UNIX"    // master: a Unix socket path to listen on
	envStop    = "WORKERTEST_STOP"    // master: Config.StopTimeout
	envBackoff = "WORKERTEST_BACKOFF" // master: Backoff.Min,Backoff.Max
	envReady   = "WORKERTEST_READY"   // master: Config.ReadyTimeout
)

// quickRaceExit keeps the race detector from sleeping a second in every
// exiting child (its atexit_sleep_ms default).
const quickRaceExit = "GORACE=atexit_sleep_ms=0"

func TestMain(m *testing.M) {
	switch {
	case worker.IsWorker():
		os.Exit(workerMain())
	case os.Getenv(envRole) == "master":
		os.Exit(masterMain())
	}
	// Workers orphaned by a killed master become our children, so that the
	// tests can see them exit and reap them instead of leaving zombies.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func masterMain() int {
	cfg := &worker.Config{
		Listeners: []worker.ListenSpec{{Network: "tcp", Address: "127.0.0.1:0"}},
		Logger:    slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	cfg.Workers, _ = strconv.Atoi(os.Getenv(envWorkers))
	if p := os.Getenv(envUnix); p != "" {
		cfg.Listeners = append(cfg.Listeners, worker.ListenSpec{Network: "unix", Address: p})
	}
	if d, err := time.ParseDuration(os.Getenv(envStop)); err == nil {
		cfg.StopTimeout = d
	}
	if d, err := time.ParseDuration(os.Getenv(envReady)); err == nil {
		cfg.ReadyTimeout = d
	}
	if lo, hi, ok := strings.Cut(os.Getenv(envBackoff), ","); ok {
		cfg.Backoff.Min, _ = time.ParseDuration(lo)
		cfg.Backoff.Max, _ = time.ParseDuration(hi)
	}
	if err := worker.Run(context.Background(), cfg, nil); err != nil {
		fmt.Fprintln(os.Stderr, "master:", err)
		return 1
	}
	return 0
}

// workerMain is main in a worker: it records its start and how it ended,
// and serves each listener by writing "pid index generation\n". The mode
// changes how it behaves:
//
//	serve       serve until told to stop (the default)
//	fast        serve without pausing after each connection
//	crash       exit with an error at once
//	stubborn    serve and ignore ctx
//	lateready   ManualReady; record "ready", then call Ready after 100ms
//	newcrash    generation 0 serves, later ones exit at once
//	newnoready  ManualReady; generation 0 is ready, later ones never
func workerMain() int {
	mode := os.Getenv(envMode)
	cfg := &worker.Config{ManualReady: mode == "lateready" || mode == "newnoready"}
	err := worker.Run(context.Background(), cfg, func(ctx context.Context, w *worker.Worker) error {
		addrs := []string{}
		for _, l := range w.Listeners() {
			addrs = append(addrs, l.Addr().Network()+"="+l.Addr().String())
		}
		status("env %d %q", w.PID(), os.Getenv("PROCWIRE_WORKER"))
		status("inheritable %d%s", w.PID(), inheritableFDs())
		status("start %d %d %d %s %s", w.PID(), w.Index(), w.Generation(), w.GroupName(), strings.Join(addrs, " "))
		switch {
		case mode == "crash", mode == "newcrash" && w.Generation() > 0:
			return errors.New("crashing on purpose")
		case mode == "stubborn":
			go serve(context.Background(), w)
			select {} // ignores ctx: the master must kill it
		case mode == "lateready":
			time.Sleep(100 * time.Millisecond)
			status("ready %d %d %d", w.PID(), w.Index(), w.Generation())
			w.Ready()
		case mode == "newnoready" && w.Generation() == 0:
			w.Ready()
		}
		serve(ctx, w)
		status("stop %d %v", w.PID(), context.Cause(ctx))
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, w *worker.Worker) {
	var wg sync.WaitGroup
	for _, l := range w.Listeners() {
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%d %d %d\n", w.PID(), w.Index(), w.Generation())
				c.Close()
				if os.Getenv(envMode) != "fast" {
					// Let the other workers take a turn, so that every one
					// of them is seen accepting.
					time.Sleep(2 * time.Millisecond)
				}
			}
		})
	}
	<-ctx.Done()
	for _, l := range w.Listeners() {
		l.Close()
	}
	wg.Wait()
}

func status(format string, args ...any) {
	f, err := os.OpenFile(os.Getenv(envStatus), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(fmt.Sprintf(format, args...) + "\n") // one write: O_APPEND keeps lines whole
}

// started is a "start" line of the status file.
type started struct {
	pid, index, gen int
	group           string
	addrs           map[string]string // network => address
}

// cluster is a master process started by a test.
type cluster struct {
	t       testing.TB
	cmd     *exec.Cmd
	status  string
	stderr  string
	waitErr chan error
}

func startCluster(t testing.TB, env ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, status: filepath.Join(dir, "status"), stderr: filepath.Join(dir, "master.log"), waitErr: make(chan error, 1)}
	logf, err := os.Create(c.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), append([]string{envRole + "=master", envStatus + "=" + c.status, quickRaceExit}, env...)...)
	c.cmd.Stdout = logf
	c.cmd.Stderr = logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.waitErr <- c.cmd.Wait() }()
	t.Cleanup(func() {
		// Whatever happened, leave no process behind. With the master gone,
		// a worker still running has been reparented to us (we are the
		// subreaper); checking that keeps us from killing an unrelated
		// process that reused the pid of a worker that has exited.
		c.cmd.Process.Kill()
		<-c.waitErr
		for _, s := range c.starts() {
			if parentOf(s.pid) == os.Getpid() {
				syscall.Kill(s.pid, syscall.SIGKILL)
			}
		}
		for _, s := range c.starts() {
			waitGone(t, s.pid)
		}
		if t.Failed() {
			b, _ := os.ReadFile(c.stderr)
			t.Logf("master log:\n%s", b)
		}
	})
	return c
}

// starts returns the start lines of the status file so far.
func (c *cluster) starts() []started {
	f, err := os.Open(c.status)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []started
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "start" {
			continue
		}
		s := started{group: fields[4], addrs: map[string]string{}}
		s.pid, _ = strconv.Atoi(fields[1])
		s.index, _ = strconv.Atoi(fields[2])
		s.gen, _ = strconv.Atoi(fields[3])
		for _, a := range fields[5:] {
			n, addr, _ := strings.Cut(a, "=")
			s.addrs[n] = addr
		}
		out = append(out, s)
	}
	return out
}

// lines returns the status lines that start with prefix.
func (c *cluster) lines(prefix string) []string {
	b, _ := os.ReadFile(c.status)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// waitStarts polls until ok accepts the start lines, and returns them.
func (c *cluster) waitStarts(what string, ok func([]started) bool) []started {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := c.starts()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; starts: %+v", what, s)
		}
		select {
		case err := <-c.waitErr:
			c.waitErr <- err
			c.t.Fatalf("master exited (%v) while waiting for %s; starts: %+v", err, what, s)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// signal sends sig to the master.
func (c *cluster) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatal(err)
	}
}

// wait waits for the master to exit and returns its exit error.
func (c *cluster) wait() error {
	c.t.Helper()
	select {
	case err := <-c.waitErr:
		c.waitErr <- err
		return err
	case <-time.After(30 * time.Second):
		c.t.Fatal("master did not exit")
		return nil
	}
}

// parentOf returns the parent pid of pid, or 0 if there is no such process.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// alive reports whether pid is a running (not zombie) process, reaping it
// if it is our orphaned child.
func alive(pid int) bool {
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitGone(t testing.TB, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("process %d still running", pid)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// ask connects to addr and returns the pid of the worker that answered.
func ask(network, addr string) (int, error) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read from %s: %w", addr, err)
	}
	pid, err := strconv.Atoi(strings.Fields(line)[0])
	return pid, err
}

func pids(ss []started) []int {
	var out []int
	for _, s := range ss {
		out = append(out, s.pid)
	}
	return out
}

// current returns, per slot, the last worker started in it.
func current(ss []started) map[int]started {
	m := map[int]started{}
	for _, s := range ss {
		m[s.index] = s
	}
	return m
}

// testLogger logs to t, so that a failing test shows what the master did.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// inheritableFDs lists, each after a space, the fds above stderr that a
// child of this process would inherit (those without close-on-exec).
func inheritableFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out string
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			out += " " + e.Name()
		}
	}
	return out
}
