package jsonipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Server. The zero value is usable; every field
// documents its default.
type Config struct {
	SocketMode     os.FileMode   // 0 => 0600
	AllowUID       []uint32      // empty => any uid
	AllowGID       []uint32      // empty => any gid
	ExitTimeout    time.Duration // 0 => 2s; bound on graceful shutdown
	SlowThreshold  time.Duration // 0 => no slow accounting; requests slower than this count as slowResponses (and are logged at debug)
	StatsInterval  time.Duration // 0 => no periodic stats log; else slog Info line every interval
	MaxMessageSize int64         // 0 => 64 MiB
	MaxConnections int           // 0 => 10000; beyond it new connections are refused with an error line then closed
	IdleTimeout    time.Duration // 0 => none
	Logger         *slog.Logger  // nil => slog.Default()

	// SendTimeout closes a connection whose client has read nothing of
	// its pending responses for this long (no write progress, as nginx's
	// send_timeout), so a client that stops reading cannot hold a
	// connection and its handlers forever. 0 => DefaultSendTimeout;
	// negative => never.
	SendTimeout time.Duration
}

// DefaultSendTimeout is Config.SendTimeout's default, nginx's send_timeout.
const DefaultSendTimeout = 60 * time.Second

// Errors returned by the server's lifecycle methods.
var (
	// ErrInUse means a live server already answers on the socket path.
	ErrInUse = errors.New("jsonipc: socket is in use by a running server")
	// ErrServerClosed is returned by Listen and Serve after Shutdown.
	ErrServerClosed = errors.New("jsonipc: server closed")
	// ErrConnClosed is returned by Conn.Push on a closed connection.
	ErrConnClosed = errors.New("jsonipc: connection closed")
)

type route struct {
	re *regexp.Regexp
	h  Handler
	// inline reports that h answers this request at once without
	// blocking, so it runs on the connection's reader: no goroutine, no
	// copy of the request, and answers in request order as in pixl-ipc.
	inline func(*Request) bool
}

// Server serves the pixl-ipc protocol on a Unix stream socket. Create it
// with NewServer, add handlers with Handle, then ListenAndServe.
type Server struct {
	cfg Config
	log *slog.Logger

	routes atomic.Pointer[[]route] // copied on write, read without locks

	stopping atomic.Bool // set first thing in Shutdown; read by connection readers

	mu       sync.Mutex
	ln       *net.UnixListener
	path     string
	conns    map[*Conn]struct{}
	closing  bool
	serving  bool
	deadline time.Time     // when lingering connections are cut, once closing
	done     chan struct{} // closed when Shutdown has finished

	// ctx is cancelled when connections are cut at the end of shutdown;
	// handlers still running see it.
	ctx    context.Context
	cancel context.CancelFunc
	connWG sync.WaitGroup

	bufs bufPool   // request copies and response buffers
	reqs sync.Pool // *Request for handlers run in goroutines

	st     counters
	start  time.Time
	stopMu sync.Once
}

// NewServer returns a server with the built-in handlers registered:
// /ipcserver/test/echo and /ipcserver/test/delay (prefix matches, as in
// pixl-ipc) and /ipcserver/stats. cfg may be nil.
func NewServer(cfg *Config) *Server {
	s := &Server{conns: make(map[*Conn]struct{}), done: make(chan struct{}), start: time.Now()}
	if cfg != nil {
		s.cfg = *cfg
	}
	c := &s.cfg
	if c.SocketMode == 0 {
		c.SocketMode = 0o600
	}
	if c.ExitTimeout <= 0 {
		c.ExitTimeout = 2 * time.Second
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 64 << 20
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 10000
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	s.log = c.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.routes.Store(&[]route{})
	always := func(*Request) bool { return true }
	s.addRoute(route{re: regexp.MustCompile(`^/ipcserver/test/echo`), h: echo{}, inline: always})
	s.addRoute(route{re: regexp.MustCompile(`^/ipcserver/test/delay`), h: HandlerFunc(delayHandler), inline: noDelay})
	s.addRoute(route{re: regexp.MustCompile(`^/ipcserver/stats$`), h: HandlerFunc(func(context.Context, *Request) (any, error) {
		return s.Stats(), nil
	}), inline: always})
	return s
}

// Handle registers h for URIs matching pattern, a regular expression
// anchored at both ends (^(?:pattern)$). Handlers are tried in
// registration order and the first match wins. It is safe to call while
// serving.
func (s *Server) Handle(pattern string, h Handler) error {
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return fmt.Errorf("jsonipc: bad uri pattern %q: %w", pattern, err)
	}
	s.HandleRegexp(re, h)
	return nil
}

