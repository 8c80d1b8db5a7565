//go:build linux

package futex

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The futex operations, without FUTEX_PRIVATE_FLAG so that they work across
// processes (x/sys/unix does not export them).
const (
	opWait = 0 // FUTEX_WAIT
	opWake = 1 // FUTEX_WAKE
)

// ErrTimeout is returned by Wait when the timeout passed before a wake.
var ErrTimeout = errors.New("futex: timed out")

// Wait sleeps while *addr == val, until a Wake on addr or the timeout.
// A timeout <= 0 waits forever. It returns nil after a wake, or at once if
// *addr != val (the kernel's EAGAIN), and ErrTimeout when the timeout passed.
// Signals (EINTR) are retried with the remaining time. Spurious returns are
// possible, as with every futex: callers re-check their condition.
func Wait(addr *uint32, val uint32, timeout time.Duration) error {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		var tsp *unix.Timespec
		var ts unix.Timespec
		if timeout > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return ErrTimeout
			}
			ts = unix.NsecToTimespec(int64(left))
			tsp = &ts
		}
		// FUTEX_WAIT's timeout is relative (CLOCK_MONOTONIC).
		_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)),
			opWait, uintptr(val), uintptr(unsafe.Pointer(tsp)), 0, 0)
		switch errno {
		case 0, unix.EAGAIN:
			return nil
		case unix.ETIMEDOUT:
			return ErrTimeout
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("futex: wait: %w", errno)
		}
	}
}

// Wake wakes at most n waiters sleeping on addr (math.MaxInt32 for all) and
// returns how many were woken.
func Wake(addr *uint32, n int) (int, error) {
	if n < 0 {
		n = 0
	}
	if n > 1<<31-1 {
		n = 1<<31 - 1
	}
	r, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)),
		opWake, uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("futex: wake: %w", errno)
	}
	return int(r), nil
}
