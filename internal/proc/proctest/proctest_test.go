//go:build linux

package proctest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	switch Role() {
	case "":
		os.Exit(m.Run())
	case "echo":
		fmt.Println(strings.Join(Args(), "+"))
		os.Exit(0)
	case "sleep":
		fmt.Println("up")
		time.Sleep(time.Hour)
	}
	os.Exit(3)
}

func TestChild(t *testing.T) {
	c := Start(t, "echo", "a b", "c")
	c.WaitLine(t, "a b+c")
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if c.Acks() != 1 {
		t.Fatalf("Acks = %d, want 1", c.Acks())
	}
	s := Start(t, "sleep")
	s.WaitLine(t, "up")
	s.Kill()
	if s.Cmd.ProcessState == nil || s.Cmd.ProcessState.Success() {
		t.Fatalf("killed child: %v", s.Cmd.ProcessState)
	}
	if Threads(t) < 1 {
		t.Fatal("no threads")
	}
}
