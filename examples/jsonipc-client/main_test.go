package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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

func TestClientExample(t *testing.T) {
	dir, err := os.MkdirTemp("", "jsonipc-client")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")

	srv := jsonipc.NewServer(nil)
	srv.Handle("/myapi/test.*", jsonipc.HandlerFunc(func(context.Context, *jsonipc.Request) (any, error) {
		return map[string]string{"hello": "thanks for your message"}, nil
	}))
	if err := srv.Listen(sock); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	cmd := exec.Command(os.Args[0], "-socket", sock)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "RUN_EXAMPLE_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "/myapi/test: thanks for your message\n/ipcserver/test/echo: {\"ping\":\"me\",\"n\":2.50}\n"
	if string(out) != want {
		t.Fatalf("output %q, want %q", out, want)
	}

	// Without a server it fails with a clear message and status 1.
	cmd = exec.Command(os.Args[0], "-socket", sock+".none")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "RUN_EXAMPLE_MAIN=1")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("no server: %v %s", err, out)
	}
}
