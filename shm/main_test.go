//go:build linux

package shm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Child processes are this test binary run again with childEnv naming a
// role; TestMain runs the role instead of the tests.
const childEnv = "PROCWIRE_SHM_CHILD"

// testPrefix starts the name of every segment the tests make, so that
// TestMain can check that none is left behind.
var testPrefix = fmt.Sprintf("shmtest-%d-", os.Getpid())

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role, os.Getenv("PROCWIRE_SHM_SEG"), os.Getenv("PROCWIRE_SHM_ARG")))
	}
	base := runtime.NumGoroutine()
	code := m.Run()
	if n := goroutinesSettle(base); n > base {
		fmt.Fprintf(os.Stderr, "goroutines leaked: %d before the tests, %d after\n", base, n)
		if code == 0 {
			code = 1
		}
	}
	if left, _ := filepath.Glob(filepath.Join(Dir, filePrefix+testPrefix+"*")); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "segments left behind: %v\n", left)
		for _, p := range left {
			os.Remove(p)
		}
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// segName returns a segment name unique to the test and this process.
func segName(t testing.TB) string {
	n := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return testPrefix + n
}

// newSeg creates a raw segment for the test and removes it afterwards.
func newSeg(t testing.TB, size int) *Segment {
	t.Helper()
	name := segName(t)
	s, err := Create(name, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		Remove(name)
	})
	return s
}

// child is a running copy of the test binary in some role.
type child struct {
	cmd   *exec.Cmd
	lines chan string // lines the child printed; closed at EOF
	acks  atomic.Int64
	done  chan struct{} // closed when stdout hits EOF
}

// startChild runs the test binary in role on segment seg. Every line the
// child prints is counted in acks and sent to lines (dropped if full).
func startChild(t testing.TB, role, seg, arg string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, "PROCWIRE_SHM_SEG="+seg, "PROCWIRE_SHM_ARG="+arg)
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	// A child must not outlive a test binary that crashed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	c := &child{cmd: cmd, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.lines)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.acks.Add(1)
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
	}()
	return c
}

// waitLine waits for the child to print want.
func (c *child) waitLine(t testing.TB, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q", want)
			}
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("child did not print %q within 30s", want)
		}
	}
}

// kill SIGKILLs the child, reaps it and waits for its output to end.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	<-c.done
}

// wait waits for the child to exit by itself and returns its error.
func (c *child) wait() error {
	err := c.cmd.Wait()
	<-c.done
	return err
}

// runChild runs a child role and returns the exit status.
func runChild(role, seg, arg string) int {
	s, err := Attach(seg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	defer s.Close()
	out := bufio.NewWriterSize(os.Stdout, 64)
	switch role {
	case "hold":
		// Take the lock, say so, and hold it until killed.
		m := MutexAt(s.Data())
		m.Lock(context.Background())
		io.WriteString(os.Stdout, "locked\n")
		time.Sleep(time.Hour)
	case "count":
		// Add arg increments to a plain counter under the lock.
		var n int
		fmt.Sscan(arg, &n)
		m := MutexAt(s.Data())
		ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
		for range n {
			m.Lock(context.Background())
			v := *ctr
			yield()
			*ctr = v + 1
			m.Unlock()
		}
		out.WriteString("done\n")
		out.Flush()
	case "hammer":
		// Lock and Unlock as fast as possible until killed.
		m := MutexAt(s.Data())
		ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
		ctx := context.Background()
		for {
			m.Lock(ctx)
			*ctr++
			m.Unlock()
		}
	case "crash":
		var slot int
		fmt.Sscan(arg, &slot)
		runCrashChild(s, slot)
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", role)
		return 3
	}
	return 0
}

// goroutinesSettle waits up to 5 s for the goroutine count to drop to base
// and returns the last count.
func goroutinesSettle(base int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > base && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}
