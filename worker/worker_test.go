//go:build linux

package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/worker"
)

// TestSharedListeners checks that every worker accepts on the one TCP port
// and the one Unix socket the master opened, and that SIGTERM stops them
// all and removes the socket file.
func TestSharedListeners(t *testing.T) {
	const n = 3
	sock := filepath.Join(t.TempDir(), "w.sock")
	c := startCluster(t, envWorkers+"=3", envUnix+"="+sock)
	ss := c.waitStarts("3 workers", func(ss []started) bool { return len(ss) == n })

	group := ss[0].group
	for _, s := range ss {
		if s.group != group {
			t.Errorf("workers have different group names: %q and %q", group, s.group)
		}
		if s.addrs["tcp"] != ss[0].addrs["tcp"] || s.addrs["unix"] != sock {
			t.Errorf("worker %d listens on %v, want the same TCP port as worker 0 (%v) and %s", s.index, s.addrs, ss[0].addrs, sock)
		}
	}
	// Fds this test process inherited without close-on-exec pass through
	// to every descendant; a worker must add none.
	ours := strings.Fields(inheritableFDs())
	for _, l := range c.lines("inheritable ") {
		if theirs := strings.Fields(l)[2:]; !slices.Equal(theirs, ours) {
			t.Errorf("a worker's children would inherit fds %v; the test's inherit only %v", theirs, ours)
		}
	}
	for _, l := range c.lines("env ") {
		if !strings.HasSuffix(l, ` ""`) {
			t.Errorf("a worker's environment still marks it as a worker: %s", l)
		}
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file: %v, mode %v; want mode 0600", err, fi.Mode())
	}
	for _, network := range []string{"tcp", "unix"} {
		seen := map[int]bool{}
		for i := 0; len(seen) < n; i++ {
			if i == 5000 {
				t.Fatalf("%s: after %d connections only workers %v answered", network, i, seen)
			}
			pid, err := ask(network, ss[0].addrs[network])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(pids(ss), pid) {
				t.Fatalf("%s: answered by pid %d, not a worker", network, pid)
			}
			seen[pid] = true
		}
	}

	c.signal(syscall.SIGTERM)
	if err := c.wait(); err != nil {
		t.Errorf("master: %v", err)
	}
	waitGone(t, pids(ss)...)
	if got := len(c.lines("stop ")); got != n {
		t.Errorf("%d workers recorded a clean stop, want %d: %q", got, n, c.lines("stop "))
	}
	for _, l := range c.lines("stop ") {
		if !strings.Contains(l, "shut down by signal: terminated") {
			t.Errorf("stop cause %q, want ErrShutdown by SIGTERM", l)
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

// TestRestartKilled kills workers with SIGKILL, one at a time, and checks
// that each slot gets a new worker that serves the port.
func TestRestartKilled(t *testing.T) {
	c := startCluster(t, envWorkers+"=2", envBackoff+"=10ms,50ms")
	ss := c.waitStarts("2 workers", func(ss []started) bool { return len(ss) == 2 })
	addr := ss[0].addrs["tcp"]
	kills := 20
	for k := range kills {
		victim := current(c.starts())[k%2]
		if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, victim.pid)
		c.waitStarts("a replacement", func(ss []started) bool {
			cur := current(ss)[victim.index]
			return cur.pid != victim.pid && cur.pid != 0
		})
		if _, err := ask("tcp", addr); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(c.starts()); got != 2+kills {
		t.Errorf("%d workers started, want %d", got, 2+kills)
	}
	c.signal(syscall.SIGTERM)
	c.wait()
	waitGone(t, pids(c.starts())...)
}

// TestCrashLoopBackoff runs workers that exit at once and checks, from the
// master's log, that the restart delays double up to the maximum.
func TestCrashLoopBackoff(t *testing.T) {
	c := startCluster(t, envWorkers+"=1", "WORKERTEST_MODE=crash", envBackoff+"=20ms,160ms")
	c.waitStarts("6 crashes", func(ss []started) bool { return len(ss) >= 6 })
	c.signal(syscall.SIGTERM)
	c.wait()
	waitGone(t, pids(c.starts())...)

	var delays []string
	log, _ := os.ReadFile(c.stderr)
	for _, line := range bytes.Split(log, []byte("\n")) {
		var rec struct {
			Msg   string
			Delay time.Duration
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "worker: restarting" {
			delays = append(delays, rec.Delay.String())
		}
	}
	want := []string{"0s", "20ms", "40ms", "80ms", "160ms"}
	if len(delays) < len(want) || !slices.Equal(delays[:len(want)], want) {
		t.Fatalf("restart delays %v, want them to start %v", delays, want)
	}
	for _, d := range delays[len(want):] {
		if d != "160ms" {
			t.Errorf("restart delays %v exceed the maximum", delays)
		}
	}
}

// TestStopTimeout checks that workers ignoring SIGTERM are killed after
// StopTimeout and that the master then exits.
func TestStopTimeout(t *testing.T) {
	c := startCluster(t, envWorkers+"=2", "WORKERTEST_MODE=stubborn", envStop+"=300ms")
	ss := c.waitStarts("2 workers", func(ss []started) bool { return len(ss) == 2 })
	c.signal(syscall.SIGTERM)
	if err := c.wait(); err != nil {
		t.Errorf("master: %v", err)
	}
	// The master has reaped them before exiting: they are gone already.
	for _, pid := range pids(ss) {
		if alive(pid) {
			t.Errorf("worker %d outlived its master", pid)
		}
	}
	if log, _ := os.ReadFile(c.stderr); !bytes.Contains(log, []byte("did not stop in time")) {
		t.Errorf("master log does not say workers were killed:\n%s", log)
	}
}

// TestMasterKilled kills the master with SIGKILL; its workers must exit.
func TestMasterKilled(t *testing.T) {
	c := startCluster(t, envWorkers+"=3")
	ss := c.waitStarts("3 workers", func(ss []started) bool { return len(ss) == 3 })
	c.signal(syscall.SIGKILL)
	c.wait()
	waitGone(t, pids(ss)...)
	if got := len(c.lines("stop ")); got != 3 {
		t.Errorf("%d of 3 workers stopped cleanly: %q", got, c.lines("stop "))
	}
	for _, l := range c.lines("stop ") {
		// Either notice may come first: the control socket's end of file or
		// the kernel's SIGTERM (PR_SET_PDEATHSIG).
		if !strings.HasSuffix(l, worker.ErrMasterGone.Error()) && !strings.HasSuffix(l, "shut down by signal: terminated") {
			t.Errorf("stop cause %q, want ErrMasterGone or ErrShutdown", l)
		}
	}
}

// TestMasterKilledStubborn: workers that ignore their context still exit
// after StopTimeout when the master is gone.
func TestMasterKilledStubborn(t *testing.T) {
	c := startCluster(t, envWorkers+"=2", "WORKERTEST_MODE=stubborn", envStop+"=300ms")
	ss := c.waitStarts("2 workers", func(ss []started) bool { return len(ss) == 2 })
	c.signal(syscall.SIGKILL)
	c.wait()
	waitGone(t, pids(ss)...)
}

// TestReload sends SIGHUP while a client keeps connecting: every worker is
// replaced by one of the next generation and no connection fails.
func TestReload(t *testing.T) {
	const n = 3
	c := startCluster(t, envWorkers+"=3")
	old := c.waitStarts("3 workers", func(ss []started) bool { return len(ss) == n })
	addr := old[0].addrs["tcp"]

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		answered = map[int]bool{}
	)
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				pid, err := ask("tcp", addr)
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				}
				answered[pid] = true
				mu.Unlock()
			}
		})
	}
	for round := 1; round <= 2; round++ {
		c.signal(syscall.SIGHUP)
		c.waitStarts("a new generation", func(ss []started) bool {
			cur := current(ss)
			for i := range n {
				if cur[i].gen != round {
					return false
				}
			}
			return true
		})
	}
	cur := current(c.starts())
	waitGone(t, pids(old)...)
	// The new workers answer too.
	for i := 0; ; i++ {
		mu.Lock()
		all := true
		for _, s := range cur {
			all = all && answered[s.pid]
		}
		mu.Unlock()
		if all {
			break
		}
		if i == 3000 {
			t.Fatalf("new workers %v never answered", cur)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d connections failed during the reload; first: %v", len(failures), failures[0])
	}
	if got := len(c.starts()); got != 3*n {
		t.Errorf("%d workers started over two reloads, want %d", got, 3*n)
	}
	for _, s := range c.starts() {
		if s.group != old[0].group {
			t.Errorf("group name changed across the reload: %q, then %q", old[0].group, s.group)
		}
	}
	c.signal(syscall.SIGTERM)
	c.wait()
	waitGone(t, pids(c.starts())...)
}

