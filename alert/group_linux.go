//go:build linux

package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/internal/futex"
	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm"
	"github.com/procwire/procwire/shm/mq"
)

// Group is this process's membership in a named alert group. Its methods
// are safe for concurrent use.
type Group struct {
	name      string
	cfg       Config
	log       *slog.Logger
	self      proc.ID
	reg       *registry
	inbox     *mq.Queue
	inboxName string
	maxMsg    int
	life      *lifeline // nil if the kernel refused it; see lifeline

	handlers handlers
	bufs     sync.Pool // of *[]byte: encoding buffers for records too big for the stack

	peersMu sync.Mutex // serializes refresh
	peers   atomic.Pointer[peerTable]

	ctx    context.Context // ends at Close; handlers and watchers run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// The fields above are read on every send. Senders and the receive
	// goroutine, which run on different cores, write the ones below at
	// every send or message: each group gets cache lines of its own, or
	// every write would take the line from the other side.
	_              cpu.CacheLinePad
	sent, rejected atomic.Uint64 // written by senders
	_              cpu.CacheLinePad
	slab           []Alert // fresh Alerts for the receive goroutine; see newAlert
	// last is the receive goroutine's last successful handler lookup,
	// valid while tab is the current handler table.
	last struct {
		tab *handlerTable
		e   handlerEntry
	}
	delivered, unmatched, panics, dropped atomic.Uint64 // written by the receive goroutine
	_                                     cpu.CacheLinePad

	// selfSync exists for the race detector only: it cannot see the
	// synchronization of the inbox ring (atomics on shared memory outside
	// the Go heap), so an alert sent to oneself would look like a race
	// between the sender's earlier writes and the handler. An atomic add
	// before enqueueing and a load before dispatching give it the
	// happens-before edge that the ring really provides.
	selfSync atomic.Uint64
}

// peerTable is an immutable snapshot of the membership, swapped on change.
type peerTable struct {
	gen   uint32
	byPID map[int]*peer
	list  []*peer // registry order
}

// peer is another member (or this one) as seen by this process.
type peer struct {
	id     proc.ID
	inbox  string
	maxMsg int
	joined time.Time
	self   bool

	ctx    context.Context // ends when the peer dies or leaves
	cancel context.CancelFunc
	dead   atomic.Bool // set with cancel; cheaper to test than ctx.Err on every send
	pidfd  *os.File

	// The peer's registry slot, read by senders after each enqueue (see
	// departed). life is nil for this process and for a peer without a
	// lifeline; the pidfd watcher is then the only source of death news.
	slotPID   *uint32
	slotStart *uint64
	life      *uint32

	// q is opened by the first send (qOnce) and closed by retire. Senders
	// use it without a lock: a closed Queue stays mapped while anyone
	// holds it and its calls return mq.ErrClosed, which put turns into the
	// right error. A lock here would cost two locked operations per send.
	q     *mq.Queue
	qErr  error // why the open failed; kept until the peer is retired
	qOnce sync.Once
	gone  atomic.Bool // retired: no queue is opened after this
	bigMu sync.Mutex  // one chunked transfer at a time per destination, so the receiver reassembles per sender
}

type handlerCtxKey struct{}

