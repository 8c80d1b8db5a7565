//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/procwire/procwire/shm"
)

func TestShmVerb(t *testing.T) {
	name := fmt.Sprintf("clitest-shm-%d", os.Getpid())
	seg, err := shm.Create(name, 100, &shm.Options{Kind: shm.KindDict, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	seg.Close()
	defer shm.Remove(name)
	shmRun := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"shm"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, _ := shmRun("ls")
	if code != 0 || !strings.Contains(out, name) || !strings.Contains(out, "dict") {
		t.Fatalf("shm ls = %d, %q; want a line for %s", code, out, name)
	}
	if code, _, _ := shmRun("rm", name); code != 0 {
		t.Fatalf("shm rm = %d", code)
	}
	if _, err := shm.Attach(name, nil); err == nil {
		t.Fatal("segment still there after shm rm")
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"rm", name}, 1},    // gone
		{[]string{"rm", "../x"}, 1},  // invalid name
		{[]string{}, 2},              // no subcommand
		{[]string{"frob"}, 2},        // unknown subcommand
		{[]string{"rm"}, 2},          // no name
		{[]string{"ls", "extra"}, 2}, // stray argument
		{[]string{"--help"}, 0},
	} {
		if code, _, errs := shmRun(tc.args...); code != tc.code {
			t.Errorf("shm %v = %d (%s), want %d", tc.args, code, errs, tc.code)
		}
	}
}
