package jsonipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFraming(t *testing.T) {
	_, path := startServer(t, nil, nil)
	c := dialRaw(t, path)

	t.Run("byte by byte", func(t *testing.T) {
		req := `{"ipcReqID":"a","uri":"/ipcserver/test/echo","data":{"é":"日本"}}` + "\n"
		for i := 0; i < len(req); i++ {
			c.send(req[i : i+1])
		}
		if got, want := c.line(), `{"ipcReqID":"a","data":{"é":"日本"}}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("many per write, CRLF, blank lines, leading space", func(t *testing.T) {
		c.send("\n\r\n   \n" +
			`{"ipcReqID":1,"uri":"/ipcserver/test/echo","data":1}` + "\r\n" +
			"  \t" + `{"ipcReqID":2,"uri":"/ipcserver/test/echo","data":2}` + "\n\n" +
			`{"ipcReqID":3,"uri":"/ipcserver/test/echo","data":3}` + "\n")
		for i := 1; i <= 3; i++ {
			if got, want := c.line(), fmt.Sprintf(`{"ipcReqID":%d,"data":%d}`, i, i); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		}
	})
	t.Run("numbers and escapes keep their text", func(t *testing.T) {
		data := `{"big":12345678901234567890,"f":1.0,"e":1e400,"neg0":-0,"exp":1E2,"s":"a\/b\u00e9\ud800","dup":1,"dup":2,"2":3,"1":4}`
		got := c.roundTrip(`{"ipcReqID":"n","uri":"/ipcserver/test/echo","data":` + data + `}`)
		if want := `{"ipcReqID":"n","data":` + data + `}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("8 MB payload", func(t *testing.T) {
		big := `"` + strings.Repeat("0123456789abcdé", 8<<20/16) + `"`
		go c.send(`{"ipcReqID":"big","uri":"/ipcserver/test/echo","data":` + big + "}\n")
		if got := c.line(); got != `{"ipcReqID":"big","data":`+big+`}` {
			t.Fatalf("8 MB echo differs (len %d)", len(got))
		}
	})
	t.Run("echo without data has no data key", func(t *testing.T) {
		if got, want := c.roundTrip(`{"ipcReqID":"x","uri":"/ipcserver/test/echo/more?q=1"}`), `{"ipcReqID":"x"}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		if got, want := c.roundTrip(`{"ipcReqID":"x","uri":"/ipcserver/test/echo","data":null}`), `{"ipcReqID":"x","data":null}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("unterminated last line is dropped", func(t *testing.T) {
		c2 := dialRaw(t, path)
		c2.send(`{"ipcReqID":"1","uri":"/ipcserver/test/echo"}`)
		c2.nc.CloseWrite()
		c2.expectEOF()
	})
}

func TestIDPreservation(t *testing.T) {
	_, path := startServer(t, nil, nil)
	c := dialRaw(t, path)
	for _, tc := range []struct{ id, want string }{
		{`"rq1"`, `"rq1"`},
		{`42`, `42`},
		{`1.50`, `1.50`},
		{`12345678901234567890`, `12345678901234567890`},
		{`-7e3`, `-7e3`},
		{`{"a":[1,2]}`, `{"a":[1,2]}`},
		{`[0]`, `[0]`},
		{`true`, `true`},
		{`"\u0000"`, `"\u0000"`},
		{`0`, `null`},
		{`-0.0e5`, `null`},
		{`""`, `null`},
		{`false`, `null`},
		{`null`, `null`},
	} {
		got := c.roundTrip(`{"ipcReqID":` + tc.id + `,"uri":"/ipcserver/test/echo","data":1}`)
		if want := `{"ipcReqID":` + tc.want + `,"data":1}`; got != want {
			t.Errorf("id %s: got %s, want %s", tc.id, got, want)
		}
	}
	if got, want := c.roundTrip(`{"uri":"/ipcserver/test/echo","data":1}`), `{"ipcReqID":null,"data":1}`; got != want {
		t.Errorf("missing id: got %s, want %s", got, want)
	}
}

func TestErrorShapes(t *testing.T) {
	_, path := startServer(t, &Config{MaxMessageSize: 1000}, func(s *Server) {
		s.Handle("/fail", HandlerFunc(func(context.Context, *Request) (any, error) {
			return nil, errors.New("disk on fire")
		}))
		s.Handle("/coded", HandlerFunc(func(context.Context, *Request) (any, error) {
			return nil, &RemoteError{Code: "not_found", Message: `no "x"`}
		}))
		s.Handle("/panic", HandlerFunc(func(context.Context, *Request) (any, error) {
			panic("boom")
		}))
		s.Handle("/badraw", HandlerFunc(func(context.Context, *Request) (any, error) {
			return json.RawMessage(`{"a":`), nil
		}))
		s.Handle("/multiline", HandlerFunc(func(context.Context, *Request) (any, error) {
			return json.RawMessage("{\n\"a\": 1\n}"), nil
		}))
		s.Handle("/passthrough", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			return r.Data, nil
		}))
		s.Handle("/unencodable", HandlerFunc(func(context.Context, *Request) (any, error) {
			return make(chan int), nil
		}))
	})
	c := dialRaw(t, path)
	const noURI = `"code":"no_uri","message":"Missing required uri parameter from request"}`
	for _, tc := range []struct{ req, want string }{
		{`{"ipcReqID":"a"}`, `{"ipcReqID":"a",` + noURI},
		{`{"ipcReqID":"a","uri":null}`, `{"ipcReqID":"a",` + noURI},
		{`{"ipcReqID":"a","uri":""}`, `{"ipcReqID":"a",` + noURI},
		{`{"ipcReqID":"a","uri":0}`, `{"ipcReqID":"a",` + noURI},
		{`{"ipcReqID":"a","uri":false}`, `{"ipcReqID":"a",` + noURI},
		{`{"ipcReqID":"b","uri":"/nope"}`, `{"ipcReqID":"b","data":{"code":"no_handler_found","message":"No handler found for /nope"}}`},
		{`{"ipcReqID":"b","uri":123}`, `{"ipcReqID":"b","data":{"code":"no_handler_found","message":"No handler found for 123"}}`},
		{`{"ipcReqID":"b","uri":"\/n\u00e9"}`, `{"ipcReqID":"b","data":{"code":"no_handler_found","message":"No handler found for /né"}}`},
		{`{"ipcReqID":"b","uri":"\\/x"}`, `{"ipcReqID":"b","data":{"code":"no_handler_found","message":"No handler found for \\/x"}}`},
		{`{"ipcReqID":"b","uri":"\/x"}`, `{"ipcReqID":"b","data":{"code":"no_handler_found","message":"No handler found for /x"}}`},
		{`{"ipcReqID":"c","uri":"/fail"}`, `{"ipcReqID":"c","code":"handler_error","message":"disk on fire"}`},
		{`{"ipcReqID":"c","uri":"/coded"}`, `{"ipcReqID":"c","code":"not_found","message":"no \"x\""}`},
		{`{"ipcReqID":"c","uri":"/panic"}`, `{"ipcReqID":"c","code":"handler_error","message":"handler panicked: boom"}`},
		{`{"ipcReqID":"c","uri":"/badraw"}`, `{"ipcReqID":"c","code":"handler_error","message":"encoding response: handler returned invalid JSON in json.RawMessage"}`},
		{`{"ipcReqID":"c","uri":"/multiline"}`, `{"ipcReqID":"c","data":{"a":1}}`},
		{`{"ipcReqID":"c","uri":"/passthrough"}`, `{"ipcReqID":"c"}`},
		{`{"ipcReqID":"c","uri":"/passthrough","data":[1, 2]}`, `{"ipcReqID":"c","data":[1, 2]}`},
		{`{"ipcReqID":"c","uri":"/unencodable"}`, `{"ipcReqID":"c","code":"handler_error","message":"encoding response: json: unsupported type: chan int"}`},
		{`{"ipcReqID":"d","uri":"/x"`, `{"ipcReqID":null,"code":"bad_request","message":"invalid JSON at byte 26: unexpected end of message in object"}`},
		{`{"a":1} xyz`, `{"ipcReqID":null,"code":"bad_request","message":"invalid JSON at byte 8: unexpected data after top-level object"}`},
		{`{"a":1}{"b":2}`, `{"ipcReqID":null,"code":"bad_request","message":"invalid JSON at byte 7: unexpected data after top-level object"}`},
		{`[1,2]`, `{"ipcReqID":null,"code":"bad_request","message":"message is not a JSON object"}`},
		{`"str"`, `{"ipcReqID":null,"code":"bad_request","message":"message is not a JSON object"}`},
		{`hello`, `{"ipcReqID":null,"code":"bad_request","message":"invalid JSON at byte 0: invalid character 'h' looking for a value"}`},
		{"\xef\xbb\xbf{}", `{"ipcReqID":null,"code":"bad_request","message":"invalid JSON at byte 0: invalid character 'ï' looking for a value"}`},
		{`{"uri":"` + strings.Repeat("x", 2000) + `"}`, `{"ipcReqID":null,"code":"message_too_large","message":"message exceeds max_message_size (1000 bytes); skipped"}`},
		// An id before the oversized part is answered, so the caller fails at once.
		{`{"ipcReqID":"big","uri":"/ipcserver/test/echo","data":"` + strings.Repeat("x", 2000) + `"}`, `{"ipcReqID":"big","code":"message_too_large","message":"message exceeds max_message_size (1000 bytes); skipped"}`},
		{`{"uri":"/ipcserver/test/echo","ipcReqID":7,"data":"` + strings.Repeat("x", 2000) + `"}`, `{"ipcReqID":7,"code":"message_too_large","message":"message exceeds max_message_size (1000 bytes); skipped"}`},
		// The connection is still usable after all of the above.
		{`{"ipcReqID":"e","uri":"/ipcserver/test/echo","data":"ok"}`, `{"ipcReqID":"e","data":"ok"}`},
	} {
		if got := c.roundTrip(tc.req); got != tc.want {
			t.Errorf("request %.60s\n got %s\nwant %s", tc.req, got, tc.want)
		}
	}
}

func TestDelayBuiltin(t *testing.T) {
	_, path := startServer(t, nil, nil)
	c := dialRaw(t, path)
	for _, tc := range []struct{ req, want string }{
		{`{"ipcReqID":1,"uri":"/ipcserver/test/delay"}`, `{"ipcReqID":1,"data":{"delay":0}}`},
		{`{"ipcReqID":1,"uri":"/ipcserver/test/delay","data":null}`, `{"ipcReqID":1,"data":{"delay":0}}`},
		{`{"ipcReqID":1,"uri":"/ipcserver/test/delay","data":"str"}`, `{"ipcReqID":1,"data":{"delay":0}}`},
		{`{"ipcReqID":1,"uri":"/ipcserver/test/delay","data":{"delay":0}}`, `{"ipcReqID":1,"data":{"delay":0}}`},
		{`{"ipcReqID":1,"uri":"/ipcserver/test/delay","data":{"delay":5}}`, `{"ipcReqID":1,"data":{"delay":5}}`},
		{`{"ipcReqID":1,"uri":"/ipcserver/test/delayed","data":{"delay":"20"}}`, `{"ipcReqID":1,"data":{"delay":"20"}}`},
		{`{"ipcReqID":1,"uri":"/ipcserver/test/delay","data":{"delay":1.5}}`, `{"ipcReqID":1,"data":{"delay":1.5}}`},
	} {
		if got := c.roundTrip(tc.req); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.req, got, tc.want)
		}
	}
}

