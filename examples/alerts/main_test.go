//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test re-runs its own binary as the example's master (and the master
// re-runs it as workers), selected by this variable.
const envMain = "ALERTS_EXAMPLE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// logs collects the master's (and so the workers') output lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// server is the example running as a master with its workers.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	logs *logs
}

func startServer(t *testing.T, workers int) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := exec.Command(os.Args[0], "-addr", addr, "-workers", fmt.Sprint(workers))
	cmd.Env = append(os.Environ(), envMain+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &logs{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	return &server{t: t, cmd: cmd, addr: addr, logs: l}
}

func (s *server) get(path string) string {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
		}
		return string(b)
	}
}

func (s *server) waitLines(sub string, n int) {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.logs.count(sub) < n {
		if time.Now().After(deadline) {
			s.logs.mu.Lock()
			defer s.logs.mu.Unlock()
			t.Fatalf("want %d lines with %q, have fewer:\n%s", n, sub, strings.Join(s.logs.lines, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pids waits until the group has n workers, none of them in old, and returns them.
func (s *server) pids(n int, old []string) []string {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := strings.Fields(s.get("/pids"))
		fresh := len(pids) == n
		for _, p := range pids {
			for _, o := range old {
				fresh = fresh && p != o
			}
		}
		if fresh {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("pids %v, want %d workers not in %v", pids, n, old)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExample(t *testing.T) {
	const workers = 3
	s := startServer(t, workers)
	get, waitLines := s.get, s.waitLines
	pids := s.pids(workers, nil)

	get("/broadcast/hi")
	waitLines("says hi", workers)
	waitLines("hello to you too. you said hi", workers)

	get("/send/" + pids[0] + "/there")
	waitLines("sender ", workers+1)
	waitLines(`says there" worker=`+pids[0], 1)
	waitLines("you said there", 1)
}

// A reload (SIGHUP) replaces every worker while broadcasts keep flowing:
// old and new workers share the group, so no broadcast fails and the new
// workers get alerts.
func TestReloadKeepsAlertsFlowing(t *testing.T) {
	const workers = 2
	s := startServer(t, workers)
	old := s.pids(workers, nil)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var fresh []string
	sent := 0
	for deadline := time.Now().Add(30 * time.Second); fresh == nil; sent++ {
		s.get(fmt.Sprintf("/broadcast/during%d", sent)) // fails the test on any error
		pids := strings.Fields(s.get("/pids"))
		if len(pids) == workers && !slices.ContainsFunc(pids, func(p string) bool { return slices.Contains(old, p) }) {
			fresh = pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("reload did not replace %v; now %v", old, pids)
		}
	}
	s.get("/broadcast/after")
	s.waitLines("says after", workers)
	for _, p := range fresh {
		s.waitLines(`says after" worker=`+p, 1)
	}
	t.Logf("%d broadcasts during the reload, all accepted", sent)
}