// HandleInline is Handle for handlers that never block, such as lookups
// in memory: h runs on the connection's reader goroutine instead of a
// goroutine of its own, which saves that goroutine and keeps responses in
// request order. A handler that blocks stalls its whole connection, so
// anything that waits (I/O, locks held long, timers) belongs in Handle.
func (s *Server) HandleInline(pattern string, h Handler) error {
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return fmt.Errorf("jsonipc: bad uri pattern %q: %w", pattern, err)
	}
	s.addRoute(route{re: re, h: h, inline: func(*Request) bool { return true }})
	return nil
}

// HandleRegexp registers h for URIs that re matches, used as given (so
// unanchored unless re says otherwise).
func (s *Server) HandleRegexp(re *regexp.Regexp, h Handler) {
	s.addRoute(route{re: re, h: h})
}

func (s *Server) addRoute(r route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := slices.Clone(*s.routes.Load())
	rs = append(rs, r)
	s.routes.Store(&rs)
}

func (s *Server) match(uri string) *route {
	rs := *s.routes.Load()
	for i := range rs {
		if rs[i].re.MatchString(uri) {
			return &rs[i]
		}
	}
	return nil
}

// Addr returns the socket path the server listens on, or "" before
// Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// ListenAndServe listens on path and serves until ctx is cancelled, then
// shuts down gracefully (bounded by ExitTimeout) and returns once that
// is complete.
func (s *Server) ListenAndServe(ctx context.Context, path string) error {
	if err := s.Listen(path); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Listen creates the socket at path. It refuses with ErrInUse when a
// live server answers there, removes a stale socket file left by a dead
// one, creates the parent directory (0700) if needed, and sets the
// socket file's mode to SocketMode.
func (s *Server) Listen(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if s.ln != nil {
		return fmt.Errorf("jsonipc: already listening on %s", s.path)
	}
	if err := removeStale(path); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("jsonipc: creating socket directory: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("jsonipc: listen: %w", err)
	}
	// The file is ours to remove at shutdown, after the connections are
	// done, not when the listener closes.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, s.cfg.SocketMode); err != nil {
		ln.Close()
		os.Remove(path)
		return fmt.Errorf("jsonipc: setting socket mode: %w", err)
	}
	s.ln, s.path = ln, path
	return nil
}

// removeStale removes path if it is a socket nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jsonipc: checking socket path: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("jsonipc: %s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("jsonipc: probing existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("jsonipc: removing stale socket: %w", err)
	}
	return nil
}

