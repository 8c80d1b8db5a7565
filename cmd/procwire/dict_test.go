package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/procwire/procwire/shm/dict"
)

func TestDictVerb(t *testing.T) {
	name := fmt.Sprintf("clitest.%d", os.Getpid())
	t.Cleanup(func() { dict.Remove(name) })
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"dict", name, "get", "k"}, 1, ""}, // no such dictionary
		{[]string{"dict", "-size", "65536", name, "set", "-ttl", "1h", "-flags", "7", "k", "hello"}, 0, ""},
		{[]string{"dict", name, "get", "k"}, 0, "hello\t7\n"},
		{[]string{"dict", name, "set", "-type", "number", "n", "1.5"}, 0, ""},
		{[]string{"dict", name, "incr", "n", "2"}, 0, "3.5\n"},
		{[]string{"dict", name, "incr", "-init", "10", "m"}, 0, "11\n"},
		{[]string{"dict", name, "incr", "missing"}, 1, ""},
		{[]string{"dict", name, "ttl", "n"}, 0, "0s\n"},
		{[]string{"dict", name, "keys", "-max", "2"}, 0, "m\nn\n"},
		{[]string{"dict", name, "del", "k"}, 0, ""},
		{[]string{"dict", name, "get", "k"}, 1, ""},
		{[]string{"dict", name, "check"}, 0, "ok\n"},
		{[]string{"dict", name, "set", "-type", "number", "n", "x"}, 2, ""},
		{[]string{"dict", name, "frob"}, 2, ""},
		{[]string{"dict", name}, 2, ""},
		{[]string{"dict", "--help"}, 0, ""},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), s.args, &stdout, &stderr)
		if code != s.code || s.out != "" && stdout.String() != s.out {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q", s.args, code, stdout.String(), stderr.String(), s.code, s.out)
		}
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"dict", name, "stats"}, &stdout, &bytes.Buffer{})
	if !strings.Contains(stdout.String(), "capacity 65536\n") || !strings.Contains(stdout.String(), "items 2\n") || !strings.Contains(stdout.String(), "dead-claims 0\n") {
		t.Errorf("stats: %q", stdout.String())
	}
}
