//go:build linux

package mq

import "golang.org/x/sys/unix"

// membarrier(2) commands (linux/membarrier.h); golang.org/x/sys does not
// name them.
const (
	membarrierQuery                    = 0
	membarrierGlobalExpedited          = 1 << 1
	membarrierRegisterGlobalExpedited  = 1 << 2
	membarrierGlobalExpeditedSupported = membarrierGlobalExpedited | membarrierRegisterGlobalExpedited
)

func membarrier(cmd int) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, uintptr(cmd), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// registerBarrier registers the process to receive the consumers'
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) calls, and reports whether
// it did: false if the kernel (before 4.16) or a seccomp filter refuses.
// Registering again is cheap and changes nothing.
func registerBarrier() bool {
	cmds, err := membarrier(membarrierQuery)
	if err != nil || cmds&membarrierGlobalExpeditedSupported != membarrierGlobalExpeditedSupported {
		return false
	}
	_, err = membarrier(membarrierRegisterGlobalExpedited)
	return err == nil
}

// globalBarrier executes a memory barrier on every running thread of
// every registered process (an IPI to each CPU running one), and reports
// whether it did. When it returns true, every load and store that a
// registered thread issued before the barrier is ordered before every one
// it issues after, as if each had executed a full fence at some point
// during the call; threads not running passed through the scheduler's
// fences.
func globalBarrier() bool {
	_, err := membarrier(membarrierGlobalExpedited)
	return err == nil
}
