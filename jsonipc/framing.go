package jsonipc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

const (
	minReadBuf  = 16 << 10 // first read buffer of a connection
	keepReadBuf = 1 << 20  // a larger buffer is dropped once it is empty
)

// lineReader splits a byte stream into '\n'-terminated lines. It reads
// as much as the kernel has in one call, so many small lines cost one
// read, and a line split across reads is joined. A line longer than max
// is reported once and its bytes are skipped up to the next '\n'.
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int // unconsumed bytes are buf[start:end]
	scan       int // buf[start:scan] is known to hold no '\n'
	max        int
	discarding bool  // inside an oversized line
	err        error // read error, returned once buffered lines are done
	nread      int64 // bytes read so far
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: r, max: max}
}

// next returns the next line without its '\n'. The slice is valid until
// the following call. tooLarge is true when a line exceeded max; line
// then holds as much of its start as was buffered (at least max bytes),
// so that the caller can find the request's id to answer it, and the
// rest of the line is skipped. At the end
// of the stream an unterminated last line is dropped, as pixl-ipc does,
// and err is io.EOF.
func (l *lineReader) next() (line []byte, tooLarge bool, err error) {
	for {
		if i := bytes.IndexByte(l.buf[l.scan:l.end], '\n'); i >= 0 {
			nl := l.scan + i
			line = l.buf[l.start:nl]
			l.start, l.scan = nl+1, nl+1
			if l.discarding {
				l.discarding = false
				continue
			}
			if len(line) > l.max {
				return line, true, nil
			}
			return line, false, nil
		}
		l.scan = l.end
		if l.discarding {
			l.start, l.end, l.scan = 0, 0, 0
		} else if l.end-l.start > l.max {
			// The bytes stay in buf until the next read overwrites them,
			// which is after the caller is done with the start.
			start := l.buf[l.start:l.end]
			l.discarding = true
			l.start, l.end, l.scan = 0, 0, 0
			return start, true, nil
		}
		if err := l.err; err != nil {
			// Not sticky: after a read deadline the caller may read on.
			l.err = nil
			return nil, false, err
		}
		l.makeRoom()
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		l.nread += int64(n)
		if err != nil {
			l.err = err
		}
	}
}

// hasLine reports whether a complete line is already buffered, so that
// next will return it without reading.
func (l *lineReader) hasLine() bool {
	i := bytes.IndexByte(l.buf[l.scan:l.end], '\n')
	if i < 0 {
		l.scan = l.end
		return false
	}
	l.scan += i // buf[start:scan] still holds no '\n'; next finds it at once
	return true
}

// makeRoom ensures free space after end: it drops consumed bytes, and
// grows the buffer (up to what max needs) only when a single line fills it.
func (l *lineReader) makeRoom() {
	if l.start == l.end {
		l.start, l.end, l.scan = 0, 0, 0
		if cap(l.buf) > keepReadBuf {
			l.buf = nil
		}
	}
	if l.buf == nil {
		l.buf = make([]byte, minReadBuf)
	}
	if l.end < len(l.buf) {
		return
	}
	if l.start > 0 {
		n := copy(l.buf, l.buf[l.start:l.end])
		l.scan -= l.start
		l.start, l.end = 0, n
		if l.end < len(l.buf) {
			return
		}
	}
	// One line fills the whole buffer: grow, but never far past max+1,
	// which is enough to tell that a line is too long.
	size := 2 * len(l.buf)
	if limit := l.max + 2; size > limit {
		size = limit
	}
	if size <= len(l.buf) {
		size = len(l.buf) + minReadBuf
	}
	nb := make([]byte, size)
	copy(nb, l.buf[:l.end])
	l.buf = nb
}

// trimSpace removes JSON whitespace around a line; it makes "\r\n"
// endings and blank lines harmless.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// batchWriter queues whole messages for one connection and writes them
// with as few system calls as possible: the goroutine that finds the
// connection idle writes, and whatever other goroutines queue meanwhile
// goes out together in its next write. There is no extra goroutine and
// no timer: output is flushed as soon as nothing is being written.
type batchWriter struct {
	c        net.Conn
	mu       sync.Mutex
	buf      []byte // queued, not yet handed to the kernel
	spare    []byte
	flushing bool
	corked   bool // hold output: the reader has more requests to answer first
	err      error
	timeout  time.Duration // bound on each wait for write progress; 0 => none
	onFail   func(error)   // called once when a write fails, may be nil
	failOnce sync.Once
	written  func(n int) // accounting hook, may be nil
	// drained, when not nil, is signalled whenever the queue falls to
	// backpressureBytes or below, or the connection fails.
	drained chan struct{}
	// flushed, when not nil, is broadcast whenever flushing ends.
	flushed *sync.Cond
}

// backpressureBytes is how much unsent output a connection may queue
// before the server stops reading its requests: a client that sends
// without reading cannot make the server buffer without bound.
const backpressureBytes = 1 << 20