// Join makes the calling process a member of group, creating the group if
// it has no members. ctx bounds the wait for the group's registry lock.
// The member receives alerts until Close; handlers from cfg may run before
// Join returns. A process joins a given group once (ErrAlreadyMember).
// Join also removes what killed members of any group left in /dev/shm.
func Join(ctx context.Context, group string, cfg *Config) (*Group, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	if c.InboxSize < MinInboxSize {
		return nil, fmt.Errorf("alert: inbox size %d is below the minimum %d", c.InboxSize, MinInboxSize)
	}
	if c.FullPolicy != Block && c.FullPolicy != Fail {
		return nil, fmt.Errorf("alert: unknown FullPolicy %d", c.FullPolicy)
	}
	g := &Group{
		name:   group,
		cfg:    c,
		log:    c.Logger,
		self:   proc.Self(),
		maxMsg: c.InboxSize / 4,
	}
	g.inboxName = inboxName(group, g.self)
	g.bufs.New = func() any { return new([]byte) }
	g.HandleMap(c.Handlers)
	if c.Default != nil {
		g.HandleDefault(c.Default)
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())

	collectGarbage(ctx, g.log)
	if l, err := startLifeline(); err != nil {
		// Senders then learn of this process's death from its pidfd only.
		g.log.Debug("alert: no robust futex list; deaths are noticed by pidfd only", "group", group, "err", err)
	} else {
		g.life = l
	}
	reg, err := openRegistry(ctx, group, c.Mode)
	if err != nil {
		g.life.close()
		g.cancel()
		return nil, err
	}
	// The registry stays locked until this member is in it, so that
	// nobody prunes its inbox (made below) in between.
	reg.prune()
	fail := func(err error) (*Group, error) {
		if len(reg.members()) == 0 {
			reg.markRemoved() // do not leave behind a registry we may have created
		}
		reg.unlock()
		g.life.close()
		reg.close()
		g.cancel()
		return nil, err
	}
	for _, s := range reg.members() {
		if s.id == g.self {
			return fail(fmt.Errorf("%w: this process is already a member of group %q", ErrAlreadyMember, group))
		}
	}
	// A previous incarnation cannot own this name (the start time is in
	// it), so anything there is garbage from a crashed Join of ours.
	_ = mq.Remove(g.inboxName)
	inbox, err := mq.Create(g.inboxName, c.InboxSize, &mq.Options{Mode: c.Mode, MaxMessage: g.maxMsg})
	if err != nil {
		return fail(fmt.Errorf("alert: create inbox: %w", err))
	}
	if err := reg.add(slot{id: g.self, maxMsg: g.maxMsg, joined: time.Now()}, g.life); err != nil {
		inbox.Close()
		mq.Remove(g.inboxName)
		return fail(err)
	}
	reg.unlock()
	g.inbox = inbox
	g.reg = reg
	g.peers.Store(&peerTable{gen: reg.generation() - 1}) // forces the first refresh
	g.refresh()
	g.wg.Add(2)
	go g.receive()
	go g.watchMembership()
	return g, nil
}

// Close leaves the group: other members stop seeing this process, its
// inbox is removed (alerts still in it are discarded), and its goroutines
// end. It must not be called from a handler. Close is idempotent.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.reg.lock(ctx); err != nil {
			g.closeErr = err
		} else {
			// Unlink the inbox before giving up the slot: if this process
			// dies in between, the slot outlives it and whoever prunes it
			// finds the inbox already gone, rather than an orphan inbox
			// that no slot points to.
			if err := mq.Remove(g.inboxName); err != nil && !errors.Is(err, mq.ErrNotFound) {
				g.closeErr = err
			}
			g.reg.prune()
			if g.reg.remove(g.self) {
				g.reg.markRemoved()
			}
			g.reg.unlock()
		}
		g.cancel()
		g.reg.bump() // wakes our membership watcher even if the lock failed
		// refresh bails out once ctx is canceled, so after this no peer
		// (and no pidfd watcher) can appear.
		g.peersMu.Lock()
		for _, p := range g.peers.Load().list {
			g.retire(p)
		}
		g.peersMu.Unlock()
		g.wg.Wait()
		// The slot is gone (or, if the lock failed, this process is
		// leaving anyway); the kernel must not write into the registry
		// once it is unmapped.
		g.life.close()
		g.closeErr = errors.Join(g.closeErr, g.inbox.Close())
		g.closeErr = errors.Join(g.closeErr, g.reg.close())
	})
	return g.closeErr
}

// Leave is Close.
func (g *Group) Leave() error { return g.Close() }

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// PID returns this member's pid.
func (g *Group) PID() int { return int(g.self.PID) }

// Stats returns a snapshot of this member's counters.
func (g *Group) Stats() Stats {
	return Stats{
		Sent:      g.sent.Load(),
		Delivered: g.delivered.Load(),
		Unmatched: g.unmatched.Load(),
		Panics:    g.panics.Load(),
		Rejected:  g.rejected.Load(),
		Dropped:   g.dropped.Load(),
	}
}

// ListMembers lists the members of group without joining it; a group
// that does not exist has none.
func ListMembers(ctx context.Context, group string) ([]Member, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	seg, err := shm.Attach(registryName(group), &shm.Options{Kind: shm.KindAlert, Version: regVersion})
	if errors.Is(err, shm.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("alert: open registry of group %q: %w", group, err)
	}
	defer seg.Close()
	r := newRegistry(group, seg)
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	slots := r.members()
	r.unlock()
	self := proc.Self()
	out := make([]Member, 0, len(slots))
	for _, s := range slots {
		if proc.Alive(s.id) {
			out = append(out, Member{PID: int(s.id.PID), Joined: s.joined, Self: s.id == self})
		}
	}
	return out, nil
}