func TestRouting(t *testing.T) {
	name := func(n string) Handler {
		return HandlerFunc(func(context.Context, *Request) (any, error) { return n, nil })
	}
	s, path := startServer(t, nil, func(s *Server) {
		for _, h := range []struct{ pat, name string }{
			{"/a/.*", "wide"},
			{"/a/b", "narrow"}, // never reached: registered after wide
			{"/api/v1.0", "dot"},
			{"/ipcserver/test/echo", "shadowed"}, // built-ins come first
		} {
			if err := s.Handle(h.pat, name(h.name)); err != nil {
				t.Fatal(err)
			}
		}
		s.HandleRegexp(regexp.MustCompile(`/loose`), name("loose"))
	})
	if err := s.Handle("/bad(", name("x")); err == nil || !strings.Contains(err.Error(), `bad uri pattern "/bad("`) {
		t.Errorf("bad pattern: got %v", err)
	}
	c := dialRaw(t, path)
	for _, tc := range []struct{ uri, want string }{
		{"/a/b", `"wide"`},
		{"/a/", `"wide"`},
		{"/a", "nohandler"},
		{"x/a/b", "nohandler"},
		{"/api/v1.0", `"dot"`},
		{"/api/v1x0", `"dot"`}, // the pattern is a regexp, as in pixl-ipc
		{"/api/v1.0/more", "nohandler"},
		{"/ipcserver/test/echo", "echo"},
		{"/ipcserver/test/echoXYZ", "echo"},
		{"/IPCSERVER/TEST/ECHO", "nohandler"},
		{"/prefix/loose/suffix", `"loose"`},
	} {
		got := c.roundTrip(`{"ipcReqID":1,"uri":"` + tc.uri + `","data":"echo"}`)
		want := `{"ipcReqID":1,"data":` + tc.want + `}`
		switch tc.want {
		case "nohandler":
			want = `{"ipcReqID":1,"data":{"code":"no_handler_found","message":"No handler found for ` + tc.uri + `"}}`
		case "echo":
			want = `{"ipcReqID":1,"data":"echo"}`
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", tc.uri, got, want)
		}
	}
}

