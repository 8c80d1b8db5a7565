package jsonipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Conn is one client connection of a Server.
type Conn struct {
	s       *Server
	nc      *net.UnixConn
	peer    Peer
	w       batchWriter
	ctx     context.Context // cancelled when the connection ends
	cancel  context.CancelFunc
	active  sync.WaitGroup // handlers running for this connection
	nactive atomic.Int64   // the same count, readable
	// slotFree is signalled when nactive falls below maxInFlight.
	slotFree chan struct{}

	// Owned by the reader goroutine:
	inline  Request // reused for handlers run on the reader
	lastURI string  // reused when the next request names the same uri
}

// hangupPoll is how often a connection whose client has stopped sending
// checks that it is still there to read the answers still being made.
const hangupPoll = 200 * time.Millisecond

// maxInFlight is how many handlers one connection may have running
// before the server stops reading its requests: a client that sends
// faster than its handlers finish cannot make the server hold a
// goroutine and a request copy for each without bound.
const maxInFlight = 4096

// waitSlot blocks while maxInFlight handlers run for this connection, or
// until the connection ends.
func (c *Conn) waitSlot() {
	for c.nactive.Load() >= maxInFlight && c.ctx.Err() == nil {
		select {
		case <-c.slotFree:
		case <-c.ctx.Done():
		}
	}
}

// waitUnlessHungUp waits for the handlers in flight, cancelling them as
// soon as the client has closed its connection entirely.
func (c *Conn) waitUnlessHungUp() {
	done := make(chan struct{})
	go func() {
		c.wait()
		close(done)
	}()
	t := time.NewTicker(hangupPoll)
	defer t.Stop()
	for {
		if peerGone(c.nc) {
			c.cancel()
			<-done
			return
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func newConn(s *Server, nc *net.UnixConn, peer Peer) *Conn {
	c := &Conn{s: s, nc: nc, peer: peer}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.w.c = nc
	c.w.written = func(n int) { s.st.bytesOut.Add(uint64(n)) }
	c.w.drained = make(chan struct{}, 1)
	c.w.flushed = sync.NewCond(&c.w.mu)
	c.slotFree = make(chan struct{}, 1)
	c.w.timeout = max(s.cfg.SendTimeout, 0)
	c.w.onFail = func(err error) {
		// Nobody will read this connection's answers: close it, which
		// also wakes its reader, so that it and its handlers end too.
		if isTimeout(err) {
			s.st.sendTimeouts.Add(1)
			s.log.Warn("jsonipc: client stopped reading its responses; connection closed",
				"peer", c.peer.String(), "send_timeout", s.cfg.SendTimeout)
		}
		c.cancel()
		c.nc.Close()
	}
	return c
}

// pushQueueLimit is how much unsent output a connection may hold before
// a push closes it: enough for the largest message besides the responses
// backpressure allows.
func (s *Server) pushQueueLimit() int64 {
	return max(s.cfg.MaxMessageSize, 16<<20)
}

// Context returns a context that is cancelled when the connection ends,
// for work tied to a client, such as a subscription that must stop
// pushing once the client is gone.
func (c *Conn) Context() context.Context { return c.ctx }

// Peer returns the identity of the connected process.
func (c *Conn) Peer() Peer { return c.peer }

// Push sends msg, which must encode as a JSON object, to this client as
// a message without ipcReqID (pixl-ipc clients emit such messages as
// "data" events). It queues the message and returns without waiting for
// the client; it fails with ErrConnClosed once the connection is gone. A
// client that leaves more than max(Config.MaxMessageSize, 16 MiB) unread
// is disconnected by the next Push, which then fails too.
func (c *Conn) Push(ctx context.Context, msg any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := encodePush(msg)
	if err != nil {
		return err
	}
	return c.pushRaw(b)
}

func (c *Conn) pushRaw(b []byte) error {
	if q, limit := c.w.queued(), c.s.pushQueueLimit(); q > limit {
		// The client reads nothing of what it is sent: drop it, as the
		// send timeout would, before its queue takes the server's memory.
		c.s.log.Warn("jsonipc: client does not read its pushed messages; connection closed",
			"peer", c.peer.String(), "queued", q, "limit", limit)
		c.cancel()
		c.nc.Close()
		return fmt.Errorf("%w: %d bytes unsent", ErrConnClosed, q)
	}
	if err := c.w.post(b); err != nil {
		return fmt.Errorf("%w: %v", ErrConnClosed, err)
	}
	return nil
}

// serve reads and dispatches requests until the client goes away or the
// server shuts down, then finishes the connection cleanly.
func (c *Conn) serve() {
	s := c.s
	defer s.connWG.Done()
	defer s.removeConn(c)
	defer c.cancel()
	defer c.nc.Close()

	lr := newLineReader(c.nc, int(s.cfg.MaxMessageSize))
	var counted int64
	corked := false
	for {
		if !corked && c.w.backlogged() {
			// About to read more requests while the client leaves
			// responses unread: wait for it instead of queueing more.
			s.st.backpressure.Add(1)
			c.w.waitDrained()
		}
		if c.nactive.Load() >= maxInFlight {
			// Let the held responses out before waiting for handlers.
			if corked {
				c.w.uncork()
				corked = false
			}
			c.waitSlot()
		}
		if s.cfg.IdleTimeout > 0 {
			c.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			// Shutdown sets its flag before waking readers with a past
			// deadline; re-check so this deadline cannot override that.
			if s.stopping.Load() {
				c.nc.SetReadDeadline(time.Now())
			}
		}
		line, tooLarge, err := lr.next()
		s.st.bytesIn.Add(uint64(lr.nread - counted))
		counted = lr.nread
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, io.EOF):
				// The client is done sending, not necessarily done
				// reading: `printf '...' | socat - UNIX:sock` still wants
				// the answers (pixl-ipc drops them). So handlers run to
				// completion while the client can read, and are cancelled
				// once it has closed or died, when nobody will.
				c.waitUnlessHungUp()
			case s.stopping.Load():
				c.drain()
			case errors.As(err, &ne) && ne.Timeout():
				if c.busy() {
					continue // idle means no request in flight either
				}
				c.wait()
				c.nc.CloseWrite()
			default:
				// The connection broke: nobody will read the answers.
				s.log.Debug("jsonipc: connection read failed", "peer", c.peer.String(), "err", err)
				c.cancel()
				c.wait()
			}
			return
		}
		// While more requests are already buffered, hold the responses
		// back and send them together once the last one is dispatched:
		// one write per batch instead of one per response.
		more := lr.hasLine()
		if more && !corked {
			c.w.cork()
			corked = true
		}
		if tooLarge {
			s.st.requests.Add(1)
			// Answer with the request's id when its start names one, so
			// that clients matching by id fail that call at once instead
			// of waiting for their timeout.
			c.reply(appendError(nil, leadingID(line), CodeMessageTooLarge,
				fmt.Sprintf("message exceeds max_message_size (%d bytes); skipped", s.cfg.MaxMessageSize)), CodeMessageTooLarge)
		} else {
			c.dispatch(line)
		}
		if !more && corked {
			c.w.uncork()
			corked = false
		}
	}
}

