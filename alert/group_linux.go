//go:build linux

package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
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
	packs    sync.Pool // of *pack: SendMany's scratch space

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
	slab           *[alertSlab]Alert // fresh Alerts for the receive goroutine; see newAlert
	slabUsed       int               // how many of slab are handed out
	reused         Alert             // the one Alert of Config.ReuseAlerts
	// current is the alertID of the Alert whose handler runs, or 0; see
	// handling. Only the receive goroutine writes it.
	current uintptr
	// origins holds the receive goroutine's origin for each sender, and
	// lastFrom the one it used last (alerts come in runs from one sender).
	origins  map[proc.ID]*origin
	lastFrom *origin
	lastID   proc.ID
	// last is the receive goroutine's last successful handler lookup,
	// valid while tab is the current handler table.
	last struct {
		tab *handlerTable
		e   handlerEntry
	}
	delivered, unmatched, panics, dropped atomic.Uint64 // written by the receive goroutine
	_                                     cpu.CacheLinePad
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
	// joinedNano is joined as the slot stores it, for departed's check,
	// which runs twice per Send.
	joinedNano int64
	self       bool

	ctx    context.Context // ends when the peer dies or leaves
	cancel context.CancelFunc
	dead   atomic.Bool // set with cancel; cheaper to test than ctx.Err on every send
	pidfd  *os.File

	// The peer's registry slot, read by senders after each enqueue (see
	// departed). life is nil for this process and for a peer without a
	// lifeline; the pidfd watcher is then the only source of death news.
	slotPID    *uint32
	slotStart  *uint64
	slotJoined *int64
	life       *uint32

	// q is opened by the first send (qOnce) and closed by retire. Senders
	// use it without a lock: a closed Queue stays mapped while anyone
	// holds it and its calls return mq.ErrClosed, which put turns into the
	// right error. A lock here would cost two locked operations per send.
	q     *mq.Queue
	qErr  error // why the open failed; kept until the peer is retired
	qOnce sync.Once
	gone  atomic.Bool // retired: no queue is opened after this
	// big is held (a token in it) by the one chunked transfer at a time
	// per destination, so the receiver reassembles per sender; a channel,
	// not a mutex, so that the wait for it heeds ctx and the policy.
	big chan struct{}
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
	if c.Lanes < 0 || c.Lanes > MaxLanes {
		return nil, fmt.Errorf("alert: Lanes %d out of range (1..%d)", c.Lanes, MaxLanes)
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
	g.packs.New = func() any { return new(pack) }
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
	// The inbox sleeps as soon as it is empty: the receive goroutine does
	// the spinning (see receive), yielding the core as it goes. So the
	// inbox would fence its producers by default; a member that spins
	// sleeps seldom and lets them skip the fence, one that does not
	// would pay a membarrier per alert (see mq.Options.Fence).
	fence := mq.FenceConsumer
	if c.Spin < 0 {
		fence = mq.FenceProducers
	}
	inbox, err := mq.Create(g.inboxName, c.InboxSize, &mq.Options{Mode: c.Mode, MaxMessage: g.maxMsg, Spin: -1, Lanes: c.Lanes, Fence: fence})
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
	// Senders read the registry (the peers' slot words, the generation)
	// without a lock, so it must stay mapped while any call can still be
	// running: it is unmapped when the Group is garbage, not at Close,
	// which keeps every send free of a reference count.
	runtime.AddCleanup(g, func(r *registry) { r.close() }, reg)
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
		// leaving anyway): the kernel must not write into it any more.
		g.life.close()
		g.closeErr = errors.Join(g.closeErr, g.inbox.Close())
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
// of their registry slots. Members known to have died or left are not
// listed even before their slots are reclaimed, so that every member
// listed is one a Send could reach a moment ago.
func (g *Group) Members() []Member {
	t := g.table()
	out := make([]Member, 0, len(t.list))
	for _, p := range t.list {
		if !p.self && p.departed() {
			continue
		}
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
		// A member that left and joined again has the same id but a new
		// inbox (same name, new segment) and slot: the old peer's queue is
		// the unlinked inbox, so it must be retired, not kept.
		if p == nil || p.id != s.id || !p.joined.Equal(s.joined) {
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
	p := &peer{id: s.id, inbox: inboxName(g.name, s.id), maxMsg: s.maxMsg, joined: s.joined, joinedNano: s.joined.UnixNano(), self: s.id == g.self, big: make(chan struct{}, 1)}
	p.ctx, p.cancel = context.WithCancel(g.ctx)
	if !p.self {
		var life *uint32
		p.slotPID, p.slotStart, life = g.reg.slotWords(s.index)
		p.slotJoined = g.reg.slotJoined(s.index)
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
		atomic.LoadUint32(p.slotPID) != uint32(p.id.PID) || atomic.LoadUint64(p.slotStart) != p.id.Start ||
		atomic.LoadInt64(p.slotJoined) != p.joinedNano { // it left and joined again
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
