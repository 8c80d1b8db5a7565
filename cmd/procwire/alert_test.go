//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procwire/procwire/alert"
)

// TestAlertCLIHelper runs the procwire CLI with the arguments in
// PROCWIRE_ALERT_ARGS when a test starts this binary as a child; it does
// nothing in a normal run.
func TestAlertCLIHelper(t *testing.T) {
	args := os.Getenv("PROCWIRE_ALERT_ARGS")
	if args == "" {
		t.Skip("child helper")
	}
	os.Exit(run(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
}

// cli runs the CLI in a child process (a process joins a group only once).
func cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAlertCLIHelper$")
	cmd.Env = append(os.Environ(), "PROCWIRE_ALERT_ARGS="+strings.Join(args, "\x1f"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestAlertVerb(t *testing.T) {
	group := fmt.Sprintf("clitest-alert-%d", os.Getpid())
	got := make(chan string, 10)
	g, err := alert.Join(context.Background(), group, &alert.Config{
		Default: func(ctx context.Context, a *alert.Alert) { got <- a.Name + "=" + string(a.Data) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	me := strconv.Itoa(os.Getpid())

	if code, out := cli(t, "alert", "send", "--group", group, "--pid", me, "--name", "hi", "--data", "hello"); code != 0 {
		t.Fatalf("send: %d %s", code, out)
	}
	if a := recvAlert(t, got); a != "hi=hello" {
		t.Fatalf("got %q", a)
	}
	if code, out := cli(t, "alert", "broadcast", "--group", group, "--name", "all", "--data", "x"); code != 0 {
		t.Fatalf("broadcast: %d %s", code, out)
	}
	if a := recvAlert(t, got); a != "all=x" {
		t.Fatalf("got %q", a)
	}
	if code, out := cli(t, "alert", "members", "--group", group); code != 0 || !strings.HasPrefix(out, me+"\t") {
		t.Fatalf("members: %d %q", code, out)
	}
	code, out := cli(t, "alert", "send", "--group", group, "--pid", "1073741824", "--name", "hi")
	if code != 1 || !strings.Contains(out, "no worker process with PID 1073741824") {
		t.Fatalf("send to unknown pid: %d %q", code, out)
	}

	// listen prints what it receives.
	done := make(chan struct{})
	var listenOut string
	var listenCode int
	go func() {
		defer close(done)
		listenCode, listenOut = cli(t, "alert", "listen", "--group", group, "--count", "1")
	}()
	// The listener is the other member that accepts the alert: a member
	// left by an earlier command's process may still be listed until its
	// death is noticed, and sends to it fail with ErrNoMember.
	sent := false
	for deadline := time.Now().Add(20 * time.Second); !sent && time.Now().Before(deadline); {
		for _, m := range g.Members() {
			if m.Self {
				continue
			}
			err := g.Send(context.Background(), m.PID, "news", []byte("hot\n"))
			if err == nil {
				sent = true
				break
			}
			if !errors.Is(err, alert.ErrNoMember) {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sent {
		t.Fatal("the listener never became a member")
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("listen did not exit after its alert")
	}
	if want := me + ` news "hot\n"`; listenCode != 0 || !strings.Contains(listenOut, want) {
		t.Fatalf("listen: %d %q, want %q", listenCode, listenOut, want)
	}
}

func recvAlert(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("no alert")
		return ""
	}
}

func TestAlertVerbUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"alert"}, 2, "missing subcommand"},
		{[]string{"alert", "--help"}, 0, "Usage: procwire alert"},
		{[]string{"alert", "frob", "--group", "g"}, 2, "unknown subcommand"},
		{[]string{"alert", "send", "--group", "g"}, 2, "needs --pid and --name"},
		{[]string{"alert", "members"}, 2, "--group is required"},
		{[]string{"alert", "members", "--group", "bad.name"}, 1, "invalid group name"},
		{[]string{"alert", "send", "--help"}, 0, "-pid"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String()+errb.String(), tt.out) {
			t.Errorf("%v: code %d, output %q; want %d and %q", tt.args, code, out.String()+errb.String(), tt.code, tt.out)
		}
	}
}
