//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/shm/mq"
)

// envRun makes the test binary run the example's main: the test starts it
// as the master, and the master re-executes it, with the same arguments,
// as the workers.
const envRun = "MQCLUSTER_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(envRun) == "1" {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "mq-cluster:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCluster runs the example with a short interval: each worker's
// messages keep reaching the master, a worker killed with SIGKILL is replaced by a
// new one whose messages arrive too, and SIGTERM stops everything and
// removes the queue.
func TestCluster(t *testing.T) {
	queue := fmt.Sprintf("mq-cluster-test-%d", os.Getpid())
	cmd := exec.Command(os.Args[0], "-interval=50ms", "-queue="+queue)
	cmd.Env = append(os.Environ(), envRun+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	seen := map[int]bool{}
	defer func() {
		// If the test failed midway: the workers follow their master
		// (worker.Run gives them PR_SET_PDEATHSIG).
		cmd.Process.Kill()
		<-exited
	}()

	msgs := make(chan int)
	go func() {
		defer close(msgs)
		re := regexp.MustCompile(`^master received: msg from worker\[(\d+)\]$`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m := re.FindStringSubmatch(sc.Text())
			if m == nil {
				t.Errorf("unexpected output line %q", sc.Text())
				continue
			}
			pid, _ := strconv.Atoi(m[1])
			msgs <- pid
		}
		io.Copy(io.Discard, out)
	}()
	next := func() int {
		t.Helper()
		select {
		case pid, ok := <-msgs:
			if !ok {
				t.Fatal("the master's output ended")
			}
			return pid
		case <-time.After(30 * time.Second):
			t.Fatal("no message for 30s")
			return 0
		}
	}

	// Each of the three workers publishes again and again.
	count := map[int]int{}
	for again := 0; again < 3; {
		pid := next()
		seen[pid] = true
		if count[pid]++; count[pid] == 2 {
			again++
		}
	}
	if len(seen) != 3 {
		t.Fatalf("messages from %d workers, want 3: %v", len(seen), count)
	}
	var victim int
	for pid := range seen {
		victim = pid
		break
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A fourth pid: the victim's replacement.
	for len(seen) < 4 {
		seen[next()] = true
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range msgs { // drain until the master closes its output
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("master: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("master did not stop")
	}
	for pid := range seen {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("worker %d still running", pid)
		}
	}
	if err := mq.Remove(queue); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("the queue was not removed: Remove says %v", err)
	}
}
