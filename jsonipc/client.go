package jsonipc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Client.
var (
	// ErrTimeout means no response came within RequestTimeout.
	ErrTimeout = errors.New("jsonipc: request timed out")
	// ErrClosed means the client was closed.
	ErrClosed = errors.New("jsonipc: client closed")
	// ErrDisconnected means the connection to the server was lost, or is
	// not up. A call in flight when it broke may or may not have run.
	ErrDisconnected = errors.New("jsonipc: not connected to server")
)

// ClientConfig configures a Client. A nil *ClientConfig, like the zero
// value, gives the defaults.
type ClientConfig struct {
	// RequestTimeout bounds each call, on top of its context.
	// 0 => 10s; negative => no timeout besides the context.
	RequestTimeout time.Duration
	// AutoReconnect re-dials after the connection is lost, with
	// exponential backoff from 50ms to 5s. Calls made while
	// disconnected wait for the new connection within their timeout.
	AutoReconnect bool
	// UserAgent is sent with every request; "" => "Go/procwire-jsonipc".
	UserAgent string
	// CodeToErr also turns a response whose data carries a truthy "code"
	// (such as no_handler_found) into a *RemoteError, as pixl-ipc's
	// codeToErr option does. Top-level codes are always errors.
	CodeToErr bool
	// OnMessage receives messages without ipcReqID: pushes from the
	// server. It runs on the connection's reader goroutine, so it must
	// not block for long; msg is the caller's to keep.
	OnMessage func(msg []byte)
	// MaxMessageSize bounds a response line; 0 => 64 MiB. A longer one is
	// skipped and its call times out.
	MaxMessageSize int64
	// Logger receives diagnostics; nil => slog.Default().
	Logger *slog.Logger
}

// Client is a connection to a jsonipc (pixl-ipc protocol) server. It is
// safe for concurrent use; any number of calls may be in flight.
type Client struct {
	cfg     ClientConfig
	path    string
	log     *slog.Logger
	pid     []byte // JSON text of our pid
	ua      []byte // quoted user agent
	nextID  atomic.Uint64
	calls   sync.Pool // *call
	bufs    bufPool
	timeout time.Duration

	mu     sync.Mutex
	cur    *clientConn   // nil while disconnected
	ready  chan struct{} // closed when cur is set again
	closed bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

type clientConn struct {
	nc      net.Conn
	w       batchWriter
	mu      sync.Mutex
	pending map[uint64]*call
	err     error // why the connection ended; set once
}

type reply struct {
	data []byte
	err  error
}

// call is one request waiting for its response; calls are pooled with
// their channel and timer, so a call allocates only its result.
type call struct {
	ch    chan reply
	timer *time.Timer
}

// Dial connects to the server at path. ctx bounds the connection
// attempt only. cfg may be nil. Dial fails when no server answers, even
// with AutoReconnect, which takes over once a first connection was made.
func Dial(ctx context.Context, path string, cfg *ClientConfig) (*Client, error) {
	c := &Client{path: path, done: make(chan struct{})}
	if cfg != nil {
		c.cfg = *cfg
	}
	c.timeout = c.cfg.RequestTimeout
	if c.timeout == 0 {
		c.timeout = 10 * time.Second
	}
	if c.cfg.MaxMessageSize <= 0 {
		c.cfg.MaxMessageSize = 64 << 20
	}
	c.log = c.cfg.Logger
	if c.log == nil {
		c.log = slog.Default()
	}
	ua := c.cfg.UserAgent
	if ua == "" {
		ua = "Go/procwire-jsonipc"
	}
	c.ua = appendQuoted(nil, ua)
	c.pid = strconv.AppendInt(nil, int64(os.Getpid()), 10)
	c.calls.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &call{ch: make(chan reply, 1), timer: t}
	}
	cc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.cur = cc
	c.start(cc)
	return c, nil
}

func (c *Client) dial(ctx context.Context) (*clientConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, fmt.Errorf("jsonipc: connecting to %s: %w", c.path, err)
	}
	cc := &clientConn{nc: nc, pending: make(map[uint64]*call)}
	cc.w.c = nc
	// A server that stops reading must not hold callers past their
	// timeout inside a write.
	cc.w.timeout = max(c.timeout, 0)
	return cc, nil
}

func (c *Client) start(cc *clientConn) {
	c.wg.Add(1)
	go c.read(cc)
}

// Close closes the connection and stops reconnecting. Calls in flight
// fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	cc := c.cur
	c.mu.Unlock()
	if cc != nil {
		cc.nc.Close()
	}
	c.wg.Wait()
	return nil
}

