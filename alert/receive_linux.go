//go:build linux

package alert

import (
	"context"
	"errors"
	"math"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm/mq"
)

// partial is a large alert being reassembled.
type partial struct {
	name string
	buf  []byte
	got  int
	last time.Time
}

// spinPolls is how many times the spinning receive goroutine looks at an
// empty inbox between two yields of its core. Few: when the sender it
// waits for runs on the same core (as on a busy machine), the alert can
// only come after a yield. A Send+Reply round trip between two spinning
// members that shared a core took 4.2 µs at the median with 64 looks
// per yield, 2.0 µs with 8, 1.85 µs with 4 and 1.74 µs with 1; with a
// core each, about 0.65 µs in every case.
const spinPolls = 4

// stallTimeout is how long a half-received large alert may wait for its
// next chunk before it is dropped (its sender gave up or stalled).
const stallTimeout = 30 * time.Second

// receive drains the inbox and runs handlers, one alert at a time, in
// inbox order, which is send order for each sender.
func (g *Group) receive() {
	defer g.wg.Done()
	hctx := context.WithValue(g.ctx, handlerCtxKey{}, g)
	partials := make(map[proc.ID]*partial)
	// Delivered is counted once per batch: an atomic add per alert costs
	// as much as the rest of its dispatch.
	delivered := 0
	fn := func(msg []byte) { delivered += g.handleMessage(hctx, msg, partials) }
	count := func() {
		if delivered > 0 {
			g.delivered.Add(uint64(delivered))
			delivered = 0
		}
	}
	defer count()
	var idleSince, lastSweep time.Time
	polls := 0
	for g.ctx.Err() == nil {
		if g.cfg.Spin > 0 {
			// Poll for up to Spin before sleeping (the inbox itself is made
			// to sleep at once: the spinning is done here, where it can
			// yield the core to other processes).
			n, err := g.inbox.TryReceiveBatch(fn)
			count()
			if err != nil {
				g.withdraw(err)
				return
			}
			if n > 0 {
				idleSince, polls = time.Time{}, 0
				// A receiver kept busy never reaches the blocking wait
				// below, so it sweeps here too, about once a second.
				if len(partials) > 0 {
					if now := time.Now(); now.Sub(lastSweep) >= time.Second {
						g.sweep(partials)
						lastSweep = now
					}
				}
				continue
			}
			if polls++; polls%spinPolls != 0 {
				continue
			}
			now := time.Now()
			if idleSince.IsZero() {
				idleSince = now
			}
			if now.Sub(idleSince) < g.cfg.Spin {
				// Give the core to another runnable process, if any (it may
				// be the very sender we wait for): spinning on an
				// oversubscribed machine otherwise costs a time slice.
				// A raw system call, as the runtime's own spin loops make
				// it: an ordinary one lets the scheduler hand this P to
				// another thread while the yield lasts, and take it back
				// after, which cost 5-8 % more CPU per 10 KB alert.
				unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
				continue
			}
		}
		ctx, cancel := g.ctx, context.CancelFunc(func() {})
		if len(partials) > 0 {
			ctx, cancel = context.WithTimeout(g.ctx, time.Second)
		}
		_, err := g.inbox.ReceiveBatch(ctx, fn)
		cancel()
		count()
		idleSince, polls = time.Time{}, 0
		if g.ctx.Err() != nil {
			return
		}
		if len(partials) > 0 {
			g.sweep(partials)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			g.withdraw(err)
			return
		}
	}
}

// withdraw handles an inbox this member can no longer read (the queue
// found a record it cannot trust, and reads no further): it takes the
// member out of the group's registry and unlinks the inbox, so that
// senders get ErrNoMember instead of filling an inbox that nobody reads.
// The Group stays open until Close, which releases the rest.
func (g *Group) withdraw(cause error) {
	if g.ctx.Err() != nil {
		return // closing anyway
	}
	g.log.Error("alert: inbox unusable; leaving the group", "group", g.name, "err", cause)
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	if err := g.reg.lock(ctx); err != nil {
		g.log.Error("alert: could not leave the group", "group", g.name, "err", err)
		return
	}
	if err := mq.Remove(g.inboxName); err != nil && !errors.Is(err, mq.ErrNotFound) {
		g.log.Error("alert: could not unlink the inbox", "group", g.name, "err", err)
	}
	g.reg.remove(g.self)
	g.reg.unlock()
	g.reg.bump() // wakes the members' watchers: sends to us now fail
}

// sweep drops reassemblies whose sender died or stalled.
func (g *Group) sweep(partials map[proc.ID]*partial) {
	now := time.Now()
	for id, pa := range partials {
		if !proc.Alive(id) || now.Sub(pa.last) > stallTimeout {
			delete(partials, id)
			g.dropped.Add(1)
			g.log.Warn("alert: dropped incomplete large alert", "group", g.name, "sender", id.PID, "name", pa.name, "received", pa.got, "size", len(pa.buf))
		}
	}
}

// handleMessage handles the records of one inbox message in order and
// returns how many reached a handler.
func (g *Group) handleMessage(ctx context.Context, msg []byte, partials map[proc.ID]*partial) (delivered int) {
	var r record
	for {
		// decodeRecord, with the slicing here (see parseRecord).
		nameEnd, end, err := parseRecord(msg, &r)
		if err != nil {
			g.dropped.Add(1)
			g.log.Error("alert: dropped record", "group", g.name, "err", err)
			return
		}
		r.name, r.data = msg[headerSize:nameEnd], msg[nameEnd:end]
		rest := msg[end:]
		if g.handleRecord(ctx, &r, partials) {
			delivered++
		}
		if len(rest) == 0 {
			return
		}
		msg = rest
	}
}