// Inline handlers answer in request order, interleaved correctly with
// goroutine handlers, and get the same Request contents.
func TestHandleInline(t *testing.T) {
	_, path := startServer(t, nil, func(s *Server) {
		if err := s.HandleInline("/inline/(.*)", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			return r.URI + " " + string(r.Data) + " " + string(r.ID), nil
		})); err != nil {
			t.Fatal(err)
		}
		if err := s.HandleInline("/bad(", nil); err == nil {
			t.Error("bad inline pattern accepted")
		}
	})
	c := dialRaw(t, path)
	var sb strings.Builder
	for i := range 50 {
		fmt.Fprintf(&sb, `{"ipcReqID":%d,"uri":"/inline/%d","data":[%d]}`+"\n", i+1, i, i)
	}
	c.send(sb.String())
	for i := range 50 {
		want := fmt.Sprintf(`{"ipcReqID":%d,"data":"/inline/%d [%d] %d"}`, i+1, i, i, i+1)
		if got := c.line(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

// Responses go out in completion order: a fast request is not stuck
// behind a slow one on the same connection.
// A client that shuts its sending side still gets the answers to what it
// sent, from handlers that were not cancelled for it.
func TestClientHalfClose(t *testing.T) {
	release := make(chan struct{})
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/wait", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			select {
			case <-release:
				return "done", nil
			case <-ctx.Done():
				return "cancelled", nil
			}
		}))
	})
	c := dialRaw(t, path)
	c.send(`{"ipcReqID":1,"uri":"/wait"}` + "\n" + `{"ipcReqID":2,"uri":"/ipcserver/test/echo","data":2}` + "\n")
	if got := c.line(); got != `{"ipcReqID":2,"data":2}` {
		t.Fatalf("got %s", got)
	}
	c.nc.CloseWrite()
	time.Sleep(20 * time.Millisecond) // let the server see the end of stream first
	close(release)
	if got := c.line(); got != `{"ipcReqID":1,"data":"done"}` {
		t.Fatalf("got %s", got)
	}
	c.expectEOF()
}