// write queues p (a whole message) and flushes unless another goroutine
// is already flushing, in which case that one will send p too.
func (w *batchWriter) write(p []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if w.corked && !w.flushing {
		w.buf = append(w.buf, p...)
		w.mu.Unlock()
		return nil
	}
	if !w.flushing && len(w.buf) == 0 {
		// Idle connection: write p itself, sparing a copy of big messages.
		w.flushing = true
		w.mu.Unlock()
		n, err := w.put(p)
		if w.written != nil {
			w.written(n)
		}
		w.mu.Lock()
		if err != nil {
			w.err = err
			w.buf = nil
			w.flushing = false
			w.signalFlushed()
			w.signalLocked()
			w.mu.Unlock()
			return err
		}
		if len(w.buf) == 0 {
			w.flushing = false
			w.signalFlushed()
			w.mu.Unlock()
			return nil
		}
		// Others queued meanwhile: flush them below, as the flusher.
		return w.flushLocked()
	}
	w.buf = append(w.buf, p...)
	if w.flushing {
		w.mu.Unlock()
		return nil
	}
	w.flushing = true
	return w.flushLocked()
}

// post queues p (a whole message) and returns at once: a new goroutine
// flushes it if nobody is writing, so that the caller, who may be pushing
// to many connections, never waits for a client that does not read.
func (w *batchWriter) post(p []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.buf = append(w.buf, p...)
	if w.flushing || w.corked {
		w.mu.Unlock()
		return nil
	}
	w.flushing = true
	w.mu.Unlock()
	go func() {
		w.mu.Lock()
		w.flushLocked()
	}()
	return nil
}

// put writes p to the connection. The timeout bounds each wait for
// progress, not the whole write (as nginx's send_timeout): a peer that
// reads a large message slowly but steadily is not cut off, one that has
// stopped reading is. On failure the onFail hook runs once.
func (w *batchWriter) put(p []byte) (int, error) {
	if w.timeout <= 0 {
		n, err := w.c.Write(p)
		w.fail(err)
		return n, err
	}
	total := 0
	for {
		w.c.SetWriteDeadline(time.Now().Add(w.timeout))
		n, err := w.c.Write(p[total:])
		total += n
		if err == nil || n == 0 || !isTimeout(err) {
			w.fail(err)
			return total, err
		}
	}
}

// isTimeout reports whether err is a deadline expiring. It is a function
// of its own so that the error's escaping target is allocated only when a
// write has failed, not on every write.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (w *batchWriter) fail(err error) {
	if err != nil && w.onFail != nil {
		w.failOnce.Do(func() { w.onFail(err) })
	}
}

// signalLocked tells a reader waiting in waitDrained to look again.
func (w *batchWriter) signalLocked() {
	if w.err != nil || len(w.buf) <= backpressureBytes {
		select {
		case w.drained <- struct{}{}:
		default:
		}
	}
}

// backlogged reports whether more than backpressureBytes wait to be sent
// on a connection that still works.
func (w *batchWriter) backlogged() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err == nil && len(w.buf) > backpressureBytes
}

// queued returns how many bytes wait to be sent.
func (w *batchWriter) queued() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.buf))
}

func (w *batchWriter) signalFlushed() {
	if w.flushed != nil {
		w.flushed.Broadcast()
	}
}

// waitFlushed waits until no goroutine is writing, so that output a
// push queued is not cut by closing the connection.
func (w *batchWriter) waitFlushed() {
	w.mu.Lock()
	for w.flushing {
		w.flushed.Wait()
	}
	w.mu.Unlock()
}

// waitDrained blocks while the connection is backlogged. It returns when
// the client has read enough or the connection failed (a shutdown
// closes it at the latest after the exit timeout).
func (w *batchWriter) waitDrained() {
	for w.backlogged() {
		<-w.drained
	}
}

// cork holds output until uncork: the connection's reader calls it while
// it still has buffered requests to answer, so that their responses, and
// those of handlers finishing meanwhile, go out in one write.
func (w *batchWriter) cork() {
	w.mu.Lock()
	w.corked = true
	w.mu.Unlock()
}

// uncork writes what cork held back.
func (w *batchWriter) uncork() {
	w.mu.Lock()
	w.corked = false
	if w.flushing || len(w.buf) == 0 || w.err != nil {
		w.mu.Unlock()
		return
	}
	w.flushing = true
	w.flushLocked()
}

// flushLocked writes queued output until none is left. It is called with
// w.mu held and flushing set, and returns with both released.
func (w *batchWriter) flushLocked() error {
	var err error
	for len(w.buf) > 0 {
		out := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		var n int
		n, err = w.put(out)
		if w.written != nil {
			w.written(n)
		}
		w.mu.Lock()
		if cap(out) <= keepReadBuf {
			w.spare = out[:0]
		} else {
			w.spare = nil
		}
		if err != nil {
			w.err = err
			w.buf = nil
		}
		w.signalLocked()
		if err != nil {
			break
		}
	}
	w.flushing = false
	w.signalFlushed()
	w.mu.Unlock()
	return err
}

// bufPool recycles the scratch buffers requests are copied into and
// responses are built in. The zero value is ready to use.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if cap(*b) > keepReadBuf {
		return // let big one-off buffers go
	}
	*b = (*b)[:0]
	bp.p.Put(b)
}
