//go:build linux

package alert

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/proc"
)

// TestRejoinedMemberReachable: a member that Closes and Joins again keeps
// its pid and start time, so its new slot has the same proc.ID, and a
// member whose refresh sees the leave and the re-join as one change must
// still drop its old peer, whose queue is the old, unlinked inbox, or
// sends to the re-joined member return nil and are lost. peersMu is held
// here to stand for a watcher that is slow to run (a loaded machine).
func TestRejoinedMemberReachable(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	rejoined := make(chan struct{}, 1)
	pong := make(chan struct{}, 1)
	g := join(t, group, &Config{Handlers: map[string]HandlerFunc{
		"rejoined": func(ctx context.Context, a *Alert) { rejoined <- struct{}{} },
		"pong":     func(ctx context.Context, a *Alert) { pong <- struct{}{} },
	}})
	c := startChild(t, group, "rejoin", 0, 0)
	waitFor(t, "child to be seen", func() bool { return hasMember(g, c.pid) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	g.peersMu.Lock()
	if err := g.Send(ctx, c.pid, "rejoin", nil); err != nil { // opens the child's first inbox
		g.peersMu.Unlock()
		t.Fatal(err)
	}
	recv(t, rejoined)
	g.peersMu.Unlock()

	if err := g.Send(ctx, c.pid, "ping", nil); err != nil {
		t.Fatalf("send to the re-joined member: %v", err)
	}
	select {
	case <-pong:
	case <-time.After(5 * time.Second):
		t.Fatal("the re-joined member never got the ping: it went to its old, unlinked inbox")
	}
	c.stop(t)
}

// TestPartialOfDeadSenderSweptUnderTraffic: a half-received large alert
// whose sender died is to be dropped (and its buffer, up to MaxData,
// freed) within about a second, also while alerts keep coming and the
// spinning receiver never reaches a blocking wait (it used to sweep only
// after one, so under steady traffic the partial and its buffer stayed for
// ever).
func TestPartialOfDeadSenderSweptUnderTraffic(t *testing.T) {
	group := testGroup(t)
	var g *Group
	g = join(t, group, &Config{
		Spin:     100 * time.Millisecond,
		Handlers: map[string]HandlerFunc{"k": func(context.Context, *Alert) {}},
	})
	self := g.peers.Load().byPID[g.PID()]
	q, err := self.queue()
	if err != nil {
		t.Fatal(err)
	}
	// The first chunk of a 1 MiB alert from a process that is gone (this
	// pid with another start time: a previous incarnation).
	var h [headerSize]byte
	putHeader(h[:], recChunk, 3, uint32(g.PID()), g.self.Start+1, 1<<20, 0)
	if err := q.TrySendParts(h[:], []byte("big"), make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deadline := time.Now().Add(4 * time.Second)
	for g.Stats().Dropped == 0 && time.Now().Before(deadline) {
		if err := g.Send(ctx, g.PID(), "k", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if g.Stats().Dropped == 0 {
		t.Fatal("half-received alert of a dead sender still held after 4 s of steady traffic")
	}
}

// TestRecordHugeTotalMalformed: a whole record whose header claims 2 GiB
// or more of data, in a short message. parseRecord computes its end as an
// int, which on a 32-bit platform wraps negative for such a total, so the
// length check passes and the receive loop's slicing panics (outside any
// recover: the receiving process dies).
func TestRecordHugeTotalMalformed(t *testing.T) {
	b := encode(recWhole, 1, 2, 0x80000000, 0, "n", []byte("abc"))
	var r record
	nameEnd, end, err := parseRecord(b, &r)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("parseRecord: end %d..%d, err %v; want ErrMalformed", nameEnd, end, err)
	}
	if _, err := decodeRecord(b, &r); !errors.Is(err, ErrMalformed) {
		t.Fatalf("decodeRecord: %v, want ErrMalformed", err)
	}
}

// TestChunkBeyondIntDropped: on a 32-bit platform the first chunk of an
// alert of 2 GiB or more (which a 64-bit member may send: MaxData is
// 4 GiB) makes the receiver call make([]byte, total) with a length past
// the largest int, which panics outside any recover.
func TestChunkBeyondIntDropped(t *testing.T) {
	if strconv.IntSize == 64 {
		t.Skip("a 64-bit int holds every alert length")
	}
	g := join(t, testGroup(t), &Config{Logger: slog.New(slog.DiscardHandler)})
	msg := encode(recChunk, 1, 2, 0x90000000, 0, "n", []byte("abc"))
	before := g.Stats().Dropped
	if n := g.handleMessage(context.Background(), msg, make(map[proc.ID]*partial)); n != 0 {
		t.Fatalf("delivered %d", n)
	}
	if g.Stats().Dropped != before+1 {
		t.Fatalf("dropped %d, want %d", g.Stats().Dropped, before+1)
	}
}

// TestCorruptInboxWithdrawsMember: a buggy or hostile process that writes
// a bad record header into one lane of a member's inbox leaves the inbox
// unreadable (the queue reads no further). The member then leaves the
// group, so that Send to it fails with ErrNoMember. (It used to stay
// listed, its receive goroutine stopped: Send kept returning nil and
// every later alert, from every sender, was lost silently.)
func TestCorruptInboxWithdrawsMember(t *testing.T) {
	group := testGroup(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	got := make(chan struct{}, 1)
	g := join(t, group, &Config{
		InboxSize: MinInboxSize,
		Logger:    slog.New(slog.DiscardHandler),
		Handlers: map[string]HandlerFunc{
			"stall": func(context.Context, *Alert) { close(entered); <-release },
			"x":     func(context.Context, *Alert) { got <- struct{}{} },
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Send(ctx, g.PID(), "stall", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, entered)
	marker := []byte("corrupt-me-0123456789-abcdefghij")
	if err := g.Send(ctx, g.PID(), "m", marker); err != nil {
		t.Fatal(err)
	}
	// Overwrite the queue's record header in front of the alert record.
	f, err := os.OpenFile("/dev/shm/procwire."+g.inboxName, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, marker)
	if at < 0 {
		t.Fatal("marker not found in the inbox")
	}
	var bad [8]byte
	binary.LittleEndian.PutUint64(bad[:], 1<<40)
	if _, err := f.WriteAt(bad[:], int64(at-len("m")-headerSize-8)); err != nil {
		t.Fatal(err)
	}
	close(release)

	// The receive loop meets the damaged record, and the member leaves
	// the group: sends to it fail rather than vanish.
	for deadline := time.Now().Add(10 * time.Second); hasMember(g, g.PID()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the member whose inbox is unusable is still listed after 10 s")
		}
	}
	if err := g.Send(ctx, g.PID(), "x", nil); !errors.Is(err, ErrNoMember) {
		t.Fatalf("Send to the member with an unusable inbox = %v, want ErrNoMember", err)
	}
	select {
	case <-got:
		t.Fatal("an alert was handled after the inbox became unusable")
	default:
	}
}

// TestLargeSendWaitsForAnotherIgnoringPolicyAndCtx: a chunked transfer
// holds the destination's big-alert token while its later chunks wait for
// room (they always Block). A second large Send to the same member must
// heed the Fail policy (ErrBackpressure at once) and its ctx while it
// waits for that token, not wait for the first transfer however slow the
// receiver. (The token used to be a mutex, which heeded neither.)
func TestLargeSendWaitsForAnotherIgnoringPolicyAndCtx(t *testing.T) {
	group := testGroup(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	g := join(t, group, &Config{
		InboxSize:  MinInboxSize,
		FullPolicy: Fail,
		Logger:     slog.New(slog.DiscardHandler),
		Handlers: map[string]HandlerFunc{
			"stall": func(context.Context, *Alert) { close(entered); <-release },
		},
	})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Send(ctx, g.PID(), "stall", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, entered)
	big := make([]byte, 4*MinInboxSize)
	first := make(chan error, 1)
	go func() { first <- g.Send(ctx, g.PID(), "big", big) }()
	// Wait until the first transfer has filled the lane and waits for room.
	self := g.peers.Load().byPID[g.PID()]
	waitFor(t, "first transfer to wait for room", func() bool {
		q, err := self.queue()
		return err == nil && q.Stats().FullWaits > 0
	})
	second := make(chan error, 1)
	go func() {
		ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		second <- g.Send(ctx2, g.PID(), "big", big)
	}()
	waiting := false
	select {
	case err := <-second:
		if !errors.Is(err, ErrBackpressure) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second large send: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("second large send under the Fail policy, with a 1 s ctx, still waiting after 5 s")
		waiting = true
	}
	close(release)
	released = true
	if err := recv(t, first); err != nil {
		t.Errorf("first large send: %v", err)
	}
	if waiting {
		<-second
	}
}
