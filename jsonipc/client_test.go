package jsonipc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestClientCall(t *testing.T) {
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/sum", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			var in []int
			if err := r.Decode(&in); err != nil {
				return nil, err
			}
			sum := 0
			for _, v := range in {
				sum += v
			}
			return map[string]int{"sum": sum}, nil
		}))
		s.Handle("/coded", HandlerFunc(func(context.Context, *Request) (any, error) {
			return map[string]string{"code": "nope", "message": "in data"}, nil
		}))
		s.Handle("/ua", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			var m struct {
				UserAgent string `json:"userAgent"`
				PID       int    `json:"pid"`
			}
			json.Unmarshal(r.Message, &m)
			return m, nil
		}))
	})
	c := dialClient(t, path, &ClientConfig{UserAgent: "tester/1"})
	ctx := context.Background()

	var out struct{ Sum int }
	if err := c.Call(ctx, "/sum", []int{1, 2, 3}, &out); err != nil || out.Sum != 6 {
		t.Fatalf("sum: %v %v", out, err)
	}
	raw, err := c.CallRaw(ctx, "/ipcserver/test/echo", json.RawMessage(`{"b":1,"a":[1.0,"\/"]}`))
	if err != nil || string(raw) != `{"b":1,"a":[1.0,"\/"]}` {
		t.Fatalf("CallRaw: %s %v", raw, err)
	}
	if raw, err := c.CallRaw(ctx, "/ipcserver/test/echo", nil); err != nil || raw != nil {
		t.Fatalf("CallRaw without data: %q %v", raw, err)
	}
	if _, err := c.CallRaw(ctx, "/ipcserver/test/echo", json.RawMessage(`{"a":`)); err == nil {
		t.Fatal("CallRaw with invalid JSON must fail before sending")
	}
	var ua struct {
		UserAgent string `json:"userAgent"`
		PID       int    `json:"pid"`
	}
	if err := c.Call(ctx, "/ua", nil, &ua); err != nil || ua.UserAgent != "tester/1" || ua.PID != os.Getpid() {
		t.Fatalf("userAgent/pid: %+v %v", ua, err)
	}

	// no_handler_found is data unless CodeToErr is set, as in pixl-ipc.
	var nh map[string]string
	if err := c.Call(ctx, "/missing", nil, &nh); err != nil || nh["code"] != CodeNoHandler {
		t.Fatalf("no handler without CodeToErr: %v %v", nh, err)
	}
	c2 := dialClient(t, path, &ClientConfig{CodeToErr: true})
	var re *RemoteError
	if err := c2.Call(ctx, "/missing", nil, nil); !errors.As(err, &re) || re.Code != CodeNoHandler || re.Message != "No handler found for /missing" {
		t.Fatalf("no handler with CodeToErr: %v", err)
	}
	if err := c2.Call(ctx, "/coded", nil, nil); !errors.As(err, &re) || re.Code != "nope" || re.Message != "in data" {
		t.Fatalf("data code with CodeToErr: %v", err)
	}
	if err := c.Call(ctx, "", nil, nil); !errors.As(err, &re) || re.Code != CodeNoURI {
		t.Fatalf("empty uri: %v", err)
	}
	if err := c.Call(ctx, "/sum", "not a list", nil); !errors.As(err, &re) || re.Code != CodeHandlerError {
		t.Fatalf("handler error: %v", err)
	}
	if err := c.Call(ctx, "/sum", make(chan int), nil); err == nil || !strings.Contains(err.Error(), "encoding request data") {
		t.Fatalf("unencodable input: %v", err)
	}
}

func TestClientTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/hang", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return "late", nil
		}))
	})
	defer close(release)
	c := dialClient(t, path, &ClientConfig{RequestTimeout: 50 * time.Millisecond})
	if err := c.Call(context.Background(), "/hang", nil, nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Call(ctx, "/hang", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// The connection still works after abandoned calls.
	if err := c.Call(context.Background(), "/ipcserver/test/echo", 1, nil); err != nil {
		t.Fatal(err)
	}
}

// When the server goes away, calls in flight fail at once instead of
// waiting for their timeout (pixl-ipc's Node client hangs forever).
func TestClientPendingFailOnServerClose(t *testing.T) {
	path := sockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		bufio.NewReader(nc).ReadString('\n') // read the request, never answer
		nc.Close()
	}()
	c := dialClient(t, path, &ClientConfig{RequestTimeout: time.Minute})
	err = c.Call(context.Background(), "/x", nil, nil)
	if !errors.Is(err, ErrDisconnected) || errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrDisconnected, got %v", err)
	}
	if err := c.Call(context.Background(), "/x", nil, nil); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("call on a dead connection: got %v", err)
	}
}

