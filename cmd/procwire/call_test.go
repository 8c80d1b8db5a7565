package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procwire/procwire/jsonipc"
)

// startIPC serves a jsonipc server on a fresh socket for one test.
func startIPC(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "procwire-cli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	s := jsonipc.NewServer(&jsonipc.Config{Logger: discardLogger()})
	s.Handle("/fail", jsonipc.HandlerFunc(func(context.Context, *jsonipc.Request) (any, error) {
		return nil, &jsonipc.RemoteError{Code: "nope", Message: "not today"}
	}))
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

// runCLI runs the binary's entry point in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCall(t *testing.T) {
	path := startIPC(t)
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		out     string
		errPart string
	}{
		{"pretty", []string{"call", "--socket", path, "/ipcserver/test/echo", `{"b": 1, "a": [1, 2]}`}, 0,
			"{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2\n  ]\n}\n", ""},
		{"compact", []string{"call", "--socket", path, "--compact", "/ipcserver/test/echo", `{"b": 1, "a": [1, 2]}`}, 0,
			"{\"b\":1,\"a\":[1,2]}\n", ""},
		{"no data", []string{"call", "--socket", path, "/ipcserver/test/echo"}, 0, "", ""},
		{"remote error", []string{"call", "--socket", path, "/fail"}, 1, "", "procwire call: server answered nope: not today"},
		{"no handler", []string{"call", "--socket", path, "/nothing/here"}, 1, "", "server answered no_handler_found: No handler found for /nothing/here"},
		{"bad json", []string{"call", "--socket", path, "/x", `{"a":`}, 2, "", "not valid JSON"},
		{"no uri", []string{"call", "--socket", path}, 2, "", "want a URI"},
		{"help", []string{"call", "--help"}, 0, "", "Usage: procwire call"},
		{"no server", []string{"call", "--socket", path + ".missing", "/x"}, 1, "",
			"no procwire server at " + path + ".missing: no such socket (is `procwire serve` running?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(tc.args...)
			if code != tc.code || out != tc.out || !strings.Contains(errs, tc.errPart) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
					code, out, errs, tc.code, tc.out, tc.errPart)
			}
		})
	}
}

func TestCallRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	code, _, errs := runCLI("call", "--socket", path, "/x")
	want := "no procwire server at " + path + ": connection refused (is `procwire serve` running?)"
	if code != 1 || !strings.Contains(errs, want) {
		t.Fatalf("exit %d, stderr %q; want %q", code, errs, want)
	}
}

func TestDefaultSocket(t *testing.T) {
	t.Setenv("PROCWIRE_SOCKET", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/42")
	if got := defaultSocket(); got != "/run/user/42/procwire/procwire.sock" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "relative")
	if got, want := defaultSocket(), filepath.Join("/tmp", "procwire-"+itoa(os.Getuid()), "procwire.sock"); got != want {
		t.Errorf("without XDG_RUNTIME_DIR: %s, want %s", got, want)
	}
	t.Setenv("PROCWIRE_SOCKET", "/x/y.sock")
	if got := defaultSocket(); got != "/x/y.sock" {
		t.Errorf("with PROCWIRE_SOCKET: %s", got)
	}
}