// wait waits for the handlers in flight and for what they and pushes
// queued to be written.
func (c *Conn) wait() {
	c.active.Wait()
	c.w.waitFlushed()
}

// busy reports whether handlers are running for this connection.
func (c *Conn) busy() bool { return c.nactive.Load() > 0 }

// drain finishes a connection at shutdown: in-flight responses are
// written, the write side is shut so the client reads EOF, and we wait
// (bounded by the server's exit deadline) for the client to close.
func (c *Conn) drain() {
	c.wait()
	c.nc.CloseWrite()
	s := c.s
	s.mu.Lock()
	deadline := s.deadline
	s.mu.Unlock()
	c.nc.SetReadDeadline(deadline)
	var buf [4096]byte
	for {
		if _, err := c.nc.Read(buf[:]); err != nil {
			return
		}
	}
}

// dispatch handles one line: protocol errors are answered here, requests
// go to their handler in a new goroutine.
func (c *Conn) dispatch(line []byte) {
	line = trimSpace(line)
	if len(line) == 0 {
		return
	}
	s := c.s
	s.st.requests.Add(1)
	var e envelope
	err := parseEnvelope(line, &e)
	if err != nil {
		s.log.Debug("jsonipc: bad request", "peer", c.peer.String(), "err", err)
		c.reply(appendError(nil, nil, CodeBadRequest, err.Error()), CodeBadRequest)
		return
	}
	var id []byte
	if truthy(e.id) {
		id = e.id
	}
	if !truthy(e.uri) {
		c.reply(appendError(nil, id, CodeNoURI, "Missing required uri parameter from request"), CodeNoURI)
		return
	}
	var uri string
	if u := e.uri; len(u) > 2 && u[0] == '"' && string(u[1:len(u)-1]) == c.lastURI && bytes.IndexByte(u, '\\') < 0 {
		uri = c.lastURI // clients mostly repeat a few uris: spare the string
	} else if uri, err = uriString(u); err == nil {
		c.lastURI = uri
	}
	if err != nil {
		c.reply(appendError(nil, id, CodeBadRequest, "uri: "+err.Error()), CodeBadRequest)
		return
	}
	rt := s.match(uri)
	if rt == nil {
		b := appendIDPrefix(nil, id)
		b = append(b, `,"data":{"code":"no_handler_found","message":`...)
		b = appendQuoted(b, "No handler found for "+uri)
		b = append(b, "}}\n"...)
		c.reply(b, CodeNoHandler)
		return
	}
	req := &c.inline
	*req = Request{URI: uri, ID: id, Data: e.data, Message: line, Peer: c.peer, conn: c}
	if s.cfg.SlowThreshold > 0 {
		req.start = time.Now()
	}
	c.active.Add(1)
	c.nactive.Add(1)
	s.st.inFlight.Add(1)
	if rt.inline != nil && rt.inline(req) {
		c.run(rt.h, req)
		return
	}
	// The line lives in the read buffer, which the next read reuses: copy
	// it for the handler, which runs concurrently.
	pooled, _ := s.reqs.Get().(*Request)
	if pooled == nil {
		pooled = new(Request)
	}
	*pooled = *req
	req = pooled
	buf := s.bufs.get()
	*buf = append((*buf)[:0], line...)
	own := *buf
	req.buf = buf
	req.Message = own
	if id != nil {
		req.ID = sub(own, line, id)
	}
	if e.data != nil {
		req.Data = sub(own, line, e.data)
	}
	go c.run(rt.h, req)
}