func TestCompletionOrder(t *testing.T) {
	release := make(chan struct{})
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/slow", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			<-release
			return "slow", nil
		}))
	})
	c := dialRaw(t, path)
	c.send(`{"ipcReqID":1,"uri":"/slow"}` + "\n" + `{"ipcReqID":2,"uri":"/ipcserver/test/echo","data":"fast"}` + "\n")
	if got := c.line(); got != `{"ipcReqID":2,"data":"fast"}` {
		t.Fatalf("first response: %s", got)
	}
	close(release)
	if got := c.line(); got != `{"ipcReqID":1,"data":"slow"}` {
		t.Fatalf("second response: %s", got)
	}
}

func TestRequestFields(t *testing.T) {
	got := make(chan *Request, 1)
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/f", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			var v struct{ N int }
			if err := r.Decode(&v); err != nil {
				return nil, err
			}
			cp := *r
			cp.Message = append(json.RawMessage(nil), r.Message...)
			got <- &cp
			return v.N * 2, nil
		}))
	})
	c := dialRaw(t, path)
	line := `{"ipcReqID":"q","uri":"/f","data":{"N":21},"pid":1,"userAgent":"ua"}`
	if resp := c.roundTrip(line); resp != `{"ipcReqID":"q","data":42}` {
		t.Fatalf("response %s", resp)
	}
	r := <-got
	if string(r.ID) != `"q"` || r.URI != "/f" || string(r.Data) != `{"N":21}` || string(r.Message) != line {
		t.Errorf("request fields: %+v", r)
	}
	if r.Peer.PID != int32(os.Getpid()) || r.Peer.UID != uint32(os.Getuid()) || r.Peer.GID != uint32(os.Getgid()) {
		t.Errorf("peer %v, want our own pid/uid/gid", r.Peer)
	}
	if resp := c.roundTrip(`{"ipcReqID":"q","uri":"/f","data":"x"}`); !strings.Contains(resp, `"code":"handler_error","message":"jsonipc: decoding data of /f: json: cannot unmarshal string`) {
		t.Errorf("decode error response: %s", resp)
	}
}

// The server learns the pid of another process from the kernel, not
// from what the client claims.
func TestPeerCredChildProcess(t *testing.T) {
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/test/whoami", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			return r.Peer, nil
		}))
	})
	out := runChildProcess(t, "whoami", path)
	var pid, peer int
	if _, err := fmt.Sscanf(out, "pid=%d peer=%d", &pid, &peer); err != nil {
		t.Fatalf("child said %q", out)
	}
	if pid == os.Getpid() || pid != peer {
		t.Fatalf("child pid %d, server saw %d", pid, peer)
	}
}

func runChildProcess(t *testing.T, role, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", childRoleEnv+"="+role, "JSONIPC_TEST_SOCKET="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", role, err, out)
	}
	return string(out)
}

func TestConcurrency(t *testing.T) {
	_, path := startServer(t, nil, nil)
	c := dialClient(t, path, nil)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%10 == 0 {
				var out struct{ Delay int }
				if err := c.Call(context.Background(), "/ipcserver/test/delay", map[string]int{"delay": 20}, &out); err != nil || out.Delay != 20 {
					errs <- fmt.Errorf("delay %d: %v %v", i, out, err)
				}
				return
			}
			var out int
			if err := c.Call(context.Background(), "/ipcserver/test/echo", i, &out); err != nil || out != i {
				errs <- fmt.Errorf("echo %d: got %d, %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStaleAndLiveSocket(t *testing.T) {
	path := sockPath(t)
	// A socket file left by a dead server.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("stale socket not left behind:", err)
	}
	s := NewServer(&Config{Logger: quietLogger()})
	if err := s.Listen(path); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()

	// A live server keeps its socket.
	s2 := NewServer(&Config{Logger: quietLogger()})
	if err := s2.Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second server on a live socket: got %v, want ErrInUse", err)
	}
	rc := dialRaw(t, path)
	if got := rc.roundTrip(`{"ipcReqID":1,"uri":"/ipcserver/test/echo","data":1}`); got != `{"ipcReqID":1,"data":1}` {
		t.Fatalf("first server disturbed: %s", got)
	}
	rc.nc.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file not removed at shutdown: %v", err)
	}

	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := NewServer(nil).Listen(path); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("regular file: got %v", err)
	}
}