// TestInProcessMaster runs the master in the test process itself, stops it
// through its context and checks that nothing leaks: no goroutine, no fd,
// no child process.
func TestInProcessMaster(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status")
	// os/signal starts its watcher goroutine on first use, for good.
	c0 := make(chan os.Signal, 1)
	signal.Notify(c0, syscall.SIGHUP)
	signal.Stop(c0)
	fds := openFDs(t)
	goroutines := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := &worker.Config{
		Workers:   2,
		Listeners: []worker.ListenSpec{{Network: "tcp", Address: "127.0.0.1:0"}},
		Args:      []string{os.Args[0], "-test.run=^$"},
		Env:       append(os.Environ(), envStatus+"="+status, quickRaceExit),
		Logger:    testLogger(t),
	}
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, cfg, nil) }()
	c := &cluster{t: t, status: status}
	ss := c.waitStarts("2 workers", func(ss []started) bool { return len(ss) == 2 })
	if _, err := ask("tcp", ss[0].addrs["tcp"]); err != nil {
		t.Fatal(err)
	}
	// A restart and a reload, so that their fds are accounted for too.
	syscall.Kill(ss[0].pid, syscall.SIGKILL)
	c.waitStarts("a restart", func(ss []started) bool { return len(ss) == 3 })
	syscall.Kill(os.Getpid(), syscall.SIGHUP) // Run has it caught
	ss = c.waitStarts("a reload", func(ss []started) bool {
		cur := current(ss)
		return cur[0].gen == 1 && cur[1].gen == 1
	})
	if _, err := ask("tcp", ss[0].addrs["tcp"]); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	for _, pid := range pids(ss) {
		// Not even a zombie: Run must have reaped its children.
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("worker %d still exists (running or unreaped) after Run returned", pid)
		}
	}
	for i := 0; ; i++ {
		after := runtime.NumGoroutine()
		if after <= goroutines {
			break
		}
		if i == 100 {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before Run, %d after:\n%s", goroutines, after, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("%d fds open before Run, %d after", fds, after)
	}
}