func TestClientClose(t *testing.T) {
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/hang", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			<-ctx.Done()
			return nil, nil
		}))
	})
	c, err := Dial(context.Background(), path, &ClientConfig{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() { errc <- c.Call(context.Background(), "/hang", nil, nil) }()
	time.Sleep(20 * time.Millisecond) // let the call get in flight; either way it must fail with ErrClosed
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending call after Close: %v", err)
	}
	if err := c.Call(context.Background(), "/ipcserver/test/echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	c.Close() // idempotent
}

func TestClientDialError(t *testing.T) {
	_, err := Dial(context.Background(), sockPath(t), nil)
	if err == nil || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("dial to nothing: %v", err)
	}
}

func TestClientReconnect(t *testing.T) {
	path := sockPath(t)
	start := func() (context.CancelFunc, chan error) {
		s := NewServer(&Config{Logger: quietLogger()})
		if err := s.Listen(path); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		return cancel, done
	}
	stop1, done1 := start()
	c := dialClient(t, path, &ClientConfig{AutoReconnect: true, RequestTimeout: 20 * time.Second})
	if err := c.Call(context.Background(), "/ipcserver/test/echo", 1, nil); err != nil {
		t.Fatal(err)
	}
	stop1()
	if err := <-done1; err != nil {
		t.Fatal(err)
	}
	// The server is gone; a call now waits for the reconnect.
	var wg sync.WaitGroup
	wg.Add(1)
	var callErr error
	var got int
	go func() {
		defer wg.Done()
		callErr = c.Call(context.Background(), "/ipcserver/test/echo", 2, &got)
	}()
	stop2, done2 := start()
	wg.Wait()
	if callErr != nil || got != 2 {
		t.Fatalf("call across restart: %d %v", got, callErr)
	}
	c.Close()
	stop2()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
}

// A server that stops reading cannot hold a caller past its timeout
// inside a blocked write.
func TestClientWriteTimeout(t *testing.T) {
	path := sockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc // never read from it
		}
	}()
	c := dialClient(t, path, &ClientConfig{RequestTimeout: 100 * time.Millisecond})
	defer func() { (<-accepted).Close() }()
	big := json.RawMessage(`"` + strings.Repeat("x", 16<<20) + `"`)
	_, err = c.CallRaw(context.Background(), "/x", big)
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrDisconnected) {
		t.Fatalf("want ErrTimeout or ErrDisconnected, got %v", err)
	}
}

// A server killed with SIGKILL: the pending call fails at once, the
// stale socket file does not stop a new server, and an AutoReconnect
// client carries on with it.
func TestServerKilled(t *testing.T) {
	path := sockPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", childRoleEnv+"=server", "JSONIPC_TEST_SOCKET="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		t.Fatalf("child server: %q", line)
	}
	c := dialClient(t, path, &ClientConfig{AutoReconnect: true, RequestTimeout: 20 * time.Second})
	pending := make(chan error, 1)
	go func() { pending <- c.Call(context.Background(), "/test/wait", nil, nil) }()
	time.Sleep(20 * time.Millisecond) // let the call reach the server; the outcome is the same either way
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := <-pending; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("pending call: want ErrDisconnected, got %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a killed server leaves its socket file: %v", err)
	}
	s := NewServer(&Config{Logger: quietLogger()})
	if err := s.Listen(path); err != nil {
		t.Fatalf("new server on the stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	var got int
	if err := c.Call(context.Background(), "/ipcserver/test/echo", 7, &got); err != nil || got != 7 {
		t.Fatalf("after reconnect: %d %v", got, err)
	}
	c.Close()
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// Many clients at once, each with calls in flight, all answered right.
func TestManyClients(t *testing.T) {
	s, path := startServer(t, nil, nil)
	const clients, calls = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients*calls)
	for i := range clients {
		c := dialClient(t, path, nil)
		for j := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprintf("c%d-%d", i, j)
				var got string
				if err := c.Call(context.Background(), "/ipcserver/test/echo", want, &got); err != nil || got != want {
					errs <- fmt.Errorf("%s: got %q, %v", want, got, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.MaxConnections != clients || st.Requests != clients*calls {
		t.Errorf("stats: %+v", st)
	}
}

// A response over the client's MaxMessageSize fails its own call at once
// (the id leads the response), and the connection stays usable.
func TestClientResponseTooLarge(t *testing.T) {
	_, path := startServer(t, nil, nil)
	c := dialClient(t, path, &ClientConfig{MaxMessageSize: 1000, RequestTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.CallRaw(ctx, "/ipcserver/test/echo", json.RawMessage(`"`+strings.Repeat("x", 5000)+`"`))
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeMessageTooLarge {
		t.Fatalf("oversized response: got %v, want a RemoteError %q", err, CodeMessageTooLarge)
	}
	if raw, err := c.CallRaw(ctx, "/ipcserver/test/echo", json.RawMessage(`"fits"`)); err != nil || string(raw) != `"fits"` {
		t.Fatalf("after the oversized response: %s %v", raw, err)
	}
}
