//go:build linux

package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// checkGoroutines fails the test if goroutines started during it are still
// running at its end (after the Groups it joined are closed).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// checkLeaks fails the test if it leaves goroutines or file descriptors
// behind. Call it first, so that its check runs after every other cleanup.
func checkLeaks(t *testing.T) {
	// The runtime's poller opens its two descriptors (epoll and an
	// eventfd) at the process's first pollable file, which may be the
	// test's own child pipes: have them open before counting, so that a
	// test that runs first does not count them as leaked.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	fds := countFDs(t)
	checkGoroutines(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for countFDs(t) > fds {
			if time.Now().After(deadline) {
				t.Errorf("fds: %d before, %d after", fds, countFDs(t))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// recv receives from ch, failing the test after a generous safety timeout.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a value")
		panic("unreachable")
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestSendReplyBetweenProcesses(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	got := make(chan *Alert, 1)
	g := join(t, group, &Config{Handlers: map[string]HandlerFunc{
		"pong": func(ctx context.Context, a *Alert) {
			got <- &Alert{Name: a.Name, Data: bytes.Clone(a.Data), Sender: a.Sender}
		},
	}})
	c := startChild(t, group, "echo", 0, 0)
	if !hasMember(g, c.pid) || !hasMember(g, os.Getpid()) {
		t.Fatalf("members %v lack child %d or self", pidsOf(g.Members()), c.pid)
	}
	ctx := context.Background()
	if err := g.Send(ctx, c.pid, "ping", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.Name != "pong" || string(a.Data) != "hello" || a.Sender != c.pid {
			t.Fatalf("got %+v", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no reply")
	}
	c.stop(t)
	waitFor(t, "child to leave", func() bool { return !hasMember(g, c.pid) })
	err := g.Send(ctx, c.pid, "ping", nil)
	if !errors.Is(err, ErrNoMember) || err.Error() != "no worker process with PID "+strconv.Itoa(c.pid) {
		t.Fatalf("send to departed member: %v", err)
	}
}

func TestLimits(t *testing.T) {
	group := testGroup(t)
	g := join(t, group, nil)
	ctx := context.Background()
	err := g.Send(ctx, os.Getpid(), strings.Repeat("n", 255), nil)
	if !errors.Is(err, ErrNameTooLong) || err.Error() != "alert name length cannot exceed 254, was 255" {
		t.Errorf("255-byte name: %v", err)
	}
	if err := g.Send(ctx, os.Getpid(), strings.Repeat("n", 254), nil); err != nil {
		t.Errorf("254-byte name: %v", err)
	}
	// A slice one byte over the limit, backed by address space that may
	// not even be read (PROT_NONE): the length must be refused before
	// anything touches the data.
	over := uint64(MaxData) + 1
	if over > math.MaxInt {
		t.Skip("an int cannot hold a length over MaxData here")
	}
	huge, err := unix.Mmap(-1, 0, int(over), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(huge)
	err = g.Send(ctx, os.Getpid(), "x", huge)
	if !errors.Is(err, ErrDataTooLong) || err.Error() != "alert data length cannot exceed 4294967040, was 4294967041" {
		t.Errorf("oversize data: %v", err)
	}
	if err := g.Broadcast(ctx, "x", huge); !errors.Is(err, ErrDataTooLong) {
		t.Errorf("oversize broadcast: %v", err)
	}
	err = g.Send(ctx, 1<<30, "x", nil)
	if !errors.Is(err, ErrNoMember) || err.Error() != "no worker process with PID 1073741824" {
		t.Errorf("unknown pid: %v", err)
	}
	if _, err := Join(ctx, "bad.name", nil); !errors.Is(err, ErrInvalidGroup) {
		t.Errorf("bad group name: %v", err)
	}
	for _, cfg := range []*Config{{InboxSize: 100}, {FullPolicy: 7}} {
		if _, err := Join(ctx, group+"-cfg", cfg); err == nil {
			t.Errorf("Join with %+v succeeded", *cfg)
		}
	}
}

// Ordering per sender→receiver pair under load: several children send
// numbered alerts to us through a small inbox (so senders block often).
func TestOrderPerSenderUnderLoad(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	const senders, each = 3, 20000
	var seq seqCheck
	join(t, group, &Config{InboxSize: MinInboxSize, Handlers: map[string]HandlerFunc{
		"seq": func(ctx context.Context, a *Alert) {
			seq.see(a.Sender, binary.LittleEndian.Uint64(a.Data), "")
		},
	}})
	for range senders {
		startChild(t, group, "seq", each, 0)
	}
	seq.wait(t, senders, each)
}

// seqCheck checks that numbered alerts arrive in order per sender, and
// collects the first problems for the test to report.
type seqCheck struct {
	mu    sync.Mutex
	next  map[int]uint64
	errs  []string
	total atomic.Int64
}

// see records alert n from sender; damage, if not empty, is a problem the
// handler found in its data.
func (c *seqCheck) see(sender int, n uint64, damage string) {
	c.mu.Lock()
	if c.next == nil {
		c.next = map[int]uint64{}
	}
	if n != c.next[sender] {
		c.fail(fmt.Sprintf("sender %d: got %d want %d", sender, n, c.next[sender]))
	}
	if damage != "" {
		c.fail(fmt.Sprintf("sender %d: alert %d %s", sender, n, damage))
	}
	c.next[sender] = n + 1
	c.mu.Unlock()
	c.total.Add(1)
}

func (c *seqCheck) fail(msg string) {
	if len(c.errs) < 10 {
		c.errs = append(c.errs, msg)
	}
}

// wait waits for each alerts from each of senders, then checks them.
func (c *seqCheck) wait(t *testing.T, senders, each int) {
	t.Helper()
	waitFor(t, "all alerts", func() bool { return c.total.Load() == int64(senders*each) })
	c.check(t, senders)
}

// check fails on any problem seen, or alerts from other than senders senders.
func (c *seqCheck) check(t *testing.T, senders int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		t.Fatal(strings.Join(c.errs, "\n"))
	}
	if len(c.next) != senders {
		t.Fatalf("alerts from %d senders, want %d", len(c.next), senders)
	}
}

// SendMany keeps the per-sender order across packs, alerts of every size
// (small ones packed together, large ones chunked between them) and
// senders, through an inbox small enough to fill again and again: with a
// lane per sender, and with one lane that the senders share.
func TestSendManyOrder(t *testing.T) {
	for _, lanes := range []int{0, 1} {
		t.Run(fmt.Sprintf("lanes=%d", lanes), func(t *testing.T) { testSendManyOrder(t, lanes) })
	}
}

func testSendManyOrder(t *testing.T, lanes int) {
	checkLeaks(t)
	group := testGroup(t)
	const senders, each = 3, 20000
	var seq seqCheck
	join(t, group, &Config{InboxSize: MinInboxSize, Lanes: lanes, Handlers: map[string]HandlerFunc{
		"seq": func(ctx context.Context, a *Alert) {
			n := binary.LittleEndian.Uint64(a.Data)
			want := 0
			switch {
			case n%50 == 49:
				want = 3 * MinInboxSize / 4
			case n%7 == 3:
				want = inlineData + 50
			}
			var damage string
			if rest := a.Data[8:]; len(rest) != want || bytes.Count(rest, []byte{byte(n)}) != len(rest) {
				damage = fmt.Sprintf("damaged (%d bytes, want %d)", len(rest), want)
			}
			seq.see(a.Sender, n, damage)
		},
	}})
	for range senders {
		startChild(t, group, "seqmany", each, 0)
	}
	seq.wait(t, senders, each)
}

// Every member gets a broadcast alert whole, whether it fits one inbox
// message or goes in chunks.
func TestBroadcastIntact(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	type got struct {
		sender int
		data   []byte
	}
	ch := make(chan got, 16)
	g := join(t, group, &Config{Handlers: map[string]HandlerFunc{
		"digest": func(ctx context.Context, a *Alert) { ch <- got{a.Sender, bytes.Clone(a.Data)} },
	}})
	c1 := startChild(t, group, "echo", 0, 0)
	c2 := startChild(t, group, "echo", 0, 0)
	waitFor(t, "members", func() bool { return len(g.Members()) == 3 })
	for _, size := range []int{1000, 3 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		if err := g.Broadcast(context.Background(), "digest", data); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data)
		for range 3 {
			r := recv(t, ch)
			switch {
			case r.sender == g.PID():
				if !bytes.Equal(r.data, data) {
					t.Errorf("size %d: own copy damaged", size)
				}
			case !bytes.Equal(r.data[:32], want[:]) || binary.LittleEndian.Uint64(r.data[32:]) != uint64(size):
				t.Errorf("size %d: member %d got another alert", size, r.sender)
			}
		}
	}
	c1.stop(t)
	c2.stop(t)
}

// SendMany checks every alert's limits before sending any.
func TestSendManyLimits(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	var got atomic.Int64
	g := join(t, group, &Config{Handlers: map[string]HandlerFunc{"ok": func(ctx context.Context, a *Alert) { got.Add(1) }}})
	msgs := []Message{{Name: "ok"}, {Name: strings.Repeat("x", MaxName+1)}}
	if n, err := g.SendMany(context.Background(), g.PID(), msgs); n != 0 || !errors.Is(err, ErrNameTooLong) {
		t.Fatalf("SendMany = %d, %v; want 0, ErrNameTooLong", n, err)
	}
	if n, err := g.SendMany(context.Background(), 1<<30, msgs[:1]); n != 0 || !errors.Is(err, ErrNoMember) {
		t.Fatalf("SendMany to a stranger = %d, %v; want 0, ErrNoMember", n, err)
	}
	if n, err := g.SendMany(context.Background(), g.PID(), []Message{{Name: "ok"}, {Name: "ok", Data: []byte("x")}}); n != 2 || err != nil {
		t.Fatalf("SendMany = %d, %v; want 2, nil", n, err)
	}
	waitFor(t, "both alerts", func() bool { return got.Load() == 2 })
}

// A large alert is chunked through the 4 MiB inbox and arrives whole.
func TestLargeAlertIntact(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	size := 300 << 20
	if testing.Short() {
		size = 40 << 20
	}
	got := make(chan []byte, 1)
	g := join(t, group, &Config{Handlers: map[string]HandlerFunc{
		"digest": func(ctx context.Context, a *Alert) { got <- bytes.Clone(a.Data) },
	}})
	c := startChild(t, group, "echo", 0, 0)
	data := make([]byte, size)
	for i := 0; i < len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], uint64(i)*0x9E3779B97F4A7C15)
	}
	want := sha256.Sum256(data)
	if err := g.Send(context.Background(), c.pid, "digest", data); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b[:32], want[:]) || binary.LittleEndian.Uint64(b[32:]) != uint64(size) {
			t.Fatalf("receiver saw %d bytes with another digest", binary.LittleEndian.Uint64(b[32:]))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no digest")
	}
	c.stop(t)
}

// Sending to oneself, even from a handler, goes through the inbox: the
// handler of the second alert never runs inside the first.
func TestSelfSendAsync(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	var running atomic.Bool
	var nested atomic.Bool
	var count atomic.Int32
	var g *Group
	g = join(t, group, &Config{Handlers: map[string]HandlerFunc{
		"first": func(ctx context.Context, a *Alert) {
			running.Store(true)
			defer running.Store(false)
			for range 2 {
				if err := g.Send(ctx, g.PID(), "second", nil); err != nil {
					t.Error(err)
				}
			}
		},
		"second": func(ctx context.Context, a *Alert) {
			if running.Load() {
				nested.Store(true)
			}
			count.Add(1)
		},
	}})
	if err := g.Send(context.Background(), g.PID(), "first", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both self-sent alerts", func() bool { return count.Load() == 2 })
	if nested.Load() {
		t.Fatal("self-sent alert handled inside the sending handler")
	}
}

func TestPanickingHandlerKeepsReceiving(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	var logs syncBuffer
	var ok atomic.Int32
	g := join(t, group, &Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Handlers: map[string]HandlerFunc{
			"boom": func(ctx context.Context, a *Alert) { panic("kaboom") },
			"ok":   func(ctx context.Context, a *Alert) { ok.Add(1) },
		},
	})
	ctx := context.Background()
	for range 3 {
		g.Send(ctx, g.PID(), "boom", nil)
		g.Send(ctx, g.PID(), "ok", nil)
	}
	waitFor(t, "alerts after panics", func() bool { return ok.Load() == 3 })
	if s := g.Stats(); s.Panics != 3 {
		t.Errorf("Panics = %d, want 3", s.Panics)
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Errorf("panic not logged: %q", logs.String())
	}
}

func TestUnmatchedAndDefault(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	g := join(t, group, nil)
	ctx := context.Background()
	g.Send(ctx, g.PID(), "nobody", nil)
	waitFor(t, "unmatched count", func() bool { return g.Stats().Unmatched == 1 })
	names := make(chan string, 1)
	g.HandleDefault(func(ctx context.Context, a *Alert) { names <- a.Name })
	g.Send(ctx, g.PID(), "stranger", []byte("x"))
	if n := recv(t, names); n != "stranger" {
		t.Fatalf("default handler got %q", n)
	}
	// A named handler wins over the default; nil deletes it again.
	named := make(chan string, 1)
	g.Handle("stranger", func(ctx context.Context, a *Alert) { named <- a.Name })
	g.Send(ctx, g.PID(), "stranger", nil)
	recv(t, named)
	// A replaced handler takes effect for the next alert of the name,
	// even though the receiver remembers its last lookup.
	replaced := make(chan string, 1)
	g.Handle("stranger", func(ctx context.Context, a *Alert) { replaced <- a.Name })
	g.Send(ctx, g.PID(), "stranger", nil)
	recv(t, replaced)
	g.Handle("stranger", nil)
	g.Send(ctx, g.PID(), "stranger", nil)
	recv(t, names)
	// Delivered is counted when the handler returns, just after it sent on the channel.
	waitFor(t, "3 unmatched, 4 delivered", func() bool { s := g.Stats(); return s.Unmatched == 3 && s.Delivered == 4 })
}

// Reply is only possible while the handler runs (with ReuseAlerts: until
// the next alert's handler starts).
func TestReplyAfterHandler(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("reuse=%v", reuse), func(t *testing.T) {
			group := testGroup(t)
			kept := make(chan *Alert, 1)
			g := join(t, group, &Config{ReuseAlerts: reuse, Default: func(ctx context.Context, a *Alert) { kept <- a }})
			g.Send(context.Background(), g.PID(), "x", nil)
			a := recv(t, kept)
			waitFor(t, "handler return", func() bool { return !g.handling(a) })
			if err := a.Reply(context.Background(), "y", nil); !errors.Is(err, ErrNotInHandler) {
				t.Fatalf("late reply: %v", err)
			}
		})
	}
}