// sub returns the part of own that part is of line; own is a copy of line.
func sub(own, line, part []byte) []byte {
	off := cap(line) - cap(part)
	return own[off : off+len(part) : off+len(part)]
}

// run calls the handler and writes its response.
func (c *Conn) run(h Handler, req *Request) {
	s := c.s
	defer func() {
		s.st.inFlight.Add(-1)
		if c.nactive.Add(-1) == maxInFlight-1 {
			select {
			case c.slotFree <- struct{}{}:
			default:
			}
		}
		c.active.Done()
	}()
	var res any
	var err error
	out := s.bufs.get()
	b := appendIDPrefix((*out)[:0], req.ID)
	if _, ok := h.(echo); ok {
		if req.Data != nil {
			b = append(b, `,"data":`...)
			b = append(b, req.Data...)
		}
	} else {
		res, err = c.call(h, req)
		if noData(res) {
			res = nil
		}
	}
	code := ""
	if err == nil && res != nil {
		var merr error
		n := len(b)
		b = append(b, `,"data":`...)
		if b, merr = marshal(b, res); merr != nil {
			b = b[:n]
			err = fmt.Errorf("encoding response: %w", merr)
		}
	}
	if err != nil {
		var re *RemoteError
		if !errors.As(err, &re) {
			re = &RemoteError{Code: CodeHandlerError, Message: err.Error()}
			s.log.Warn("jsonipc: handler failed", "uri", req.URI, "peer", c.peer.String(), "err", err)
		}
		code = re.Code
		b = append(b, `,"code":`...)
		b = appendQuoted(b, re.Code)
		b = append(b, `,"message":`...)
		b = appendQuoted(b, re.Message)
	}
	b = append(b, "}\n"...)
	if s.cfg.SlowThreshold > 0 {
		if d := time.Since(req.start); d > s.cfg.SlowThreshold {
			s.st.slow.Add(1)
			s.log.Debug("jsonipc: slow response", "uri", req.URI, "duration", d)
		}
	}
	c.reply(b, code)
	*out = b
	s.bufs.put(out)
	if req.buf != nil {
		s.bufs.put(req.buf)
		*req = Request{}
		s.reqs.Put(req)
	}
}

func (c *Conn) call(h Handler, req *Request) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.s.log.Error("jsonipc: handler panicked", "uri", req.URI, "panic", p)
			res, err = nil, fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h.ServeIPC(c.ctx, req)
}

// reply writes one response; code is the error code it carries, if any.
func (c *Conn) reply(b []byte, code string) {
	if code != "" {
		c.s.st.error(code)
	}
	if err := c.w.write(b); err != nil {
		c.s.log.Debug("jsonipc: writing response failed", "peer", c.peer.String(), "err", err)
	}
}

// appendIDPrefix starts a response: {"ipcReqID":<id or null>
func appendIDPrefix(b, id []byte) []byte {
	b = append(b, `{"ipcReqID":`...)
	if id == nil {
		return append(b, "null"...)
	}
	return append(b, id...)
}

// appendError builds a whole top-level error line.
func appendError(b, id []byte, code, msg string) []byte {
	b = appendIDPrefix(b, id)
	b = append(b, `,"code":`...)
	b = appendQuoted(b, code)
	b = append(b, `,"message":`...)
	b = appendQuoted(b, msg)
	return append(b, "}\n"...)
}

// appendQuoted appends s as a JSON string, escaping only what JSON
// requires; invalid UTF-8 becomes U+FFFD as in encoding/json.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// noData reports whether v stands for "no data": nil, or a nil
// json.RawMessage such as the Data of a request that had none.
func noData(v any) bool {
	if raw, ok := v.(json.RawMessage); ok {
		return raw == nil
	}
	return v == nil
}

func validJSON(b []byte) bool {
	p := parser{b: b}
	p.skipWS()
	if p.value(0) != nil {
		return false
	}
	p.skipWS()
	return p.i == len(b)
}

func containsNewline(b []byte) bool {
	return bytes.IndexByte(b, '\n') >= 0 || bytes.IndexByte(b, '\r') >= 0
}
