//go:build linux

package alert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"github.com/procwire/procwire/shm/mq"
)

// Send delivers an alert to the member with the given pid (which may be
// this process: the alert then goes through this member's own inbox and
// its handler runs later on the receive goroutine, never inside Send). It
// returns once the alert is in the destination's inbox. Errors: the
// ngx.ipc length errors (ErrNameTooLong, ErrDataTooLong), "no worker
// process with PID N" (ErrNoMember) for a pid that is not a live member or
// that died before the alert was safely in its inbox, ErrBackpressure when
// the inbox is full under the Fail policy, or ctx's error when the wait
// for room under the Block policy ends.
func (g *Group) Send(ctx context.Context, pid int, name string, data []byte) error {
	return g.send(ctx, pid, 0, name, data)
}

// Broadcast sends the alert to every member, this process included, one
// after another: under the Block policy a full inbox delays the members
// after it. It tries every member even if some fail and returns the
// failures joined; members that die during the broadcast are skipped.
func (g *Group) Broadcast(ctx context.Context, name string, data []byte) error {
	if err := checkAlert(name, len(data)); err != nil {
		return err
	}
	if g.closed.Load() {
		return ErrClosed
	}
	var errs []error
	for _, p := range g.table().list {
		err := g.deliver(ctx, p, name, data)
		if err != nil && !errors.Is(err, ErrNoMember) {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// SendMany sends msgs to the member with the given pid, in order, as Send
// would one by one, but packs consecutive alerts into few inbox messages so
// that the cost of reserving room in the shared ring is paid once per pack
// (up to 64 KiB) rather than once per alert; for small alerts that is
// several times faster. Like Send it holds nothing back: when it returns,
// every alert it counts as sent is in the destination's inbox. It returns
// how many alerts were sent, always a prefix of msgs, and fewer than
// len(msgs) only with an error, one of Send's. The limits are checked for
// every alert before any is sent. A pack is accepted or refused whole, so
// under the Fail policy a full inbox refuses the alerts of the pack that
// did not fit, and none after them. A call that carries more than the
// destination's inbox holds from one sender (Config.InboxSize) waits for
// the receiver in its middle; for large alerts, calls of at most half of
// that keep several destinations busy at once.
func (g *Group) SendMany(ctx context.Context, pid int, msgs []Message) (int, error) {
	for i, m := range msgs {
		if err := checkAlert(m.Name, len(m.Data)); err != nil {
			return 0, fmt.Errorf("alert %d: %w", i, err)
		}
	}
	if g.closed.Load() {
		return 0, ErrClosed
	}
	p, err := g.lookup(pid, 0)
	if err != nil {
		return 0, err
	}
	return g.deliverMany(ctx, p, msgs)
}

// send delivers to pid; a non-zero start also requires the member to be
// that very process (Reply uses it so a reused pid is not mistaken).
func (g *Group) send(ctx context.Context, pid int, start uint64, name string, data []byte) error {
	if err := checkAlert(name, len(data)); err != nil {
		return err
	}
	if g.closed.Load() {
		return ErrClosed
	}
	p, err := g.lookup(pid, start)
	if err != nil {
		return err
	}
	return g.deliver(ctx, p, name, data)
}

// lookup finds the member pid; a non-zero start also requires it to be
// that very process.
func (g *Group) lookup(pid int, start uint64) (*peer, error) {
	t := g.peers.Load()
	p := t.byPID[pid]
	if p == nil || p.dead.Load() || t.gen != g.reg.generation() {
		// Maybe it joined (or we learned of a death) after our last look,
		// or it left and joined again: same id, but a new inbox.
		// (The full test, departed, comes in open and after the enqueue.)
		p = g.table().byPID[pid]
	}
	if p == nil || (start != 0 && p.id.Start != start) {
		return nil, noMember(pid)
	}
	return p, nil
}

// open returns the inbox of p, a live member.
func (g *Group) open(p *peer) (*mq.Queue, error) {
	if p.departed() {
		return nil, noMember(int(p.id.PID))
	}
	q, err := p.queue()
	if err != nil {
		if errors.Is(err, mq.ErrNotFound) {
			return nil, noMember(int(p.id.PID))
		}
		return nil, fmt.Errorf("alert: open inbox of PID %d: %w", p.id.PID, err)
	}
	return q, nil
}

// stringBytes returns the bytes of s without copying them. The queue only
// reads the parts it is given, so handing it a string's bytes this way
// saves copying every alert name into a buffer first.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// deliver sends one alert to p: its record header, name and data go
// straight into the inbox as the three parts of one message, so the data
// is copied once, into the ring.
func (g *Group) deliver(ctx context.Context, p *peer, name string, data []byte) error {
	q, err := g.open(p)
	if err != nil {
		return err
	}
	if recordSize(len(name), len(data)) > p.maxMsg {
		return g.deliverChunked(ctx, p, q, name, data)
	}
	var h [headerSize]byte
	putHeader(h[:], recWhole, len(name), uint32(g.self.PID), g.self.Start, uint32(len(data)), 0)
	if err := g.put(ctx, p, q, g.cfg.FullPolicy, h[:], stringBytes(name), data); err != nil {
		return err
	}
	if p.departed() {
		return noMember(int(p.id.PID))
	}
	g.sent.Add(1)
	return nil
}

// deliverChunked sends an alert bigger than the destination's largest
// message as consecutive chunk records. The policy applies to the first
// chunk; once a transfer has started, later chunks wait for room (bounded
// by ctx and the destination's life) so that a Fail policy cannot cut an
// alert in half needlessly.
func (g *Group) deliverChunked(ctx context.Context, p *peer, q *mq.Queue, name string, data []byte) error {
	chunk := p.maxMsg - headerSize - len(name)
	if chunk < 1 {
		return fmt.Errorf("alert: inbox of PID %d too small for a name of %d bytes", p.id.PID, len(name))
	}
	policy := g.cfg.FullPolicy
	if err := g.lockBig(ctx, p, policy); err != nil {
		return err
	}
	defer func() { <-p.big }()
	var h [headerSize]byte
	for off := 0; off < len(data); off += chunk {
		if p.departed() {
			return noMember(int(p.id.PID))
		}
		part := data[off:min(off+chunk, len(data))]
		putHeader(h[:], recChunk, len(name), uint32(g.self.PID), g.self.Start, uint32(len(data)), uint32(off))
		if err := g.put(ctx, p, q, policy, h[:], stringBytes(name), part); err != nil {
			return err
		}
		policy = Block
	}
	if p.departed() {
		return noMember(int(p.id.PID))
	}
	g.sent.Add(1)
	return nil
}

// lockBig waits for p's other chunked transfer, if any, to end. That one
// may be waiting for room itself, so the wait is the policy's: none under
// Fail (or for a handler sending to its own inbox, which would wait for
// itself), else until ctx ends or p is gone.
func (g *Group) lockBig(ctx context.Context, p *peer, policy FullPolicy) error {
	select {
	case p.big <- struct{}{}:
		return nil
	default:
	}
	if policy == Fail || (p.self && ctx.Value(handlerCtxKey{}) == g) {
		g.rejected.Add(1)
		return fmt.Errorf("%w: PID %d", ErrBackpressure, p.id.PID)
	}
	select {
	case p.big <- struct{}{}:
		return nil
	case <-ctx.Done():
	case <-p.ctx.Done():
	}
	switch {
	case g.closed.Load() && ctx.Err() == nil:
		return ErrClosed
	case ctx.Err() == nil:
		return noMember(int(p.id.PID))
	}
	g.rejected.Add(1)
	return fmt.Errorf("alert: send to PID %d: %w", p.id.PID, ctx.Err())
}

// packSize bounds the inbox messages SendMany builds: large enough that the
// ring's per-message cost vanishes, small enough to stay in cache and to
// let the receiver start on a pack early.
const packSize = 64 << 10

// inlineData is the largest alert payload that SendMany copies into its
// pack buffer; larger payloads are handed to the queue as parts of their
// own, so that they are copied once, into the ring, not twice.
const inlineData = 256

// pack is SendMany's scratch space, pooled: the encoded records of the
// pack being built (headers, names and small payloads back to back) and
// the large payloads that go between them.
type pack struct {
	buf   []byte
	cuts  []cut    // large payloads, each after buf[:at]
	parts [][]byte // the message, assembled by flush
	n     int      // alerts in the pack
	size  int      // bytes in the pack
}

type cut struct {
	at   int
	data []byte
}

func (k *pack) reset() {
	clear(k.cuts) // drop references to the callers' payloads
	clear(k.parts)
	k.buf, k.cuts, k.parts, k.n, k.size = k.buf[:0], k.cuts[:0], k.parts[:0], 0, 0
}

// add appends a whole record for m.
func (k *pack) add(pid uint32, start uint64, m Message) {
	n := len(k.buf)
	inline := len(m.Data) <= inlineData
	size := recordSize(len(m.Name), 0)
	if inline {
		size += len(m.Data)
	}
	// Grow, then reslice: appending zeros would clear every byte that is
	// about to be written anyway.
	k.buf = slices.Grow(k.buf, size)[:n+size]
	b := k.buf[n:]
	putHeader(b, recWhole, len(m.Name), pid, start, uint32(len(m.Data)), 0)
	c := copy(b[headerSize:], m.Name)
	if inline {
		copy(b[headerSize+c:], m.Data)
	} else {
		k.cuts = append(k.cuts, cut{at: len(k.buf), data: m.Data})
	}
	k.n++
	k.size += recordSize(len(m.Name), len(m.Data))
}

// message returns the pack as the parts of one inbox message.
func (k *pack) message() [][]byte {
	if len(k.cuts) == 0 {
		k.parts = append(k.parts[:0], k.buf)
		return k.parts
	}
	at := 0
	for _, c := range k.cuts {
		k.parts = append(k.parts, k.buf[at:c.at], c.data)
		at = c.at
	}
	k.parts = append(k.parts, k.buf[at:])
	return k.parts
}

func (g *Group) deliverMany(ctx context.Context, p *peer, msgs []Message) (int, error) {
	q, err := g.open(p)
	if err != nil {
		return 0, err
	}
	limit := min(p.maxMsg, packSize)
	k := g.packs.Get().(*pack)
	defer func() {
		k.reset()
		g.packs.Put(k)
	}()
	sent := 0
	flush := func() error {
		if k.n == 0 {
			return nil
		}
		if p.departed() {
			// It died after an earlier pack: say so rather than fill a dead inbox.
			return noMember(int(p.id.PID))
		}
		if err := g.put(ctx, p, q, g.cfg.FullPolicy, k.message()...); err != nil {
			return err
		}
		if p.departed() {
			return noMember(int(p.id.PID))
		}
		g.sent.Add(uint64(k.n))
		sent += k.n
		k.reset()
		return nil
	}
	for _, m := range msgs {
		size := recordSize(len(m.Name), len(m.Data))
		if size > p.maxMsg {
			if err := flush(); err != nil {
				return sent, err
			}
			if err := g.deliverChunked(ctx, p, q, m.Name, m.Data); err != nil {
				return sent, err
			}
			sent++
			continue
		}
		if k.size+size > limit {
			if err := flush(); err != nil {
				return sent, err
			}
		}
		k.add(uint32(g.self.PID), g.self.Start, m)
	}
	return sent, flush()
}

// put enqueues one message made of parts: a non-blocking try first (the
// common case costs no allocation), then the policy.
func (g *Group) put(ctx context.Context, p *peer, q *mq.Queue, policy FullPolicy, parts ...[]byte) error {
	err := q.TrySendParts(parts...)
	if err == nil {
		return nil
	}
	if !errors.Is(err, mq.ErrFull) {
		return g.sendErr(p, err)
	}
	// A handler that blocks on its own full inbox would wait for itself forever.
	if policy == Fail || (p.self && ctx.Value(handlerCtxKey{}) == g) {
		g.rejected.Add(1)
		return fmt.Errorf("%w: PID %d", ErrBackpressure, p.id.PID)
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.ctx, cancel)
	err = q.SendParts(wctx, parts...)
	stop()
	cancel()
	switch {
	case err == nil:
		return nil
	case g.closed.Load() && ctx.Err() == nil:
		// Close retired every peer, cancelling the wait through p.ctx.
		return ErrClosed
	case (p.dead.Load() || p.ctx.Err() != nil) && ctx.Err() == nil:
		return noMember(int(p.id.PID))
	case errors.Is(err, mq.ErrClosed):
		return g.sendErr(p, err)
	default:
		g.rejected.Add(1)
		return fmt.Errorf("alert: send to PID %d: %w", p.id.PID, err)
	}
}

// sendErr explains a failed enqueue: a queue closed under a send means the
// peer was retired (it left or died) or this Group closed.
func (g *Group) sendErr(p *peer, err error) error {
	if errors.Is(err, mq.ErrClosed) {
		if g.closed.Load() {
			return ErrClosed
		}
		return noMember(int(p.id.PID))
	}
	return fmt.Errorf("alert: send to PID %d: %w", p.id.PID, err)
}