func TestSocketMode(t *testing.T) {
	for _, tc := range []struct {
		mode, want os.FileMode
	}{{0, 0o600}, {0o660, 0o660}} {
		s, path := startServer(t, &Config{SocketMode: tc.mode}, nil)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tc.want || fi.Mode().Type() != os.ModeSocket {
			t.Errorf("SocketMode %#o: file mode %v, want %#o", tc.mode, fi.Mode(), tc.want)
		}
		if s.Addr() != path {
			t.Errorf("Addr %q, want %q", s.Addr(), path)
		}
	}
}

func TestAllowLists(t *testing.T) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for _, tc := range []struct {
		name     string
		uids     []uint32
		gids     []uint32
		admitted bool
	}{
		{"uid listed", []uint32{uid}, nil, true},
		{"gid listed", nil, []uint32{54321, gid}, true},
		{"uid not listed", []uint32{uid + 12345}, nil, false},
		{"gid not listed", nil, []uint32{gid + 12345}, false},
		{"uid ok gid not", []uint32{uid}, []uint32{gid + 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := startServer(t, &Config{AllowUID: tc.uids, AllowGID: tc.gids}, nil)
			c := dialRaw(t, path)
			if tc.admitted {
				if got := c.roundTrip(`{"ipcReqID":1,"uri":"/ipcserver/test/echo","data":1}`); got != `{"ipcReqID":1,"data":1}` {
					t.Fatalf("got %s", got)
				}
				return
			}
			want := fmt.Sprintf(`{"ipcReqID":null,"code":"permission_denied","message":"uid %d gid %d may not connect"}`, uid, gid)
			if got := c.line(); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			c.expectEOF()
			if got := s.Stats().Errors[CodePermissionDenied]; got != 1 {
				t.Errorf("permission_denied count %d", got)
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	s, path := startServer(t, &Config{MaxConnections: 2}, nil)
	a, b := dialRaw(t, path), dialRaw(t, path)
	for _, c := range []*rawConn{a, b} {
		c.roundTrip(`{"uri":"/ipcserver/test/echo"}`) // accepted for sure
	}
	c := dialRaw(t, path)
	if got, want := c.line(), `{"ipcReqID":null,"code":"too_many_connections","message":"server has reached max_connections (2)"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	c.expectEOF()
	a.nc.Close()
	waitFor(t, func() bool { return s.Stats().Connections == 1 })
	if got := dialRaw(t, path).roundTrip(`{"ipcReqID":1,"uri":"/ipcserver/test/echo"}`); got != `{"ipcReqID":1}` {
		t.Fatalf("after a slot freed: %s", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	_, path := startServer(t, &Config{IdleTimeout: 50 * time.Millisecond}, nil)
	c := dialRaw(t, path)
	c.roundTrip(`{"uri":"/ipcserver/test/echo"}`)
	c.expectEOF()
}

// waitFor polls cond as a safety net against slow machines.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached in 10s")
}

func TestMaxMessageSizeBoundary(t *testing.T) {
	_, path := startServer(t, &Config{MaxMessageSize: 100}, nil)
	c := dialRaw(t, path)
	mk := func(n int) string {
		base := `{"ipcReqID":1,"uri":"/ipcserver/test/echo","data":""}`
		return base[:len(base)-2] + strings.Repeat("x", n-len(base)) + `"}`
	}
	if got := c.roundTrip(mk(100)); !strings.HasPrefix(got, `{"ipcReqID":1,"data":"xx`) {
		t.Fatalf("100-byte line: %s", got)
	}
	if got := c.roundTrip(mk(101)); !strings.HasPrefix(got, `{"ipcReqID":1,"code":"message_too_large"`) {
		t.Fatalf("101-byte line: %s", got)
	}
	// Cut off before its end is read, the id at its start is still found.
	c.send(`{"ipcReqID":"split","data":"` + strings.Repeat("z", 200))
	c.send(strings.Repeat("z", 200) + "\"}\n")
	if got := c.line(); !strings.HasPrefix(got, `{"ipcReqID":"split","code":"message_too_large"`) {
		t.Fatalf("split oversized line with an id: %s", got)
	}
	// Oversized lines arriving in pieces are skipped whole.
	c.send(strings.Repeat("y", 150))
	c.send(strings.Repeat("y", 150) + "\n" + mk(60) + "\n")
	if got := c.line(); !strings.Contains(got, "message_too_large") {
		t.Fatalf("split oversized line: %s", got)
	}
	if got := c.line(); !strings.HasPrefix(got, `{"ipcReqID":1,"data":"x`) {
		t.Fatalf("after oversized line: %s", got)
	}
}

func TestStatsAndPush(t *testing.T) {
	conns := make(chan *Conn, 1)
	s, path := startServer(t, &Config{SlowThreshold: time.Millisecond}, func(s *Server) {
		s.Handle("/subscribe", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			conns <- r.Conn()
			return "ok", r.Conn().Push(ctx, map[string]string{"event": "hello"})
		}))
	})
	msgs := make(chan string, 10)
	c := dialClient(t, path, &ClientConfig{OnMessage: func(m []byte) { msgs <- string(m) }})
	if err := c.Call(context.Background(), "/subscribe", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := <-msgs; got != `{"event":"hello"}` {
		t.Fatalf("push: %s", got)
	}
	conn := <-conns
	if n, err := s.Broadcast(context.Background(), map[string]int{"n": 1}); err != nil || n != 1 {
		t.Fatalf("broadcast: %d %v", n, err)
	}
	if got := <-msgs; got != `{"n":1}` {
		t.Fatalf("broadcast: %s", got)
	}
	if _, err := s.Broadcast(context.Background(), []int{1}); err == nil {
		t.Fatal("broadcast of a non-object must fail")
	}
	if err := c.Call(context.Background(), "/ipcserver/test/delay", map[string]int{"delay": 5}, nil); err != nil {
		t.Fatal(err)
	}
	c.Call(context.Background(), "/nothing", nil, nil)
	var st Stats
	if err := c.Call(context.Background(), "/ipcserver/stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Connections != 1 || st.Handlers != 4 || st.Requests != 4 || st.ClientOpen != 1 || st.MaxConnections != 1 ||
		st.SlowResponses < 1 || st.InFlight < 1 || st.BytesIn == 0 || st.BytesOut == 0 || st.Errors[CodeNoHandler] != 1 {
		t.Errorf("stats %+v", st)
	}

	// Once the client is gone, its Conn says so and refuses pushes.
	if conn.Peer().PID != int32(os.Getpid()) || conn.Context().Err() != nil {
		t.Fatalf("live conn: peer %v, ctx %v", conn.Peer(), conn.Context().Err())
	}
	c.Close()
	<-conn.Context().Done()
	waitFor(t, func() bool { return conn.Push(context.Background(), map[string]int{"late": 1}) != nil })
	if err := conn.Push(context.Background(), map[string]int{"late": 1}); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("push to a closed connection: %v", err)
	}
}

// A blocking client (PHP-like, in another process) waiting for a reply
// when the server shuts down gets the reply and then a clean EOF.
func TestGracefulShutdownBlockingClient(t *testing.T) {
	release := make(chan struct{})
	s := NewServer(&Config{Logger: quietLogger(), ExitTimeout: 20 * time.Second})
	s.Handle("/test/block", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		<-release
		return "done", nil
	}))
	path := sockPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.ListenAndServe(ctx, path) }()
	waitFor(t, func() bool { _, err := os.Stat(path); return err == nil })

	out := make(chan string, 1)
	go func() { out <- runChildProcess(t, "blocking", path) }()
	waitFor(t, func() bool { return s.Stats().InFlight == 1 })
	cancel() // like SIGTERM
	waitFor(t, func() bool { _, err := os.Stat(path); return os.IsNotExist(err) || s.isClosing() })
	close(release)
	if got, want := <-out, "reply {\"ipcReqID\":\"rq0\",\"data\":\"done\"}\nclean EOF after 0 bytes\n"; got != want {
		t.Fatalf("child said %q, want %q", got, want)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left behind: %v", err)
	}
}

