//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/procwire/procwire/shm/mq"
)

func TestMQVerb(t *testing.T) {
	name := fmt.Sprintf("mqverb-%d", os.Getpid())
	t.Cleanup(func() { mq.Remove(name) })
	ctx := context.Background()
	pw := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"mq"}, args...), &out, &errb); code != want {
			t.Fatalf("procwire mq %v: exit %d, want %d; stderr: %s", args, code, want, errb.String())
		}
		return out.String() + errb.String()
	}
	if out := pw(0, name, "create", "--capacity", "8K", "--max-message", "1K"); !strings.Contains(out, "8192-byte ring, messages up to 1024 bytes") {
		t.Errorf("create said %q", out)
	}
	pw(0, name, "send", "first message")
	pw(0, name, "send", "--timeout", "1s", "second")
	pw(1, name, "send", strings.Repeat("x", 1025))
	if out := pw(0, name, "stat"); !strings.Contains(out, "capacity 8192") {
		t.Errorf("stat said %q", out)
	}
	if out := pw(0, name, "recv", "--count", "2"); out != "first message\nsecond\n" {
		t.Errorf("recv said %q", out)
	}
	if out := pw(1, name, "recv", "--timeout", "50ms"); !strings.Contains(out, "deadline exceeded") {
		t.Errorf("recv on empty said %q", out)
	}
	pw(0, name, "rm")
	if out := pw(0, name, "create", "--capacity", "1K", "--lanes", "2"); !strings.Contains(out, "2 lanes + 1 shared") {
		t.Errorf("create --lanes 2 said %q", out)
	}
	if out := pw(0, name, "stat"); !strings.Contains(out, "lanes 2\n") {
		t.Errorf("stat said %q", out)
	}
	pw(2, name, "create", "--capacity", "1K", "--lanes", "-1")
	pw(0, name, "rm")
	if out := pw(1, name, "rm"); !strings.Contains(out, "not found") {
		t.Errorf("second rm said %q", out)
	}
	pw(2, name)
	pw(2, name, "frobnicate")
	pw(2, name, "send")
	pw(2, name, "create")
	pw(2, name, "create", "--capacity", "lots")
	pw(2, name, "recv", "--count", "0")
	pw(0, "--help")
}
