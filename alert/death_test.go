//go:build linux

package alert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A send that starts after the destination is dead (killed and reaped)
// fails with ErrNoMember, even if it races the member's own death notice:
// Send, SendMany and the chunked path all check the destination's life
// word after putting the alert in its inbox.
func TestSendRacingDeathFails(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	g := join(t, group, nil)
	rounds := 30
	if testing.Short() {
		rounds = 10
	}
	big := make([]byte, MinInboxSize) // chunked through a MinInboxSize inbox
	for i := range rounds {
		c := startChild(t, group, "echo", 0, MinInboxSize)
		waitFor(t, "child member", func() bool { return hasMember(g, c.pid) })
		// Senders hammer the child while it is killed; every call that
		// began after its exit must fail. They learn of the exit from a
		// pidfd of their own, polled before each call, so they race the
		// group's own death notice as closely as a caller can.
		fd, err := unix.PidfdOpen(c.pid, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		exited := func() bool {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(pfd, 0)
			return n > 0
		}
		errc := make(chan error, 3)
		for k := range 3 {
			go func() {
				many := []Message{{Name: "x", Data: []byte("a")}, {Name: "x", Data: []byte("b")}}
				for {
					after := exited()
					var err error
					switch k {
					case 0:
						err = g.Send(context.Background(), c.pid, "x", []byte("hello"))
					case 1:
						_, err = g.SendMany(context.Background(), c.pid, many)
					case 2:
						err = g.Send(context.Background(), c.pid, "x", big)
					}
					if err != nil {
						errc <- err
						return
					}
					if after {
						errc <- fmt.Errorf("sender %d: a send that began after the receiver exited returned nil", k)
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		c.kill() // returns once the child is reaped
		// And the first send after the reaping, alone, fails too.
		if err := g.Send(context.Background(), c.pid, "x", nil); !errors.Is(err, ErrNoMember) {
			t.Fatalf("round %d: send right after the kill: %v, want ErrNoMember", i, err)
		}
		for range 3 {
			select {
			case err := <-errc:
				if !errors.Is(err, ErrNoMember) {
					t.Fatalf("round %d: %v", i, err)
				}
				if want := "no worker process with PID"; !strings.Contains(err.Error(), want) {
					t.Fatalf("round %d: error %q does not say %q", i, err, want)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("round %d: a sender is still sending to a dead member", i)
			}
		}
	}
	waitFor(t, "only us left", func() bool { return len(g.Members()) == 1 })
}

// A member that execs another program keeps its pid but stops being a
// member: the kernel marks its life word at the exec as at a death, so
// sends to it fail and the next pruning removes it, although its pidfd
// never fires.
func TestExecLeavesGroup(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	g := join(t, group, nil)
	c := startChild(t, group, "exec", 0, 0)
	waitFor(t, "child member", func() bool { return hasMember(g, c.pid) })
	if err := g.Send(context.Background(), c.pid, "exec", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sends to the exec'd child failing", func() bool {
		return errors.Is(g.Send(context.Background(), c.pid, "x", nil), ErrNoMember)
	})
	// A membership change prunes it: here, another member joining.
	other := startChild(t, group, "echo", 0, 0)
	waitFor(t, "exec'd child pruned", func() bool { return !hasMember(g, c.pid) && hasMember(g, other.pid) })
	other.stop(t)
	c.stop(t)
}

// Sends racing Close end with ErrClosed (or ErrNoMember), never a crash:
// what they read of the registry stays mapped until the Group is garbage.
func TestSendRacingClose(t *testing.T) {
	checkLeaks(t)
	group := testGroup(t)
	c := startChild(t, group, "echo", 0, 0) // keeps the group alive across our Closes
	ctx := context.Background()
	for range 10 {
		g, err := Join(ctx, group, nil)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 4)
		for k := range 4 {
			go func() {
				pid := c.pid
				if k%2 == 1 {
					pid = g.PID()
				}
				for {
					if err := g.Send(ctx, pid, "x", []byte("hello")); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if err := <-errc; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNoMember) {
				t.Fatalf("send racing Close: %v", err)
			}
		}
	}
	c.stop(t)
}
