package jsonipc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// childRoleEnv selects a child-process role when the test binary is
// re-run by a test (see TestMain).
const childRoleEnv = "JSONIPC_TEST_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role, os.Getenv("JSONIPC_TEST_SOCKET")))
	}
	os.Exit(m.Run())
}

// quietLogger keeps expected warnings out of test output.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// sockPath returns a fresh socket path; Unix socket paths must stay
// under 108 bytes, so it avoids t.TempDir's long names.
func sockPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jsonipc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// startServer runs a server on a fresh socket until the test ends, and
// then checks that shutting it down left no goroutines behind.
func startServer(t testing.TB, cfg *Config, setup func(*Server)) (*Server, string) {
	t.Helper()
	before := runtime.NumGoroutine()
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s := NewServer(cfg)
	if setup != nil {
		setup(s)
	}
	path := sockPath(t)
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("server did not shut down")
		}
		checkGoroutines(t, before)
	})
	return s, path
}

// checkGoroutines fails if more goroutines run than before, after
// giving exiting ones a moment.
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	var n int
	for i := 0; i < 200; i++ {
		n = runtime.NumGoroutine()
		if n <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	buf = buf[:runtime.Stack(buf, true)]
	t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
}

// rawConn is a test client speaking bytes, to check the wire exactly.
type rawConn struct {
	t  testing.TB
	nc *net.UnixConn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, path string) *rawConn {
	t.Helper()
	nc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReaderSize(nc, 1<<16)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// line reads one response line, without its '\n'.
func (c *rawConn) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading response: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// roundTrip sends one line and reads one response.
func (c *rawConn) roundTrip(req string) string {
	c.t.Helper()
	c.send(req + "\n")
	return c.line()
}

// expectEOF reads until the server ends the stream and fails on a reset.
func (c *rawConn) expectEOF() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	rest, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("want clean EOF, got %v (after %q)", err, rest)
	}
	if len(rest) > 0 {
		c.t.Fatalf("unexpected data before EOF: %q", rest)
	}
}

func dialClient(t testing.TB, path string, cfg *ClientConfig) *Client {
	t.Helper()
	if cfg == nil {
		cfg = &ClientConfig{}
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	c, err := Dial(context.Background(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runChild is the body of a child process; its stdout is checked by the
// parent test.
func runChild(role, path string) int {
	switch role {
	case "whoami":
		// Ask the server who we are; the parent compares with our pid.
		c, err := Dial(context.Background(), path, nil)
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		defer c.Close()
		var p Peer
		if err := c.Call(context.Background(), "/test/whoami", nil, &p); err != nil {
			fmt.Println("call:", err)
			return 1
		}
		fmt.Printf("pid=%d peer=%d\n", os.Getpid(), p.PID)
		return 0
	case "blocking":
		// A blocking client in the manner of PHP's: one request, then
		// wait for the reply and for the end of stream.
		nc, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(nc, `{"uri":"/test/block","ipcReqID":"rq0","data":[]}`)
		fmt.Fprintf(nc, "\n") // PHP writes the newline separately
		r := bufio.NewReader(nc)
		line, err := r.ReadString('\n')
		if err != nil {
			fmt.Println("read reply:", err)
			return 1
		}
		fmt.Print("reply ", line)
		rest, err := io.ReadAll(r)
		if err != nil {
			fmt.Println("read EOF:", err)
			return 1
		}
		fmt.Printf("clean EOF after %d bytes\n", len(rest))
		return 0
	case "server":
		// Serve until killed; /test/wait never answers.
		s := NewServer(&Config{Logger: quietLogger()})
		s.Handle("/test/wait", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			<-ctx.Done()
			return nil, nil
		}))
		if err := s.Listen(path); err != nil {
			fmt.Println("listen:", err)
			return 1
		}
		fmt.Println("listening")
		s.Serve(context.Background())
		return 1
	case "hang":
		// Send a request and wait to be killed.
		nc, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		fmt.Fprintf(nc, `{"uri":"/test/wait","ipcReqID":"rq0"}`+"\n")
		time.Sleep(time.Minute)
		return 1
	}
	fmt.Println("unknown child role", role)
	return 2
}