// Members lists the current members, this process included, in the order
// of their registry slots.
func (g *Group) Members() []Member {
	t := g.table()
	out := make([]Member, 0, len(t.list))
	for _, p := range t.list {
		out = append(out, Member{PID: int(p.id.PID), Joined: p.joined, Self: p.self})
	}
	return out
}

// table returns the current membership, refreshing it if the registry changed.
func (g *Group) table() *peerTable {
	t := g.peers.Load()
	if t.gen != g.reg.generation() && !g.closed.Load() {
		t = g.refresh()
	}
	return t
}

// refresh rereads the registry and publishes a new peer table, keeping the
// peers that stayed, creating (and watching) new ones and retiring the gone.
func (g *Group) refresh() *peerTable {
	g.peersMu.Lock()
	defer g.peersMu.Unlock()
	old := g.peers.Load()
	gen := g.reg.generation()
	if old.gen == gen || g.ctx.Err() != nil {
		return old
	}
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	err := g.reg.lock(ctx)
	cancel()
	if err != nil {
		return old // closing, or the registry is wedged; keep what we know
	}
	gen = g.reg.generation()
	slots := g.reg.members()
	g.reg.unlock()

	t := &peerTable{gen: gen, byPID: make(map[int]*peer, len(slots))}
	for _, s := range slots {
		p := old.byPID[int(s.id.PID)]
		if p == nil || p.id != s.id {
			p = g.newPeer(s)
		}
		t.byPID[int(s.id.PID)] = p
		t.list = append(t.list, p)
	}
	g.peers.Store(t)
	for _, p := range old.list {
		if t.byPID[int(p.id.PID)] != p {
			g.retire(p)
		}
	}
	return t
}

// end marks the peer dead or departed and wakes sends waiting for room in its inbox.
func (p *peer) end() {
	p.dead.Store(true)
	p.cancel()
}

func (g *Group) newPeer(s slot) *peer {
	p := &peer{id: s.id, inbox: inboxName(g.name, s.id), maxMsg: s.maxMsg, joined: s.joined, self: s.id == g.self}
	p.ctx, p.cancel = context.WithCancel(g.ctx)
	if !p.self {
		var life *uint32
		p.slotPID, p.slotStart, life = g.reg.slotWords(s.index)
		if atomic.LoadUint32(life) != 0 {
			p.life = life
		}
		g.watchPeer(p)
	}
	return p
}

// departed reports whether p has died or left, by what senders can see
// without a system call: the flag the pidfd watcher sets, then the life
// word in p's registry slot (set by the kernel the moment p dies, before
// its pidfd says so) and the slot's identity, which changes if p left and
// someone else took the slot. The loads are ordered against the writes of
// registry.add: a new occupant's life word is visible only together with
// its start time.
func (p *peer) departed() bool {
	if p.dead.Load() {
		return true
	}
	if p.life == nil {
		return false
	}
	if atomic.LoadUint32(p.life)&ownerDied != 0 ||
		atomic.LoadUint32(p.slotPID) != uint32(p.id.PID) || atomic.LoadUint64(p.slotStart) != p.id.Start {
		p.end()
		return true
	}
	return false
}

// watchPeer notices the death of p at once: a pidfd becomes readable when
// its process exits, and Go's poller parks the goroutine until then.
func (g *Group) watchPeer(p *peer) {
	fd, err := unix.PidfdOpen(int(p.id.PID), unix.PIDFD_NONBLOCK)
	if err == nil && !proc.Alive(p.id) {
		// The pid was reused between the registry read and the open.
		unix.Close(fd)
		err = unix.ESRCH
	}
	if err != nil {
		p.end()
		g.wg.Add(1)
		go func() { defer g.wg.Done(); g.peerDied(p) }()
		return
	}
	p.pidfd = os.NewFile(uintptr(fd), "pidfd")
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		exited := false
		err := rc.Read(func(fd uintptr) bool {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(pfd, 0)
			exited = n > 0
			return exited
		})
		if err == nil && exited {
			p.end()
			g.peerDied(p)
		}
	}()
}

// peerDied removes a dead member from the registry so every member forgets it.
func (g *Group) peerDied(p *peer) {
	if g.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	if g.reg.lock(ctx) != nil {
		return
	}
	n := g.reg.prune()
	g.reg.unlock()
	if n > 0 {
		g.log.Debug("alert: pruned dead members", "group", g.name, "count", n, "noticed", p.id.PID)
	}
}

