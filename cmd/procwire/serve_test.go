package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer lets the test read what serve printed while it still runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `procwire serve args...` in-process until the test ends
// and returns the socket path it reported.
func startServe(t *testing.T, args ...string) (socket string, stdout *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout = &syncBuffer{}
	var stderr syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s of cancellation")
		}
		if socket != "" {
			if _, err := os.Stat(socket); !os.IsNotExist(err) {
				t.Errorf("socket %s left behind after shutdown (stat: %v)", socket, err)
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out := stdout.String()
		if i := strings.Index(out, "serving JSON IPC on "); i >= 0 {
			rest := out[i+len("serving JSON IPC on "):]
			if j := strings.Index(rest, " "); j > 0 {
				return rest[:j], stdout
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited early with %d; stderr:\n%s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not report its socket; stdout:\n%s", stdout.String())
	return "", nil
}

func TestServeSocketFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "p.sock")
	socket, out := startServe(t, "--socket", path)
	if socket != path {
		t.Fatalf("serve reported %q, want %q", socket, path)
	}
	if !strings.Contains(out.String(), "procwire call --socket "+path) {
		t.Errorf("serve did not print how to try it:\n%s", out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("socket mode %o, want 0600 from the embedded default", mode)
	}
	code, stdout, stderr := runCLI("call", "--socket", path, "--compact", "/ipcserver/test/echo", `{"n":1.50}`)
	if code != 0 || strings.TrimSpace(stdout) != `{"n":1.50}` {
		t.Fatalf("call: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "procwire.conf")
	// A relative listen path is taken from the config file's directory.
	if err := os.WriteFile(cfg, []byte("ipc {\n  listen rel.sock;\n  socket_mode 0660;\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	socket, _ := startServe(t, "-c", cfg)
	if want := filepath.Join(dir, "rel.sock"); socket != want {
		t.Fatalf("serve listened on %q, want %q", socket, want)
	}
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o660 {
		t.Errorf("socket mode %o, want 0660 from the file", mode)
	}
	code, stdout, stderr := runCLI("stats", "--socket", socket, "--json")
	if code != 0 || !strings.Contains(stdout, `"requests"`) {
		t.Fatalf("stats: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("ipc {\n  socket_mode 999;\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad config names file:line", []string{"serve", "-c", bad}, 1, bad + ":2:"},
		{"missing config", []string{"serve", "-c", filepath.Join(dir, "none.conf")}, 1, "none.conf"},
		{"stray argument", []string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{"bad log level", []string{"serve", "--log-level", "loud"}, 2, "log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestServeRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.sock")
	startServe(t, "--socket", path)
	code, _, stderr := runCLI("serve", "--socket", path)
	if code != 1 || stderr == "" {
		t.Fatalf("second serve on a live socket: exit %d, stderr %q; want exit 1 and an error", code, stderr)
	}
	// The first server must still answer.
	if code, _, stderr := runCLI("call", "--socket", path, "/ipcserver/test/echo", "1"); code != 0 {
		t.Fatalf("first server stopped answering: %s", stderr)
	}
}

func TestBenchAgainstRunningServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.sock")
	startServe(t, "--socket", path)
	code, stdout, stderr := runCLI("bench", "--only", "jsonipc", "--socket", path, "--duration", "30ms", "--sizes", "100,1K", "--inflight", "2")
	if code != 0 {
		t.Fatalf("bench: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"round trip 100B", "round trip 1K", "pipelined echo 100B, 2 in flight"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("bench output lacks %q:\n%s", want, stdout)
		}
	}
	if code, _, stderr := runCLI("bench", "--sizes", "huge"); code != 2 || !strings.Contains(stderr, `"huge"`) {
		t.Errorf("bad --sizes: exit %d, stderr %q; want exit 2 naming the entry", code, stderr)
	}
}