// handleRecord reports whether a handler ran.
func (g *Group) handleRecord(ctx context.Context, r *record, partials map[proc.ID]*partial) bool {
	sender := proc.ID{PID: int32(r.pid), Start: r.start}
	if r.kind == recWhole {
		return g.dispatch(ctx, r.name, "", r.data, sender)
	}
	pa := partials[sender]
	if r.offset == 0 {
		if pa != nil {
			g.dropped.Add(1) // a new transfer from the same sender means the old one was abandoned
		}
		if uint64(r.total) > uint64(math.MaxInt) {
			// Only where an int has 32 bits: make would panic.
			delete(partials, sender)
			g.dropped.Add(1)
			g.log.Warn("alert: dropped large alert too big for this platform", "group", g.name, "sender", sender.PID, "size", r.total)
			return false
		}
		pa = &partial{name: string(r.name), buf: make([]byte, r.total)}
		partials[sender] = pa
	}
	if pa == nil || int(r.offset) != pa.got || len(pa.buf) != int(r.total) {
		delete(partials, sender)
		g.dropped.Add(1)
		g.log.Warn("alert: dropped out-of-sequence chunk", "group", g.name, "sender", sender.PID, "offset", r.offset)
		return false
	}
	pa.got += copy(pa.buf[pa.got:], r.data)
	pa.last = time.Now()
	if pa.got == len(pa.buf) {
		delete(partials, sender)
		return g.dispatch(ctx, nil, pa.name, pa.buf, sender)
	}
	return false
}

// alertSlab is how many Alerts the receive goroutine allocates at once:
// 292 Alerts of 56 bytes fill the 16 KiB size class. Every alert still
// gets a distinct *Alert (so a stale one can never Reply for a later
// alert, and one kept past its handler keeps its Name and Sender), but the
// allocation is paid once per slab: its fixed cost is mostly a cache miss
// on memory the heap has not touched since the last collection, so larger
// slabs are cheaper per alert (4 KiB slabs cost 4% more CPU per 10-byte
// alert). The price is that an Alert kept past its handler keeps its
// whole slab, 16 KiB, alive.
const alertSlab = 292

// newAlert returns a fresh Alert, or with Config.ReuseAlerts the reused
// one. Only the receive goroutine calls it.
func (g *Group) newAlert() *Alert {
	if g.cfg.ReuseAlerts {
		return &g.reused
	}
	// An index, not a shrinking slice: storing an integer into the Group
	// needs no write barrier, storing a slice would at every alert.
	if g.slab == nil || g.slabUsed == alertSlab {
		g.slab, g.slabUsed = new([alertSlab]Alert), 0
	}
	a := &g.slab[g.slabUsed]
	g.slabUsed++
	return a
}

// maxOrigins bounds the receive goroutine's table of senders: past it the
// table starts over (Alerts still held keep their origins).
const maxOrigins = 4 * MaxMembers

// from returns the origin of alerts sent by id.
func (g *Group) from(id proc.ID) *origin {
	if g.lastFrom != nil && g.lastID == id {
		return g.lastFrom
	}
	o := g.origins[id]
	if o == nil {
		if g.origins == nil || len(g.origins) >= maxOrigins {
			g.origins = make(map[proc.ID]*origin)
		}
		o = &origin{g: g, start: id.Start}
		g.origins[id] = o
	}
	g.lastFrom, g.lastID = o, id
	return o
}

// handling reports whether a's handler is running.
func (g *Group) handling(a *Alert) bool { return loadCurrent(&g.current) == alertID(a) }

// dispatch runs the handler for one alert. name is either raw bytes from
// the inbox (looked up without allocating) or, for reassembled alerts, sname.
func (g *Group) dispatch(ctx context.Context, name []byte, sname string, data []byte, sender proc.ID) bool {
	t := g.handlers.load()
	var e handlerEntry
	var ok bool
	switch {
	case name != nil && t == g.last.tab && string(name) == g.last.e.name:
		// Alerts tend to come in runs of one name: skip hashing it.
		e, ok = g.last.e, true
	case name != nil:
		e, ok = t.byName[string(name)]
		if ok {
			g.last.tab, g.last.e = t, e
		}
	default:
		e, ok = t.byName[sname]
	}
	if !ok {
		g.unmatched.Add(1)
		if t.def == nil {
			return false
		}
		e.fn = t.def
		e.name = sname
		if name != nil {
			e.name = string(name)
		}
	}
	var a *Alert
	if name != nil {
		a = g.newAlert()
	} else {
		// A reassembled alert gets an Alert of its own, so that no slab
		// keeps its (possibly huge) buffer alive after the handler.
		a = new(Alert)
	}
	a.Name, a.Data, a.Sender, a.from = e.name, data, int(sender.PID), g.from(sender)
	storeCurrent(&g.current, alertID(a))
	g.call(ctx, e.fn, a)
	storeCurrent(&g.current, 0)
	return true
}

func (g *Group) call(ctx context.Context, fn HandlerFunc, a *Alert) {
	defer func() {
		if v := recover(); v != nil {
			g.panics.Add(1)
			g.log.Error("alert: handler panicked; still receiving", "group", g.name, "name", a.Name, "sender", a.Sender, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	fn(ctx, a)
}