// retire closes what this process holds for a peer that left or died,
// after in-flight sends to it (which its ctx cancels) are done.
func (g *Group) retire(p *peer) {
	p.end()
	if p.pidfd != nil {
		p.pidfd.Close() // ends the watcher goroutine
	}
	p.gone.Store(true)
	// After this Do, no send can open the queue any more (queue checks
	// gone inside its Do), and p.q is whatever the one open made.
	p.qOnce.Do(func() { p.qErr = errRetired })
	if p.q != nil {
		p.q.Close()
	}
}

// watchMembership refreshes the peer table whenever the registry's
// generation changes, so deaths and joins are seen without polling.
func (g *Group) watchMembership() {
	defer g.wg.Done()
	for g.ctx.Err() == nil {
		gen := g.reg.generation()
		if gen != g.peers.Load().gen {
			g.refresh()
			continue
		}
		_ = futex.Wait(g.reg.gen, gen, time.Second)
	}
}

// Send delivers an alert to the member with the given pid (which may be
// this process: the alert then goes through this member's own inbox and
// its handler runs later on the receive goroutine, never inside Send). It
// returns once the alert is in the destination's inbox. Errors: the
// ngx.ipc length errors (ErrNameTooLong, ErrDataTooLong), "no worker
// process with PID N" (ErrNoMember) for a pid that is not a live member,
// ErrBackpressure when the inbox is full under the Fail policy, or ctx's
// error when the wait for room under the Block policy ends.
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
	// The record is the same for every member: encode it once, not once
	// per member (for large alerts the encoding is a copy of the data).
	size := recordSize(len(name), len(data))
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	var rec []byte
	var errs []error
	for _, p := range g.table().list {
		var r []byte // nil for a member whose inbox needs the alert chunked
		if size <= p.maxMsg {
			if rec == nil {
				rec = slices.Grow((*bp)[:0], size)[:size]
				*bp = rec
				putRecord(rec, recWhole, uint32(g.self.PID), g.self.Start, uint32(len(data)), 0, name, data)
			}
			r = rec
		}
		err := g.deliver(ctx, p, name, data, r)
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
// did not fit, and none after them.
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

// packSize bounds the inbox messages SendMany builds: large enough that the
// ring's per-message cost vanishes, small enough to stay in cache and to
// let the receiver start on a pack early.
const packSize = 64 << 10

func (g *Group) deliverMany(ctx context.Context, p *peer, msgs []Message) (int, error) {
	q, err := g.open(p)
	if err != nil {
		return 0, err
	}
	if raceEnabled && p.self {
		g.selfSync.Add(1)
	}
	limit := min(p.maxMsg, packSize)
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0] }() // keep what the buffer grew to
	sent, packed := 0, 0
	flush := func() error {
		if packed == 0 {
			return nil
		}
		if p.departed() {
			// It died after an earlier pack: say so rather than fill a dead inbox.
			return noMember(int(p.id.PID))
		}
		if err := g.put(ctx, p, q, buf, g.cfg.FullPolicy); err != nil {
			return err
		}
		if p.departed() {
			return noMember(int(p.id.PID))
		}
		g.sent.Add(uint64(packed))
		sent += packed
		packed, buf = 0, buf[:0]
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
		if len(buf)+size > limit {
			if err := flush(); err != nil {
				return sent, err
			}
		}
		n := len(buf)
		// Grow, then reslice: appending zeros would clear every byte
		// that putRecord is about to write anyway.
		buf = slices.Grow(buf, size)[:n+size]
		putRecord(buf[n:], recWhole, uint32(g.self.PID), g.self.Start, uint32(len(m.Data)), 0, m.Name, m.Data)
		packed++
	}
	return sent, flush()
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
	return g.deliver(ctx, p, name, data, nil)
}

