//go:build linux

package futex

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/internal/proc/proctest"
)

func TestMain(m *testing.M) {
	os.Exit(proctest.Main(m, func(role string, args []string) int {
		// "wait PATH": wait on the file's first word until it is non-zero.
		w, unmap, err := mapWord(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		defer unmap()
		fmt.Println("waiting")
		for atomic.LoadUint32(w) == 0 {
			if err := Wait(w, 0, 0); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
		}
		fmt.Println("woke")
		return 0
	}, "/dev/shm/procwire-futex-test-*"))
}

func mapWord(path string) (*uint32, func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return (*uint32)(unsafe.Pointer(&mem[0])), func() { unix.Munmap(mem) }, nil
}

// TestWakeOtherProcess has a child process sleep on a word of a shared
// file and wakes it from the parent.
func TestWakeOtherProcess(t *testing.T) {
	path := filepath.Join("/dev/shm", "procwire-futex-test-"+t.Name()+"-"+itoa(os.Getpid()))
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	w, unmap, err := mapWord(path)
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	c := proctest.Start(t, "wait", path)
	defer c.Kill()
	c.WaitLine(t, "waiting")
	time.Sleep(20 * time.Millisecond) // most likely asleep in the kernel by now
	atomic.StoreUint32(w, 1)
	if _, err := Wake(w, 1); err != nil {
		t.Fatal(err)
	}
	c.WaitLine(t, "woke")
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
}

// sharedWord maps a one-page file in /dev/shm with MAP_SHARED, the way
// procwire segments are mapped, and returns a word in it.
func sharedWord(t *testing.T) *uint32 {
	t.Helper()
	path := filepath.Join("/dev/shm", "procwire-futex-test-"+t.Name()+"-"+itoa(os.Getpid()))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Remove(path)
	if err := f.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return (*uint32)(unsafe.Pointer(&mem[0]))
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func TestWaitValueChanged(t *testing.T) {
	w := sharedWord(t)
	atomic.StoreUint32(w, 7)
	if err := Wait(w, 6, time.Second); err != nil {
		t.Fatalf("Wait with a stale value = %v, want nil (EAGAIN)", err)
	}
}

func TestWaitTimeout(t *testing.T) {
	w := sharedWord(t)
	start := time.Now()
	err := Wait(w, 0, 20*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Wait returned after %v, before its timeout", d)
	}
}

func TestWakeWakesWaiter(t *testing.T) {
	w := sharedWord(t)
	done := make(chan error, 1)
	go func() {
		// Loop as every futex user must: a return is only a hint.
		for atomic.LoadUint32(w) == 0 {
			if err := Wait(w, 0, 0); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		atomic.StoreUint32(w, 1)
		if _, err := Wake(w, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("waiter was never woken")
		}
	}
}

func TestWakeNobody(t *testing.T) {
	w := sharedWord(t)
	n, err := Wake(w, 1<<31-1)
	if err != nil || n != 0 {
		t.Fatalf("Wake with no waiters = %d, %v; want 0, nil", n, err)
	}
}
