//go:build linux

package shm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/futex"
	"github.com/procwire/procwire/internal/proc/proctest"
)

// TestCancelledWaiterPassesWake: Unlock wakes one futex sleeper. If the
// sleeper it wakes is a Lock whose context was cancelled meanwhile, that
// Lock must pass the wake on before it returns ctx.Err(), or another
// sleeper stays asleep while the lock is free (a real Lock waiter would
// notice only at its next timeout). The other sleeper here waits on the
// futex without a timeout, so that a lost wake shows as such rather than
// as a delay. Which sleeper the kernel wakes depends on their order in the
// futex queue, so the test tries several rounds; one lost wake fails it.
func TestCancelledWaiterPassesWake(t *testing.T) {
	s := newSeg(t, MutexSize)
	holder := MutexAt(s.Data())
	for round := range 20 {
		if _, err := holder.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		w1 := MutexAt(s.Data()) // its own handle: its own futex sleeper
		go func() {
			_, err := w1.Lock(ctx)
			errc <- err
		}()
		for atomic.LoadUint64(holder.word)&waitersBit == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(round%7+1) * time.Millisecond) // w1 asleep by now
		woke := make(chan struct{})
		val := atomic.LoadUint32(holder.futex)
		go func() {
			futex.Wait(holder.futex, val, 0)
			close(woke)
		}()
		time.Sleep(2 * time.Millisecond)
		cancel()
		holder.Unlock()
		if err := <-errc; err == nil {
			holder.Unlock() // w1 took the lock before seeing the cancel
		} else if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		select {
		case <-woke:
		case <-time.After(time.Second):
			futex.Wake(holder.futex, 1<<31-1)
			<-woke
			t.Fatalf("round %d: a cancelled Lock took Unlock's wake and did not pass it on; the other sleeper slept on with the lock free", round)
		}
	}
}

// TestHidepidOwnerNotStolen: with /proc mounted hidepid=2 a process
// cannot see /proc/PID of another user's processes (ENOENT). A live holder
// of another user must not be taken for dead, or TryLock (or a waiting
// Lock) would take the lock it holds: two holders. The segment is shared
// across users (Mode 0666). The waiter runs in a private mount namespace
// with its own hidepid=2 /proc, so the host's /proc is not touched. Needs
// root, unshare(1) and setpriv(1).
func TestHidepidOwnerNotStolen(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to change uid and mount /proc")
	}
	for _, tool := range []string{"unshare", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool, "not found")
		}
	}
	name := segName(t)
	s, err := Create(name, MutexSize, &Options{Mode: 0o666})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s.Close()
	// A copy of the test binary that other users can run.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "shm.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	env := func(role string) []string {
		return append(os.Environ(), "PROCWIRE_TEST_ROLE="+role, "PROCWIRE_TEST_ARGS="+name)
	}
	holder := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", bin, "-test.run=^$")
	holder.Env = env("hold")
	if err := startHolder(t, holder); err != nil {
		t.Fatal(err)
	}
	waiter := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid 65533 --regid 65533 --clear-groups "$0" -test.run=^$`, bin)
	waiter.Env = env("trylock")
	waiter.Stderr = os.Stderr
	got, err := waiter.Output()
	if err != nil {
		t.Fatalf("waiter: %v (%s)", err, got)
	}
	if string(got) != "ok=false recovered=false\n" {
		t.Fatalf("TryLock by another user under hidepid=2 while the holder (pid %d) lives: %s", holder.Process.Pid, got)
	}
}

// TestTimeNamespaceOwnerNotStolen: /proc/PID/stat's start time is
// shifted by the boottime offset of the reader's time namespace. A holder
// in another time namespace (unshare -T --boottime N, same pid namespace
// and /proc) records its start time as it sees it; this process reads
// another value for the same live process, and must still not take the
// lock it holds. Needs root and unshare(1).
func TestTimeNamespaceOwnerNotStolen(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a time namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not found")
	}
	s := newSeg(t, MutexSize)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("unshare", "-T", "--boottime", "1000000", exe, "-test.run=^$")
	holder.Env = append(os.Environ(), "PROCWIRE_TEST_ROLE=hold", "PROCWIRE_TEST_ARGS="+s.Name())
	if err := startHolder(t, holder); err != nil {
		t.Skipf("no holder in a time namespace: %v", err)
	}
	m := MutexAt(s.Data())
	if ok, rec := m.TryLock(); ok {
		m.Unlock()
		t.Fatalf("TryLock took the lock of a live holder in another time namespace (recovered=%v)", rec)
	}
}

// TestReadAtWhileClose: Segment's methods may be called from several
// goroutines, and ReadAt after Close returns ErrClosed: a Close while a
// ReadAt copies must wait for the copy rather than unmap the memory under
// it (a fatal fault). Run in a child, so that a crash does not take the
// test binary down.
func TestReadAtWhileClose(t *testing.T) {
	s := newSeg(t, 64<<20)
	c := proctest.Start(t, "readwhileclose", s.Name(), "")
	if err := c.Wait(); err != nil {
		t.Fatalf("child crashed when Close ran under ReadAt: %v", err)
	}
}

// readWhileClose is the child of TestReadAtWhileClose.
func readWhileClose(s *Segment) int {
	buf := make([]byte, s.Size())
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := s.ReadAt(buf, 0); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		return 4
	}
	return 0
}

// startHolder starts cmd, a child in the role "hold" that takes the
// test's lock and says "locked", and kills it when the test ends.
func startHolder(t *testing.T, cmd *exec.Cmd) error {
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		return fmt.Errorf("holder said %q, %v", line, err)
	}
	return nil
}