// lookup finds the member pid; a non-zero start also requires it to be
// that very process.
func (g *Group) lookup(pid int, start uint64) (*peer, error) {
	p := g.peers.Load().byPID[pid]
	if p == nil || p.departed() {
		// Maybe it joined (or we learned of a death) after our last look.
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

// stackRecord is the size of records encoded on the stack (zeroed on every
// call, so kept small); larger ones use a pooled buffer.
const stackRecord = 192

// deliver sends one alert to p. rec, if not nil, is the alert already
// encoded as a whole record (Broadcast encodes once for all members).
func (g *Group) deliver(ctx context.Context, p *peer, name string, data, rec []byte) error {
	q, err := g.open(p)
	if err != nil {
		return err
	}
	if raceEnabled && p.self {
		g.selfSync.Add(1)
	}
	size := recordSize(len(name), len(data))
	if size > p.maxMsg {
		return g.deliverChunked(ctx, p, q, name, data)
	}
	var stack [stackRecord]byte
	var b []byte
	switch {
	case rec != nil:
		b = rec
	case size <= len(stack):
		b = stack[:size]
	default:
		bp := g.bufs.Get().(*[]byte)
		defer g.bufs.Put(bp)
		if cap(*bp) < size {
			*bp = make([]byte, size)
		}
		b = (*bp)[:size]
	}
	if rec == nil {
		putRecord(b, recWhole, uint32(g.self.PID), g.self.Start, uint32(len(data)), 0, name, data)
	}
	if err := g.put(ctx, p, q, b, g.cfg.FullPolicy); err != nil {
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
	p.bigMu.Lock()
	defer p.bigMu.Unlock()
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	need := recordSize(len(name), min(chunk, len(data)))
	if cap(*bp) < need {
		*bp = make([]byte, need)
	}
	policy := g.cfg.FullPolicy
	for off := 0; off < len(data); off += chunk {
		if p.departed() {
			return noMember(int(p.id.PID))
		}
		part := data[off:min(off+chunk, len(data))]
		b := (*bp)[:recordSize(len(name), len(part))]
		putRecord(b, recChunk, uint32(g.self.PID), g.self.Start, uint32(len(data)), uint32(off), name, part)
		if err := g.put(ctx, p, q, b, policy); err != nil {
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

// put enqueues one record: a non-blocking try first (the common case costs
// no allocation), then the policy.
func (g *Group) put(ctx context.Context, p *peer, q *mq.Queue, b []byte, policy FullPolicy) error {
	err := q.TrySend(b)
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
	err = q.Send(wctx, b)
	stop()
	cancel()
	switch {
	case err == nil:
		return nil
	case p.dead.Load() && ctx.Err() == nil:
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

// errRetired is queue's error for a peer retired before its first send;
// open reports it as ErrNoMember.
var errRetired = mq.ErrNotFound

// queue opens the peer's inbox once.
func (p *peer) queue() (*mq.Queue, error) {
	p.qOnce.Do(func() {
		if p.gone.Load() {
			p.qErr = errRetired
			return
		}
		p.q, p.qErr = mq.Open(p.inbox, nil)
	})
	return p.q, p.qErr
}

// partial is a large alert being reassembled.
type partial struct {
	name string
	buf  []byte
	got  int
	last time.Time
}

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
	// A canceled context makes ReceiveBatch a non-blocking poll: it looks
	// at the ring (and spins briefly) but never sleeps.
	poll, stopPoll := context.WithCancel(context.Background())
	stopPoll()
	var idleSince time.Time
	for g.ctx.Err() == nil {
		if g.cfg.Spin > 0 {
			n, err := g.inbox.ReceiveBatch(poll, fn)
			count()
			if n > 0 {
				idleSince = time.Time{}
				continue
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				g.log.Error("alert: receive failed; inbox unusable", "group", g.name, "err", err)
				return
			}
			now := time.Now()
			if idleSince.IsZero() {
				idleSince = now
			}
			if now.Sub(idleSince) < g.cfg.Spin {
				// Give the core to another runnable process, if any (it may
				// be the very sender we wait for): spinning on an
				// oversubscribed machine otherwise costs a time slice.
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
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
		idleSince = time.Time{}
		if g.ctx.Err() != nil {
			return
		}
		if len(partials) > 0 {
			g.sweep(partials)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			g.log.Error("alert: receive failed; inbox unusable", "group", g.name, "err", err)
			return
		}
	}
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
	if raceEnabled {
		g.selfSync.Load()
	}
	var r record
	for {
		rest, err := decodeRecord(msg, &r)
		if err != nil {
			g.dropped.Add(1)
			g.log.Error("alert: dropped record", "group", g.name, "err", err)
			return
		}
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

// alertSlab is how many Alerts the receive goroutine allocates at once.
// Every alert still gets a distinct *Alert (so a stale one can never Reply
// for a later alert), but the allocation is paid once per slab.
const alertSlab = 64

// newAlert returns a fresh Alert. Only the receive goroutine calls it.
func (g *Group) newAlert() *Alert {
	if len(g.slab) == 0 {
		g.slab = make([]Alert, alertSlab)
	}
	a := &g.slab[0]
	g.slab = g.slab[1:]
	return a
}

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
	a.Name, a.Data, a.Sender, a.senderStart, a.g = e.name, data, int(sender.PID), sender.Start, g
	g.call(ctx, e.fn, a)
	a.done.Store(true)
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
