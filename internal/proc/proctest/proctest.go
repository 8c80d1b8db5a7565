//go:build linux

// Package proctest runs copies of the test binary as child processes, for
// tests that need several real processes and real SIGKILLs.
//
// A test package's TestMain checks Role first; in a child it runs the code
// for that role and exits instead of running the tests:
//
//	func TestMain(m *testing.M) {
//		if role := proctest.Role(); role != "" {
//			os.Exit(runChild(role, proctest.Args()))
//		}
//		os.Exit(m.Run())
//	}
//
// Every line a child prints on stdout is counted (Acks), so a child can
// acknowledge each operation it completed and the parent can check, after
// killing it, that nothing acknowledged was lost.
package proctest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	roleEnv = "PROCWIRE_TEST_ROLE"
	argsEnv = "PROCWIRE_TEST_ARGS"
	argSep  = "\x1f" // cannot occur in the arguments the tests pass
)

// Role returns the role this process was started in by Start, or "" in
// the test process itself.
func Role() string { return os.Getenv(roleEnv) }

// Args returns the arguments passed to Start, in a child.
func Args() []string {
	a := os.Getenv(argsEnv)
	if a == "" {
		return nil
	}
	return strings.Split(a, argSep)
}

// Child is a running copy of the test binary.
type Child struct {
	Cmd   *exec.Cmd
	lines chan string   // lines printed, dropped when full; closed at EOF
	acks  atomic.Int64  // lines printed
	done  chan struct{} // closed at EOF on stdout
}

// Start runs the test binary (running no tests) in role with args. The
// child gets SIGKILL if the test process dies, so none outlives a crash;
// its stderr goes to the test's stderr.
func Start(t testing.TB, role string, args ...string) *Child {
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
	cmd.Env = append(os.Environ(), roleEnv+"="+role, argsEnv+"="+strings.Join(args, argSep))
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	c := &Child{Cmd: cmd, lines: make(chan string, 16), done: make(chan struct{})}
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

// Acks returns how many lines the child has printed so far.
func (c *Child) Acks() int64 { return c.acks.Load() }

// WaitLine waits up to 30 s for the child to print the line want, failing
// the test if it does not.
func (c *Child) WaitLine(t testing.TB, want string) {
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

// Signal sends sig to the child without waiting for it.
func (c *Child) Signal(sig os.Signal) error { return c.Cmd.Process.Signal(sig) }

// Kill sends SIGKILL, reaps the child and waits until all it printed has
// been counted.
func (c *Child) Kill() {
	c.Cmd.Process.Signal(syscall.SIGKILL)
	c.Cmd.Wait()
	<-c.done
}

// Wait waits for the child to exit by itself and for its output to end.
func (c *Child) Wait() error {
	err := c.Cmd.Wait()
	<-c.done
	return err
}

// Threads returns the number of OS threads of this process.
func Threads(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// Goroutines waits up to 5 s for the number of goroutines to drop to base,
// as it should once a test has stopped everything it started, and returns
// the last count.
func Goroutines(base int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > base && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// Main is the body of a TestMain for tests that start children. In a child
// it runs child(Role(), Args()) and returns its exit status. Otherwise it
// runs the tests, then fails them if goroutines were left running or if
// files matching the glob leftovers (the tests' shared-memory files, say)
// were left behind, which it removes.
func Main(m *testing.M, child func(role string, args []string) int, leftovers string) int {
	if role := Role(); role != "" {
		return child(role, Args())
	}
	base := runtime.NumGoroutine()
	code := m.Run()
	if n := Goroutines(base); n > base {
		fmt.Fprintf(os.Stderr, "goroutines leaked: %d before the tests, %d after\n", base, n)
		code = max(code, 1)
	}
	if leftovers != "" {
		if left, _ := filepath.Glob(leftovers); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "files left behind: %v\n", left)
			for _, p := range left {
				os.Remove(p)
			}
			code = max(code, 1)
		}
	}
	return code
}