// A client that never closes is cut at ExitTimeout, and handlers that
// never return see their context cancelled.
func TestShutdownExitTimeout(t *testing.T) {
	s, path := startServer(t, &Config{ExitTimeout: 100 * time.Millisecond}, func(s *Server) {
		s.Handle("/forever", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}))
	})
	c := dialRaw(t, path)
	c.send(`{"ipcReqID":1,"uri":"/forever"}` + "\n")
	waitFor(t, func() bool { return s.Stats().InFlight == 1 })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, err := c.nc.Read(buf)
	// Either the cancelled handler's reply made it or not; the
	// connection must be closed either way.
	for err == nil {
		_, err = c.nc.Read(buf[n:])
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open after ExitTimeout")
	}
}

// A connection with a request in flight is not idle: the idle timeout
// waits for the answer.
func TestIdleTimeoutWaitsForHandlers(t *testing.T) {
	release := make(chan struct{})
	_, path := startServer(t, &Config{IdleTimeout: 30 * time.Millisecond}, func(s *Server) {
		s.Handle("/slow", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			<-release
			return "late", nil
		}))
	})
	c := dialRaw(t, path)
	c.send(`{"ipcReqID":1,"uri":"/slow"}` + "\n")
	time.Sleep(100 * time.Millisecond) // several idle periods pass; no assertion on timing
	close(release)
	if got := c.line(); got != `{"ipcReqID":1,"data":"late"}` {
		t.Fatalf("got %s", got)
	}
	c.expectEOF()
}