// Serve accepts connections on the socket created by Listen until ctx is
// cancelled or Shutdown is called. When ctx ends it shuts down
// gracefully. It returns nil after a graceful shutdown has completed.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	switch {
	case s.closing:
		s.mu.Unlock()
		return ErrServerClosed
	case ln == nil:
		s.mu.Unlock()
		return errors.New("jsonipc: Serve called before Listen")
	case s.serving:
		s.mu.Unlock()
		return errors.New("jsonipc: Serve called twice")
	}
	s.serving = true
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { s.Shutdown(context.Background()) })
	defer stop()
	if s.cfg.StatsInterval > 0 {
		go s.logStats()
	}
	s.log.Info("jsonipc: listening", "socket", s.path, "mode", fmt.Sprintf("%#o", s.cfg.SocketMode))

	var backoff time.Duration
	for {
		nc, err := ln.AcceptUnix()
		if err != nil {
			if s.isClosing() {
				<-s.done
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of descriptors and the like: wait and retry, as
				// net/http does, instead of spinning or giving up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("jsonipc: accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			s.log.Error("jsonipc: accept failed", "err", err)
			s.Shutdown(context.Background())
			return fmt.Errorf("jsonipc: accept: %w", err)
		}
		backoff = 0
		s.accept(nc)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// accept admits or refuses one new connection.
func (s *Server) accept(nc *net.UnixConn) {
	peer, err := peerCred(nc)
	if err != nil {
		s.log.Warn("jsonipc: reading peer credentials", "err", err)
		nc.Close()
		return
	}
	if !allowed(s.cfg.AllowUID, peer.UID) || !allowed(s.cfg.AllowGID, peer.GID) {
		s.st.error(CodePermissionDenied)
		s.log.Warn("jsonipc: refused peer outside allow lists", "peer", peer.String())
		refuse(nc, CodePermissionDenied, fmt.Sprintf("uid %d gid %d may not connect", peer.UID, peer.GID))
		return
	}
	c := newConn(s, nc, peer)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		s.st.error(CodeTooManyConnections)
		s.log.Warn("jsonipc: refused connection: too many connections", "max", s.cfg.MaxConnections, "peer", peer.String())
		refuse(nc, CodeTooManyConnections, fmt.Sprintf("server has reached max_connections (%d)", s.cfg.MaxConnections))
		return
	}
	s.conns[c] = struct{}{}
	n := int64(len(s.conns))
	s.connWG.Add(1)
	s.mu.Unlock()
	s.st.clientOpen.Add(1)
	s.st.connections.Store(n)
	for {
		old := s.st.maxConnections.Load()
		if n <= old || s.st.maxConnections.CompareAndSwap(old, n) {
			break
		}
	}
	go c.serve()
}

func allowed(list []uint32, id uint32) bool { return len(list) == 0 || slices.Contains(list, id) }

// refuse tells a client why it is turned away, then closes.
func refuse(nc *net.UnixConn, code, msg string) {
	b := appendError(nil, nil, code, msg)
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(b)
	nc.CloseWrite()
	nc.Close()
}

func (s *Server) removeConn(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	n := int64(len(s.conns))
	s.mu.Unlock()
	s.st.connections.Store(n)
	s.st.clientClose.Add(1)
}

// Shutdown stops accepting, lets in-flight handlers finish and their
// responses be written, then half-closes every connection so clients
// read a clean end of stream, and waits for them to close. Connections
// still open after ExitTimeout, or when ctx ends, are closed and
// handlers' contexts are cancelled. The socket file is removed as soon
// as accepting stops. It
// returns ctx.Err() if ctx ended first; calling it again waits for the
// first call to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	first := false
	s.stopMu.Do(func() { first = true })
	if !first {
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.stopping.Store(true)
	s.mu.Lock()
	s.closing = true
	s.deadline = time.Now().Add(s.cfg.ExitTimeout)
	ln, path := s.ln, s.path
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	// Remove the file now, not after draining: a server started meanwhile
	// on the same path must not lose its new socket to us.
	if path != "" {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Warn("jsonipc: removing socket file", "err", rerr)
		}
	}
	// Wake every reader; each drains its connection (see Conn.serve).
	for _, c := range conns {
		c.nc.SetReadDeadline(time.Now())
	}
	finished := make(chan struct{})
	go func() { s.connWG.Wait(); close(finished) }()
	timer := time.NewTimer(s.cfg.ExitTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-finished:
	case <-timer.C:
		s.log.Warn("jsonipc: exit timeout reached; closing remaining connections", "timeout", s.cfg.ExitTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	if err == nil {
		// Connections are closed and contexts cancelled; handlers that
		// ignore their context could still hold us, so this wait is
		// bounded too.
		grace := time.NewTimer(s.cfg.ExitTimeout)
		defer grace.Stop()
		select {
		case <-finished:
		case <-grace.C:
			err = errors.New("jsonipc: handlers still running after exit timeout; they ignore their context")
			s.log.Error(err.Error())
		}
	}
	s.log.Info("jsonipc: stopped", "socket", path)
	close(s.done)
	return err
}

// Broadcast pushes msg (any value that encodes as a JSON object) to
// every connected client as a message without ipcReqID. It returns how
// many connections it was queued on.
func (s *Server) Broadcast(ctx context.Context, msg any) (int, error) {
	b, err := encodePush(msg)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if c.pushRaw(b) == nil {
			n++
		}
	}
	return n, nil
}

func encodePush(msg any) ([]byte, error) {
	b, err := marshal(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("jsonipc: encoding pushed message: %w", err)
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("jsonipc: a pushed message must encode as a JSON object")
	}
	return append(b, '\n'), nil
}

// marshal appends the compact JSON encoding of v to dst, escaping only
// what JSON requires (pixl-ipc leaves <, > and & alone).
func marshal(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case trusted:
		return append(dst, v...), nil
	case json.RawMessage:
		if !validJSON(v) {
			return dst, errors.New("handler returned invalid JSON in json.RawMessage")
		}
		if containsNewline(v) {
			b := bytes.NewBuffer(dst)
			if err := json.Compact(b, v); err != nil {
				return dst, err
			}
			return b.Bytes(), nil
		}
		return append(dst, v...), nil
	}
	b := bytes.NewBuffer(dst)
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	out := b.Bytes()
	return out[:len(out)-1], nil // Encode adds '\n'
}
