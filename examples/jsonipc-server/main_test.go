package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/jsonipc"
)

// TestMain lets the test re-run this binary as the real program.
func TestMain(m *testing.M) {
	if os.Getenv("RUN_EXAMPLE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestServerExample(t *testing.T) {
	dir, err := os.MkdirTemp("", "jsonipc-server")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")

	cmd := exec.Command(os.Args[0], "-socket", sock)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "RUN_EXAMPLE_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "listening on "+sock) {
		t.Fatalf("first line %q", lines.Text())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var c *jsonipc.Client
	for c == nil {
		c, err = jsonipc.Dial(ctx, sock, nil)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var reply map[string]string
	if err := c.Call(ctx, "/myapi/test/anything?q=1", map[string]string{"foo": "bar"}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply["hello"] != "thanks for your message" {
		t.Fatalf("reply %v", reply)
	}
	c.Close()

	cmd.Process.Signal(syscall.SIGTERM)
	if !lines.Scan() || lines.Text() != "stopped" {
		t.Fatalf("after SIGTERM: %q", lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file left behind: %v", err)
	}
}