// Alerts kept past their handlers, more than one slab of them, stay
// distinct and keep their Name and Sender, and none of them can Reply,
// while a Reply inside a handler, also from a goroutine it waits for,
// works.
func TestKeptAlerts(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	const n = 2*alertSlab + 5
	kept := make(chan *Alert, n)
	replied := make(chan error, n)
	g := join(t, group, &Config{Default: func(ctx context.Context, a *Alert) {
		var wg sync.WaitGroup
		wg.Go(func() { replied <- a.Reply(ctx, "reply", nil) })
		wg.Wait()
		kept <- a
	}})
	g.Handle("reply", func(ctx context.Context, a *Alert) {})
	ctx := context.Background()
	for i := range n {
		if err := g.Send(ctx, g.PID(), fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[*Alert]bool)
	var all []*Alert
	for range n {
		a := recv(t, kept)
		if err := recv(t, replied); err != nil {
			t.Fatalf("reply from a goroutine the handler waited for: %v", err)
		}
		if seen[a] {
			t.Fatalf("alert %q: *Alert handed out twice", a.Name)
		}
		seen[a] = true
		all = append(all, a)
	}
	runtime.GC() // the slabs must survive as long as their Alerts are held
	for i, a := range all {
		if want := fmt.Sprintf("k%d", i); a.Name != want || a.Sender != g.PID() {
			t.Errorf("kept alert %d: name %q sender %d, want %q %d", i, a.Name, a.Sender, want, g.PID())
		}
		waitFor(t, "handler return", func() bool { return !g.handling(a) })
		if err := a.Reply(ctx, "reply", nil); !errors.Is(err, ErrNotInHandler) {
			t.Fatalf("kept alert %d: late reply: %v", i, err)
		}
	}
	var zero Alert
	if err := zero.Reply(ctx, "x", nil); !errors.Is(err, ErrNotInHandler) {
		t.Errorf("reply through a zero Alert: %v", err)
	}
}

// A slab of Alerts fits its size class: that is what its length is for.
func TestAlertSlabSize(t *testing.T) {
	const class = 16 << 10
	if size := unsafe.Sizeof(Alert{}) * alertSlab; size > class || size+unsafe.Sizeof(Alert{}) <= class {
		t.Errorf("a slab of %d Alerts of %d bytes takes %d bytes; want the most that fit %d", alertSlab, unsafe.Sizeof(Alert{}), size, class)
	}
}

// With ReuseAlerts every handler call gets the same *Alert, refilled with
// each alert's name, data and sender, and Reply works inside the handler.
func TestReuseAlerts(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	const n = 5000
	var (
		first   *Alert
		next    uint64
		errs    []string
		handled atomic.Int64
	)
	fail := func(format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	var sender atomic.Int64
	join(t, group, &Config{ReuseAlerts: true, Handlers: map[string]HandlerFunc{
		"seq": func(ctx context.Context, a *Alert) {
			if first == nil {
				first = a
				sender.Store(int64(a.Sender))
			}
			if a != first {
				fail("alert %d: a new *Alert", next)
			}
			if got := binary.LittleEndian.Uint64(a.Data); got != next || a.Name != "seq" || int64(a.Sender) != sender.Load() {
				fail("alert %d: got %q %d from %d", next, a.Name, got, a.Sender)
			}
			if next%1000 == 0 {
				if err := a.Reply(ctx, "ping", nil); err != nil {
					fail("reply in handler: %v", err)
				}
			}
			next++
			handled.Add(1)
		},
	}})
	c := startChild(t, group, "seq", n, 0)
	waitFor(t, "all alerts", func() bool { return handled.Load() == n })
	c.stop(t)
	if sender.Load() != int64(c.pid) {
		t.Errorf("alerts from %d, want %d", sender.Load(), c.pid)
	}
	if len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
}

// A full inbox blocks or fails by policy, never grows.
func TestBackpressure(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	g := join(t, group, &Config{FullPolicy: Fail})
	c := startChild(t, group, "echo", 0, MinInboxSize)
	ctx := context.Background()
	if err := g.Send(ctx, c.pid, "stall", nil); err != nil {
		t.Fatal(err)
	}
	var err error
	data := make([]byte, 1000)
	sent := 0
	for ; sent < 1000; sent++ {
		if err = g.Send(ctx, c.pid, "fill", data); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrBackpressure) {
		t.Fatalf("after %d sends: %v, want ErrBackpressure", sent, err)
	}
	if sent*1000 > MinInboxSize {
		t.Fatalf("%d KB accepted by a %d KB inbox", sent, MinInboxSize>>10)
	}
	if g.Stats().Rejected != 1 {
		t.Errorf("Rejected = %d", g.Stats().Rejected)
	}

	// With the Block policy the same send waits until its context ends.
	g.cfg.FullPolicy = Block
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := g.Send(tctx, c.pid, "fill", data); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocking send on full inbox: %v", err)
	}

	// A sender blocked on a member that dies gets ErrNoMember.
	errc := make(chan error, 1)
	go func() { errc <- g.Send(ctx, c.pid, "fill", data) }()
	time.Sleep(50 * time.Millisecond)
	c.kill()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNoMember) {
			t.Fatalf("blocked send to killed member: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("send blocked on a dead member")
	}
	waitFor(t, "dead member pruned", func() bool { return !hasMember(g, c.pid) })
}

// kill -9 of members mid-stream: senders of large (chunked) alerts and
// receivers; the group keeps working and forgets them.
func TestKillMidSend(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	var floods atomic.Int64
	// Receivers killed mid-stream leave pongs behind; only the fresh
	// member's pong at the end matters.
	var fresh atomic.Int64
	freshPong := make(chan struct{}, 1)
	g := join(t, group, &Config{Handlers: map[string]HandlerFunc{
		"flood": func(ctx context.Context, a *Alert) { floods.Add(1) },
		"pong": func(ctx context.Context, a *Alert) {
			if int64(a.Sender) == fresh.Load() {
				select {
				case freshPong <- struct{}{}:
				default:
				}
			}
		},
	}})
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	for i := range rounds {
		// A sender of 3 MiB alerts (chunked through 1 MiB messages), killed mid-transfer.
		s := startChild(t, group, "flood", 3<<20, 0)
		before := floods.Load()
		waitFor(t, "flood", func() bool { return floods.Load() > before })
		time.Sleep(time.Duration(i) * time.Millisecond)
		s.kill()

		// A receiver killed while we send to it: with Send in even rounds,
		// with SendMany (packs of 8) in odd ones.
		r := startChild(t, group, "echo", 0, MinInboxSize)
		errc := make(chan error, 1)
		many := make([]Message, 8)
		for k := range many {
			many[k] = Message{Name: "ping", Data: make([]byte, 512)}
		}
		go func() {
			for {
				var err error
				if i%2 == 0 {
					err = g.Send(context.Background(), r.pid, "ping", make([]byte, 512))
				} else {
					_, err = g.SendMany(context.Background(), r.pid, many)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(time.Duration(i) * time.Millisecond)
		r.kill()
		if err := <-errc; !errors.Is(err, ErrNoMember) {
			t.Fatalf("round %d: send to killed receiver: %v", i, err)
		}
	}
	// The group still works with a fresh member.
	c := startChild(t, group, "echo", 0, 0)
	fresh.Store(int64(c.pid))
	if err := g.Send(context.Background(), c.pid, "ping", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-freshPong:
	case <-time.After(20 * time.Second):
		t.Fatal("no pong from a fresh member")
	}
	c.stop(t)
	waitFor(t, "only us left", func() bool { return len(g.Members()) == 1 })
}

// Members join and die while broadcasts flow; every live member gets them
// and the membership converges.
func TestMembershipChurn(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	pongs := make(chan int, 1024)
	g := join(t, group, &Config{Handlers: map[string]HandlerFunc{
		"pong": func(ctx context.Context, a *Alert) { pongs <- a.Sender },
		"ping": func(ctx context.Context, a *Alert) {},
	}})
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	var live []*child
	ctx := context.Background()
	for i := range rounds {
		live = append(live, startChild(t, group, "echo", 0, 0))
		if i%2 == 1 {
			live[0].kill()
			live = live[1:]
		}
		if err := g.Broadcast(ctx, "ping", []byte{byte(i)}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		want := map[int]bool{}
		for _, c := range live {
			want[c.pid] = true
		}
		for len(want) > 0 {
			select {
			case p := <-pongs:
				delete(want, p)
			case <-time.After(20 * time.Second):
				t.Fatalf("round %d: no pong from %v", i, want)
			}
		}
	}
	waitFor(t, "membership", func() bool { return len(g.Members()) == len(live)+1 })
	for _, c := range live {
		c.stop(t)
	}
	waitFor(t, "only us left", func() bool { return len(g.Members()) == 1 })
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// What a group whose only member was killed leaves in /dev/shm is removed
// by the next Join of any group.
func TestGarbageOfKilledGroupCollected(t *testing.T) {
	dead := testGroup(t)
	leftovers := func() []string {
		inboxes, _ := filepath.Glob("/dev/shm/procwire.alert." + dead + ".*")
		reg, _ := filepath.Glob("/dev/shm/procwire.alert." + dead)
		return append(reg, inboxes...)
	}
	c := startChild(t, dead, "echo", 0, 0)
	c.kill()
	if left := leftovers(); len(left) != 2 {
		t.Fatalf("expected the killed member's registry and inbox, found %v", left)
	}
	join(t, dead+"-other", nil)
	if left := leftovers(); len(left) != 0 {
		t.Fatalf("left after Join: %v", left)
	}
}

func TestJoinTwiceRefused(t *testing.T) {
	group := testGroup(t)
	join(t, group, nil)
	if _, err := Join(context.Background(), group, nil); !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("second Join: %v", err)
	}
}

func TestClosed(t *testing.T) {
	checkLeaks(t)
	g, err := Join(context.Background(), testGroup(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if err := g.Send(ctx, g.PID(), "x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if err := g.Broadcast(ctx, "x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close: %v", err)
	}
}

// Members join and die (kill -9) while two senders stream numbered alerts
// to us: the streams keep flowing, stay in order, and the group converges.
func TestChurnMidStream(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	var seq seqCheck
	g := join(t, group, &Config{InboxSize: MinInboxSize, Handlers: map[string]HandlerFunc{
		"seq": func(ctx context.Context, a *Alert) {
			seq.see(a.Sender, binary.LittleEndian.Uint64(a.Data), "")
		},
	}})
	var streams []*child
	for range 2 {
		streams = append(streams, startChild(t, group, "seq", -1, 0))
	}
	churn := 6
	if testing.Short() {
		churn = 3
	}
	for i := range churn {
		before := seq.total.Load()
		c := startChild(t, group, "echo", 0, 0)
		if err := g.Broadcast(context.Background(), "ping", nil); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		c.kill()
		waitFor(t, "the streams to go on", func() bool { return seq.total.Load() > before+1000 })
	}
	for _, c := range streams {
		c.stop(t)
	}
	waitFor(t, "only us left", func() bool { return len(g.Members()) == 1 })
	seq.check(t, 2)
}