// TestRunErrors checks that bad configurations are refused with an error
// naming the problem, before anything starts.
func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  worker.Config
		want string
	}{
		{"negative workers", worker.Config{Workers: -1}, "Workers must not be negative"},
		{"udp", worker.Config{Listeners: []worker.ListenSpec{{Network: "udp", Address: ":0"}}}, `unsupported network "udp"`},
		{"unix without path", worker.Config{Listeners: []worker.ListenSpec{{Network: "unix"}}}, "needs a path"},
		{"bad mode", worker.Config{Listeners: []worker.ListenSpec{{Network: "unix", Address: "x", Mode: os.ModeDir | 0o600}}}, "bits other than permissions"},
		{"backoff", worker.Config{Backoff: worker.Backoff{Min: time.Second, Max: time.Millisecond}}, "Backoff.Max"},
		{"address", worker.Config{Listeners: []worker.ListenSpec{{Network: "tcp", Address: "127.0.0.1:-1"}}}, "Listeners[0]"},
		{"missing program", worker.Config{Path: "/nonexistent/procwire-worker-test", Workers: 1}, "start worker 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = testLogger(t)
			err := worker.Run(context.Background(), &tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestNotStartedByMaster: a process that inherited PROCWIRE_WORKER from
// somewhere must not take fds 3 and up for its own.
func TestNotStartedByMaster(t *testing.T) {
	t.Setenv("PROCWIRE_WORKER", "0")
	if !worker.IsWorker() {
		t.Fatal("IsWorker is false with PROCWIRE_WORKER set")
	}
	err := worker.Run(context.Background(), nil, func(context.Context, *worker.Worker) error {
		t.Error("fn called")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "PROCWIRE_WORKER_GENERATION is not set") {
		t.Errorf("Run: %v, want an error about the missing environment", err)
	}
	t.Setenv("PROCWIRE_WORKER_GENERATION", "0")
	t.Setenv("PROCWIRE_WORKER_GROUP", "g")
	t.Setenv("PROCWIRE_WORKER_MASTER", "1")
	t.Setenv("PROCWIRE_WORKER_LISTENERS", "0")
	t.Setenv("PROCWIRE_WORKER_STOP_TIMEOUT", "1s")
	err = worker.Run(context.Background(), nil, func(context.Context, *worker.Worker) error {
		t.Error("fn called")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "names master pid 1 but the parent is pid") {
		t.Errorf("Run: %v, want an error about the parent pid", err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestReloadWaitsForReady checks, with Config.ManualReady, that an old
// worker is told to stop only after its successor called Ready.
func TestReloadWaitsForReady(t *testing.T) {
	c := startCluster(t, envWorkers+"=2", envMode+"=lateready")
	old := c.waitStarts("2 workers", func(ss []started) bool { return len(ss) == 2 })
	c.signal(syscall.SIGHUP)
	waitGone(t, pids(old)...)
	cur := current(c.starts())
	b, _ := os.ReadFile(c.status)
	lines := strings.Split(string(b), "\n")
	for _, o := range old {
		n := cur[o.index]
		ready := slices.Index(lines, fmt.Sprintf("ready %d %d 1", n.pid, n.index))
		stop := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, fmt.Sprintf("stop %d ", o.pid)) })
		if ready < 0 || stop < 0 || stop < ready {
			t.Errorf("slot %d: old worker stopped at line %d, new one ready at line %d; want ready first:\n%s", o.index, stop, ready, b)
		}
	}
	c.signal(syscall.SIGTERM)
	c.wait()
	waitGone(t, pids(c.starts())...)
}

// TestReloadAbandoned checks that a new generation that crashes, or never
// becomes ready, leaves the old workers serving.
func TestReloadAbandoned(t *testing.T) {
	for _, tc := range []struct{ mode, log string }{
		{"newcrash", "new worker exited before it was ready"},
		{"newnoready", "new worker not ready in time"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c := startCluster(t, envWorkers+"=2", envMode+"="+tc.mode, envReady+"=500ms", envStop+"=5s")
			old := c.waitStarts("2 workers", func(ss []started) bool { return len(ss) == 2 })
			c.signal(syscall.SIGHUP)
			deadline := time.Now().Add(30 * time.Second)
			for {
				log, _ := os.ReadFile(c.stderr)
				if bytes.Contains(log, []byte(tc.log)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("master never logged %q", tc.log)
				}
				time.Sleep(20 * time.Millisecond)
			}
			ss := c.starts()
			if len(ss) != 3 {
				t.Errorf("%d workers started, want the 2 old ones and 1 new one: %+v", len(ss), ss)
			}
			waitGone(t, ss[2].pid)
			for _, o := range old {
				if !alive(o.pid) {
					t.Errorf("old worker %d was stopped", o.pid)
				}
			}
			for range 20 {
				pid, err := ask("tcp", old[0].addrs["tcp"])
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(pids(old), pid) {
					t.Errorf("answered by %d, not an old worker", pid)
				}
			}
			c.signal(syscall.SIGTERM)
			c.wait()
			waitGone(t, pids(c.starts())...)
		})
	}
}

// TestStaleUnixSocket checks that a socket file left by a killed master
// does not keep the next master from starting, and that a socket still
// in use is never taken over.
func TestStaleUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "w.sock")
	c := startCluster(t, envWorkers+"=1", envUnix+"="+sock)
	ss := c.waitStarts("1 worker", func(ss []started) bool { return len(ss) == 1 })

	busy := &worker.Config{Workers: 1, Logger: testLogger(t), Listeners: []worker.ListenSpec{{Network: "unix", Address: sock}}}
	if err := worker.Run(context.Background(), busy, nil); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("second master on a served socket: %v, want address already in use", err)
	}

	c.signal(syscall.SIGKILL)
	c.wait()
	waitGone(t, pids(ss)...)
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("a killed master should leave its socket file: %v", err)
	}
	c2 := startCluster(t, envWorkers+"=1", envUnix+"="+sock)
	ss = c2.waitStarts("1 worker", func(ss []started) bool { return len(ss) == 1 })
	if _, err := ask("unix", sock); err != nil {
		t.Fatal(err)
	}
	if log, _ := os.ReadFile(c2.stderr); !bytes.Contains(log, []byte("removing stale unix socket")) {
		t.Errorf("the second master did not log removing the stale socket:\n%s", log)
	}
	c2.signal(syscall.SIGTERM)
	c2.wait()
	waitGone(t, pids(ss)...)
}

// TestSecondSignalKills checks that a second stop signal does not wait for
// StopTimeout (one minute here) to kill workers that ignore the first.
func TestSecondSignalKills(t *testing.T) {
	c := startCluster(t, envWorkers+"=2", envMode+"=stubborn", envStop+"=1m")
	ss := c.waitStarts("2 workers", func(ss []started) bool { return len(ss) == 2 })
	c.signal(syscall.SIGINT)
	deadline := time.Now().Add(30 * time.Second)
	for {
		log, _ := os.ReadFile(c.stderr)
		if bytes.Contains(log, []byte("stopping workers")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("master did not begin to stop on SIGINT")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.signal(syscall.SIGTERM)
	if err := c.wait(); err != nil { // fails the test after 30s, well before 1m
		t.Errorf("master: %v", err)
	}
	for _, pid := range pids(ss) {
		if alive(pid) {
			t.Errorf("worker %d outlived its master", pid)
		}
	}
}
