//go:build linux

package alert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Child processes re-run the test binary with ALERT_CHILD set to a role.
// They join the group in ALERT_GROUP, print "ready <pid>" on stdout, and
// exit when their stdin closes (so a dying test leaves no orphans) or when
// the role is done.
const (
	envRole  = "ALERT_CHILD"
	envGroup = "ALERT_GROUP"
	envArg   = "ALERT_ARG"
	envInbox = "ALERT_INBOX"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

func runChild(role string) int {
	if role == "execd" {
		// What an "exec" child became: not a member, just a process with
		// the same pid that waits for stdin to close.
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := &Config{}
	if s := os.Getenv(envInbox); s != "" {
		cfg.InboxSize, _ = strconv.Atoi(s)
	}
	arg, _ := strconv.Atoi(os.Getenv(envArg))
	release := make(chan struct{})
	stall := make(chan struct{})
	rejoin := make(chan struct{})
	var once sync.Once
	cfg.Handlers = map[string]HandlerFunc{
		// ping: answer with the same data.
		"ping": func(ctx context.Context, a *Alert) {
			if err := a.Reply(ctx, "pong", a.Data); err != nil {
				fmt.Fprintln(os.Stderr, "reply:", err)
			}
		},
		// digest: answer with the SHA-256 of the data and its length.
		"digest": func(ctx context.Context, a *Alert) {
			sum := sha256.Sum256(a.Data)
			b := binary.LittleEndian.AppendUint64(sum[:], uint64(len(a.Data)))
			a.Reply(ctx, "digest", b)
		},
		// stall: block the receive goroutine until stdin closes.
		"stall": func(ctx context.Context, a *Alert) { <-release },
		// exec: tell the "exec" role to exec.
		"exec": func(ctx context.Context, a *Alert) { close(stall) },
		// rejoin: tell the "rejoin" role to Close and Join again.
		"rejoin": func(ctx context.Context, a *Alert) { close(rejoin) },
	}
	g, err := Join(ctx, os.Getenv(envGroup), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "join:", err)
		return 1
	}
	defer g.Close()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		once.Do(func() { close(release) })
		cancel()
	}()
	fmt.Printf("ready %d\n", os.Getpid())
	switch role {
	case "echo":
		<-ctx.Done()
	case "seq":
		// Send arg numbered alerts (arg < 0: until stdin closes) to the
		// parent, then wait to be told to go.
		parent := os.Getppid()
		for i := 0; arg < 0 || i < arg; i++ {
			err := g.Send(ctx, parent, "seq", binary.LittleEndian.AppendUint64(nil, uint64(i)))
			if arg < 0 && ctx.Err() != nil {
				break
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "send:", err)
				return 1
			}
		}
		<-ctx.Done()
	case "seqmany":
		// Like seq, but with SendMany in packs of varying length, every
		// 50th alert too large for one inbox message and many others
		// larger than inlineData (filled with their number's low byte, so
		// the receiver can check they arrived whole).
		parent := os.Getppid()
		var msgs []Message
		for i := 0; i < arg; {
			msgs = msgs[:0]
			for k := 0; k < 1+i%97 && i < arg; k++ {
				d := binary.LittleEndian.AppendUint64(nil, uint64(i))
				switch {
				case i%50 == 49:
					d = append(d, bytes.Repeat([]byte{byte(i)}, 3*MinInboxSize/4)...)
				case i%7 == 3: // payload handed to the queue as a part of its own
					d = append(d, bytes.Repeat([]byte{byte(i)}, inlineData+50)...)
				}
				msgs = append(msgs, Message{Name: "seq", Data: d})
				i++
			}
			if n, err := g.SendMany(ctx, parent, msgs); err != nil || n != len(msgs) {
				fmt.Fprintln(os.Stderr, "send many:", n, err)
				return 1
			}
		}
		<-ctx.Done()
	case "exec":
		// Replace this program (same pid, no Close) once told to.
		<-stall
		env := []string{envRole + "=execd"}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, envRole+"=") {
				env = append(env, kv)
			}
		}
		err := syscall.Exec(os.Args[0], []string{os.Args[0], "-test.run=^$"}, env)
		fmt.Fprintln(os.Stderr, "exec:", err)
		return 1
	case "rejoin":
		// Once told to, leave the group and join it again (same pid and
		// start time, so the same inbox name), then tell the parent.
		<-rejoin
		if err := g.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
			return 1
		}
		g2, err := Join(ctx, os.Getenv(envGroup), cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rejoin:", err)
			return 1
		}
		defer g2.Close()
		if err := g2.Send(ctx, os.Getppid(), "rejoined", nil); err != nil {
			fmt.Fprintln(os.Stderr, "send rejoined:", err)
			return 1
		}
		<-ctx.Done()
	case "flood":
		// Send arg-byte alerts to the parent until killed.
		parent := os.Getppid()
		data := make([]byte, arg)
		for ctx.Err() == nil {
			if err := g.Send(ctx, parent, "flood", data); err != nil {
				fmt.Fprintln(os.Stderr, "send:", err)
				return 1
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	return 0
}

// child is a running child member.
type child struct {
	cmd   *exec.Cmd
	pid   int
	stdin io.WriteCloser
	done  chan struct{} // closed once the child is reaped
}

func startChild(t testing.TB, group, role string, arg, inbox int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envGroup+"="+group, envArg+"="+strconv.Itoa(arg), envInbox+"="+strconv.Itoa(inbox))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, stdin: stdin, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() { c.kill() })
	select {
	case line := <-ready:
		if line != fmt.Sprintf("ready %d\n", c.pid) {
			t.Fatalf("child %s: got %q instead of ready", role, line)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("child %s did not get ready", role)
	}
	return c
}

// stop asks the child to leave and waits for it.
func (c *child) stop(t testing.TB) {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Errorf("child %d did not exit", c.pid)
		c.kill()
	}
}

// kill sends SIGKILL and reaps the child.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
	}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// testGroup returns a group name unique to this test and process, and
// checks at the end that the test left nothing of it in /dev/shm.
func testGroup(t testing.TB) string {
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[:60]
	}
	g := fmt.Sprintf("t%d-%s", os.Getpid(), name)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			left, _ := filepath.Glob("/dev/shm/procwire.alert." + g + "*")
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("segments left in /dev/shm: %v", left)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return g
}

// join joins group with cfg and closes the Group at the end of the test.
func join(t testing.TB, group string, cfg *Config) *Group {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := Join(ctx, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// waitFor polls cond until it holds or a generous safety timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func hasMember(g *Group, pid int) bool {
	for _, m := range g.Members() {
		if m.PID == pid {
			return true
		}
	}
	return false
}

func pidsOf(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, strconv.Itoa(m.PID))
	}
	return strings.Join(s, ",")
}
