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

func TestExample(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	const workers = 3
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
	var l logs
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

	get := func(path string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
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
	waitLines := func(sub string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for l.count(sub) < n {
			if time.Now().After(deadline) {
				t.Fatalf("want %d lines with %q, have %d:\n%s", n, sub, l.count(sub), strings.Join(l.lines, "\n"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Wait until every worker has joined the group.
	var pids []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		pids = strings.Fields(get("/pids"))
		if len(pids) == workers || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) != workers {
		t.Fatalf("pids %v, want %d workers", pids, workers)
	}

	get("/broadcast/hi")
	waitLines("says hi", workers)
	waitLines("hello to you too. you said hi", workers)

	get("/send/" + pids[0] + "/there")
	waitLines("sender ", workers+1)
	waitLines(`says there" worker=`+pids[0], 1)
	waitLines("you said there", 1)
}