// Many requests in one write, answered partly on the reader and partly
// by handler goroutines: every one is answered exactly once.
func TestPipelinedMixed(t *testing.T) {
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/user", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			return r.Data, nil
		}))
	})
	c := dialRaw(t, path)
	const n = 2000
	var sb strings.Builder
	for i := range n {
		uri := "/ipcserver/test/echo"
		if i%3 == 0 {
			uri = "/user"
		}
		fmt.Fprintf(&sb, `{"ipcReqID":%d,"uri":%q,"data":%d}`+"\n", i+1, uri, i+1)
	}
	go c.send(sb.String())
	seen := make(map[string]bool)
	for range n {
		line := c.line()
		var m struct {
			ID   json.RawMessage `json:"ipcReqID"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil || string(m.ID) != string(m.Data) || seen[string(m.ID)] {
			t.Fatalf("bad or repeated response %s", line)
		}
		seen[string(m.ID)] = true
	}
}

// lockedBuffer is an io.Writer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestStatsIntervalLog(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	_, path := startServer(t, &Config{StatsInterval: 10 * time.Millisecond, Logger: logger}, nil)
	dialRaw(t, path).roundTrip(`{"uri":"/ipcserver/test/echo"}`)
	waitFor(t, func() bool { return strings.Contains(logs.String(), `msg="jsonipc: stats" connections=1 requests=1`) })
}

// A client that sends without reading makes the server stop reading it
// (bounded memory) rather than queue responses without limit; once the
// client reads, everything is answered.
func TestBackpressure(t *testing.T) {
	s, path := startServer(t, nil, func(s *Server) {
		s.Handle("/user", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			return r.Data, nil
		}))
	})
	c := dialRaw(t, path)
	const n = 64
	data := `"` + strings.Repeat("z", 256<<10) + `"`
	sent := make(chan error, 1)
	go func() {
		var err error
		for i := range n {
			if _, err = c.nc.Write([]byte(fmt.Sprintf(`{"ipcReqID":%d,"uri":"/user","data":%s}`+"\n", i+1, data))); err != nil {
				break
			}
		}
		sent <- err
	}()
	waitFor(t, func() bool { return s.Stats().StreamBackpressure > 0 })
	for range n {
		if line := c.line(); !strings.HasSuffix(line, `,"data":`+data+`}`) {
			t.Fatalf("bad response of %d bytes", len(line))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// A client killed with SIGKILL mid-request: the handler's context is
// cancelled, the connection is released, and the server keeps serving.
func TestClientKilled(t *testing.T) {
	cancelled := make(chan struct{})
	s, path := startServer(t, nil, func(s *Server) {
		s.Handle("/test/wait", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			<-ctx.Done()
			close(cancelled)
			return nil, ctx.Err()
		}))
	})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", childRoleEnv+"=hang", "JSONIPC_TEST_SOCKET="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Stats().InFlight == 1 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	<-cancelled
	waitFor(t, func() bool { st := s.Stats(); return st.Connections == 0 && st.ClientClose == 1 && st.InFlight == 0 })
	if got := dialRaw(t, path).roundTrip(`{"ipcReqID":1,"uri":"/ipcserver/test/echo","data":1}`); got != `{"ipcReqID":1,"data":1}` {
		t.Fatalf("after the kill: %s", got)
	}
}

// A client that stops reading is disconnected after SendTimeout without
// write progress, and the server keeps serving others.
func TestSendTimeoutClosesNonReader(t *testing.T) {
	s, path := startServer(t, &Config{SendTimeout: 200 * time.Millisecond}, nil)
	c := dialRaw(t, path)
	data := `"` + strings.Repeat("z", 256<<10) + `"`
	sent := make(chan error, 1)
	go func() {
		var err error
		for i := range 64 {
			if _, err = c.nc.Write([]byte(fmt.Sprintf(`{"ipcReqID":%d,"uri":"/ipcserver/test/echo","data":%s}`+"\n", i+1, data))); err != nil {
				break
			}
		}
		sent <- err
	}()
	waitFor(t, func() bool { return s.Stats().SendTimeouts == 1 })
	// The stalled writer of the test unblocks with an error once the
	// server has closed the connection.
	if err := <-sent; err == nil {
		t.Error("client could write all requests to a connection the server closed")
	}
	waitFor(t, func() bool { return s.Stats().Connections == 0 })
	other := dialRaw(t, path)
	if got := other.roundTrip(`{"ipcReqID":1,"uri":"/ipcserver/test/echo"}`); !strings.Contains(got, `"ipcReqID":1`) {
		t.Fatalf("server stopped serving: %q", got)
	}
}

// SendTimeout bounds each wait for progress, not the whole response: a
// client reading a large response slowly but steadily gets all of it.
func TestSendTimeoutSpareSlowReader(t *testing.T) {
	s, path := startServer(t, &Config{SendTimeout: 150 * time.Millisecond}, nil)
	c := dialRaw(t, path)
	data := strings.Repeat("s", 2<<20)
	c.send(`{"ipcReqID":1,"uri":"/ipcserver/test/echo","data":"` + data + `"}` + "\n")
	var got []byte
	buf := make([]byte, 64<<10)
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for !bytes.HasSuffix(got, []byte("\n")) {
		time.Sleep(10 * time.Millisecond) // about 6 MB/s: the whole takes ~4 timeouts
		n, err := c.nc.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Contains(got, []byte(data)) {
		t.Fatalf("response of %d bytes lacks the data", len(got))
	}
	if n := s.Stats().SendTimeouts; n != 0 {
		t.Fatalf("SendTimeouts = %d for a steady reader", n)
	}
}

// A client that pipelines requests faster than its handlers finish must
// not make the server start a goroutine for each: past maxInFlight
// handlers the connection stops reading, and every request is still
// answered once they complete.
func TestInFlightBounded(t *testing.T) {
	release := make(chan struct{})
	s, path := startServer(t, nil, func(s *Server) {
		s.Handle("/block", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return r.Data, nil
		}))
	})
	c := dialRaw(t, path)
	const n = maxInFlight + 300
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"ipcReqID":%d,"uri":"/block","data":%d}`+"\n", i+1, i+1)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := c.nc.Write([]byte(sb.String()))
		sent <- err
	}()
	waitFor(t, func() bool { return s.Stats().InFlight >= maxInFlight })
	time.Sleep(200 * time.Millisecond) // give an unbounded reader time to go past
	if got := s.Stats().InFlight; got > maxInFlight {
		close(release)
		t.Fatalf("%d handlers in flight on one connection, want at most %d", got, maxInFlight)
	}
	close(release)
	seen := make(map[string]bool, n)
	for range n {
		line := c.line()
		if seen[line] {
			t.Fatalf("response delivered twice: %s", line)
		}
		seen[line] = true
	}
	for i := range n {
		if want := fmt.Sprintf(`{"ipcReqID":%d,"data":%d}`, i+1, i+1); !seen[want] {
			t.Fatalf("missing response %s", want)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// Pushing to a client that reads nothing must neither block the pusher
// (Broadcast would stall every other client for SendTimeout) nor queue
// without bound: past pushQueueLimit the connection is closed and Push
// fails, while a client that reads gets every message.
func TestPushToNonReaderBounded(t *testing.T) {
	s, path := startServer(t, &Config{MaxMessageSize: 1 << 20}, nil)
	stuck := dialRaw(t, path)
	stuck.roundTrip(`{"ipcReqID":1,"uri":"/ipcserver/test/echo"}`) // connected
	reader := dialRaw(t, path)
	reader.roundTrip(`{"ipcReqID":1,"uri":"/ipcserver/test/echo"}`)
	got := make(chan int, 1)
	go func() {
		n := 0
		for {
			if _, err := reader.r.ReadString('\n'); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	msg := map[string]string{"blob": strings.Repeat("x", 1<<20)}
	limit := s.pushQueueLimit()
	sent := 0
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			n, err := s.Broadcast(context.Background(), msg)
			if err != nil {
				done <- err
				return
			}
			sent++
			if n < 2 {
				done <- nil // the non-reader was dropped
				return
			}
			if q := int64(i) << 20; q > 2*limit {
				done <- fmt.Errorf("%d bytes queued for a client that reads nothing; limit %d", q, limit)
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Broadcast blocked on a client that reads nothing")
	}
	stuck.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, stuck.nc); err != nil {
		t.Fatalf("connection not closed cleanly: %v", err)
	}
	reader.nc.CloseWrite()
	if n := <-got; n != sent {
		t.Fatalf("reading client got %d of %d messages", n, sent)
	}
}

// A push queued by a handler just before it answers goes out, followed by
// the answer, even when the client has already ended its sending side.
func TestPushThenReplyAfterHalfClose(t *testing.T) {
	_, path := startServer(t, nil, func(s *Server) {
		s.Handle("/p", HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
			for range 8 {
				if err := r.Conn().Push(ctx, map[string]string{"blob": strings.Repeat("y", 256<<10)}); err != nil {
					return nil, err
				}
			}
			return "done", nil
		}))
	})
	c := dialRaw(t, path)
	c.send(`{"ipcReqID":7,"uri":"/p"}` + "\n")
	c.nc.CloseWrite()
	for range 8 {
		if line := c.line(); !strings.HasPrefix(line, `{"blob":"yyy`) {
			t.Fatalf("want a push, got %.40q", line)
		}
	}
	if line := c.line(); line != `{"ipcReqID":7,"data":"done"}` {
		t.Fatalf("got %q", line)
	}
	c.expectEOF()
}