// Call sends a request for uri with in as its data (omitted when nil or
// a nil json.RawMessage; a json.RawMessage is sent as is) and decodes the response data into
// out (skipped when out is nil). A top-level error response is returned
// as a *RemoteError.
func (c *Client) Call(ctx context.Context, uri string, in, out any) error {
	var data []byte
	hasData := !noData(in)
	if hasData {
		var err error
		if data, err = marshal(nil, in); err != nil {
			return fmt.Errorf("jsonipc: encoding request data for %s: %w", uri, err)
		}
	}
	resp, err := c.roundTrip(ctx, uri, data, hasData)
	if err != nil {
		return err
	}
	if out != nil && resp != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("jsonipc: decoding response of %s: %w", uri, err)
		}
	}
	return nil
}

// CallRaw is Call with pre-encoded JSON: data (nil => no data member) is
// sent without re-encoding, and the response data comes back as raw
// JSON, nil when the response has none.
func (c *Client) CallRaw(ctx context.Context, uri string, data json.RawMessage) (json.RawMessage, error) {
	return c.roundTrip(ctx, uri, data, data != nil)
}

func (c *Client) roundTrip(ctx context.Context, uri string, data []byte, hasData bool) (json.RawMessage, error) {
	if hasData && (containsNewline(data) || !validJSON(data)) {
		// The server would answer with a null id, which no call could
		// claim: refuse here instead of timing out.
		return nil, fmt.Errorf("jsonipc: request data for %s must be valid single-line JSON", uri)
	}
	cl := c.calls.Get().(*call)
	var deadline <-chan time.Time
	if c.timeout > 0 {
		// Since Go 1.23 a stopped or reset timer never delivers a stale
		// tick, so a pooled timer is safe to reuse.
		cl.timer.Reset(c.timeout)
		deadline = cl.timer.C
	}
	cc, err := c.conn(ctx, deadline)
	if err != nil {
		c.release(cl)
		return nil, fmt.Errorf("%w (calling %s)", err, uri)
	}

	id := c.nextID.Add(1)
	buf := c.bufs.get()
	b := append((*buf)[:0], `{"ipcReqID":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"uri":`...)
	b = appendQuoted(b, uri)
	if hasData {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	b = append(b, `,"pid":`...)
	b = append(b, c.pid...)
	b = append(b, `,"userAgent":`...)
	b = append(b, c.ua...)
	b = append(b, "}\n"...)
	*buf = b

	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		c.bufs.put(buf)
		c.release(cl)
		return nil, fmt.Errorf("%w (calling %s)", err, uri)
	}
	cc.pending[id] = cl
	cc.mu.Unlock()
	werr := cc.w.write(b)
	c.bufs.put(buf)
	if werr != nil {
		// Part of a message may have gone out, so the stream is unusable:
		// closing it makes the reader fail every pending call, this one
		// included.
		c.log.Debug("jsonipc: write failed", "err", werr)
		cc.nc.Close()
	}

	select {
	case r := <-cl.ch:
		c.release(cl)
		if r.err != nil {
			if _, ok := r.err.(*RemoteError); ok {
				return nil, r.err
			}
			return nil, fmt.Errorf("%w (calling %s)", r.err, uri)
		}
		return r.data, nil
	case <-ctx.Done():
		c.abandon(cc, id, cl)
		return nil, fmt.Errorf("jsonipc: calling %s: %w", uri, ctx.Err())
	case <-deadline:
		c.abandon(cc, id, cl)
		return nil, fmt.Errorf("%w after %v (calling %s)", ErrTimeout, c.timeout, uri)
	}
}

// release returns a finished call to the pool, its timer stopped first
// so that the next user's timer is not stopped under it.
func (c *Client) release(cl *call) {
	cl.timer.Stop()
	c.calls.Put(cl)
}

// abandon forgets a call that will not wait for its response; a late
// response is then dropped.
func (c *Client) abandon(cc *clientConn, id uint64, cl *call) {
	cc.mu.Lock()
	_, ok := cc.pending[id]
	delete(cc.pending, id)
	cc.mu.Unlock()
	if !ok {
		<-cl.ch // the reader got there first and is sending
	}
	c.release(cl)
}

