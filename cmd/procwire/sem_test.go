//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/procwire/procwire/shm/sem"
)

func TestSemVerb(t *testing.T) {
	name := fmt.Sprintf("clitest-sem-%d", os.Getpid())
	defer sem.Remove(name)
	semRun := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"sem"}, args...), &out, &errb)
		return code, strings.TrimSpace(out.String() + errb.String())
	}
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{name, "value"}, 1, "not found"},
		{[]string{name, "release", "--initial", "2"}, 0, ""},
		{[]string{name, "value"}, 0, "3"},
		{[]string{"--timeout", "1s", name, "acquire"}, 0, ""},
		{[]string{name, "acquire"}, 0, ""},
		{[]string{name, "acquire", "--timeout=10s"}, 0, ""},
		{[]string{name, "value"}, 0, "0"},
		{[]string{name, "acquire", "--timeout", "30ms"}, 1, "no unit within 30ms"},
		{[]string{name, "frob"}, 2, "unknown action"},
		{[]string{name}, 2, "need a semaphore NAME"},
		{[]string{name, "value", "extra"}, 2, "unexpected argument"},
		{[]string{name, "acquire", "--timeout", "-1s"}, 2, "negative"},
		{[]string{"../x", "release"}, 1, "invalid"},
		{[]string{"--help"}, 0, "Usage"},
	}
	for _, st := range steps {
		code, out := semRun(st.args...)
		if code != st.code || !strings.Contains(out, st.out) {
			t.Errorf("sem %v = %d, %q; want %d and output containing %q", st.args, code, out, st.code, st.out)
		}
	}
}