// conn returns the live connection, waiting for a reconnect if one is
// under way.
func (c *Client) conn(ctx context.Context, deadline <-chan time.Time) (*clientConn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if c.cur != nil {
			cc := c.cur
			c.mu.Unlock()
			return cc, nil
		}
		if !c.cfg.AutoReconnect {
			c.mu.Unlock()
			return nil, ErrDisconnected
		}
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("%w while waiting to reconnect", ErrTimeout)
		}
	}
}

// read delivers responses until the connection ends, then fails every
// pending call at once and, if configured, reconnects.
func (c *Client) read(cc *clientConn) {
	defer c.wg.Done()
	lr := newLineReader(cc.nc, int(c.cfg.MaxMessageSize))
	var err error
	for {
		var line []byte
		var tooLarge bool
		line, tooLarge, err = lr.next()
		if err != nil {
			break
		}
		if tooLarge {
			c.log.Warn("jsonipc: skipped a response over MaxMessageSize", "max", c.cfg.MaxMessageSize)
			c.failTooLarge(cc, leadingID(line))
			continue
		}
		c.deliver(cc, line)
	}
	// Forget the connection before closing it, so that once the server
	// sees the close, no new call can pick this connection.
	c.mu.Lock()
	closed := c.closed
	if c.cur == cc {
		c.cur = nil
	}
	reconnect := !closed && c.cfg.AutoReconnect
	if reconnect {
		c.ready = make(chan struct{})
	}
	c.mu.Unlock()
	cc.nc.Close()

	cause := ErrClosed
	if !closed {
		cause = fmt.Errorf("%w: connection lost: %v", ErrDisconnected, err)
	}
	cc.mu.Lock()
	cc.err = cause
	pending := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	for _, cl := range pending {
		cl.ch <- reply{err: cause}
	}
	if reconnect {
		c.wg.Add(1)
		go c.reconnect()
	}
}

func (c *Client) reconnect() {
	defer c.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-c.done:
			return
		case <-time.After(backoff):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cc, err := c.dial(ctx)
		cancel()
		if err != nil {
			c.log.Debug("jsonipc: reconnect failed", "err", err, "retry_in", backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			cc.nc.Close()
			return
		}
		c.cur = cc
		close(c.ready)
		c.start(cc)
		c.mu.Unlock()
		c.log.Info("jsonipc: reconnected", "socket", c.path)
		return
	}
}

// deliver routes one line from the server to its call, or to OnMessage.
func (c *Client) deliver(cc *clientConn, line []byte) {
	line = trimSpace(line)
	if len(line) == 0 {
		return
	}
	var e envelope
	if err := parseEnvelope(line, &e); err != nil {
		c.log.Warn("jsonipc: ignoring bad message from server", "err", err)
		return
	}
	if !truthy(e.id) {
		if c.cfg.OnMessage != nil {
			c.cfg.OnMessage(append([]byte(nil), line...))
		}
		return
	}
	id, err := strconv.ParseUint(string(e.id), 10, 64)
	if err != nil {
		c.log.Debug("jsonipc: response with a foreign id", "id", string(e.id))
		return
	}
	cc.mu.Lock()
	cl := cc.pending[id]
	delete(cc.pending, id)
	cc.mu.Unlock()
	if cl == nil {
		return // timed out or cancelled; dropped as pixl-ipc does
	}
	var r reply
	switch {
	case truthy(e.code):
		r.err = remoteError(e.code, e.message)
	case c.cfg.CodeToErr && len(e.data) > 0 && e.data[0] == '{':
		var d envelope
		if parseEnvelope(e.data, &d) == nil && truthy(d.code) {
			r.err = remoteError(d.code, d.message)
		}
	}
	if r.err == nil && e.data != nil {
		r.data = append([]byte(nil), e.data...)
	}
	cl.ch <- r
}

// failTooLarge fails the call whose response was skipped for its size,
// when the id at the response's start names one, rather than leaving it
// to time out.
func (c *Client) failTooLarge(cc *clientConn, rawID []byte) {
	id, err := strconv.ParseUint(string(rawID), 10, 64)
	if err != nil {
		return
	}
	cc.mu.Lock()
	cl := cc.pending[id]
	delete(cc.pending, id)
	cc.mu.Unlock()
	if cl != nil {
		cl.ch <- reply{err: &RemoteError{Code: CodeMessageTooLarge, Message: fmt.Sprintf("response exceeds the client's MaxMessageSize (%d bytes)", c.cfg.MaxMessageSize)}}
	}
}

func remoteError(code, msg []byte) *RemoteError {
	c, _ := uriString(code)
	m, _ := uriString(msg)
	return &RemoteError{Code: c, Message: m}
}
