//go:build linux

package mq

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/internal/futex"
	"github.com/procwire/procwire/internal/proc"
)

// osPlatform is the platform of a real queue: shared futexes and /proc.
type osPlatform struct{}

func (osPlatform) wait(addr *uint32, val uint32, timeout time.Duration) bool {
	err := futex.Wait(addr, val, timeout)
	switch {
	case err == futex.ErrTimeout:
		return false
	case err != nil:
		// Not expected (the word is mapped and aligned); sleeping keeps a
		// caller's retry loop from spinning on it.
		time.Sleep(time.Millisecond)
	}
	return true
}

func (osPlatform) wake(addr *uint32, n int) { _, _ = futex.Wake(addr, n) }

func (osPlatform) register() bool { return registerBarrier() }

// yield first lets this process's other goroutines run (the consumer may
// be one of them, on this very P), then gives the core away with
// sched_yield, made as a raw system call as the runtime's own spin loops
// make it: the thread stays runnable and keeps its P, so the scheduler
// neither hands the P to another thread when the yield lasts (a time
// slice on a busy machine) nor has to find one again afterwards. That
// hand-off is what made an ordinary system call here no cheaper than a
// futex sleep.
func (osPlatform) yield() {
	runtime.Gosched()
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}

func (osPlatform) barrier() bool { return globalBarrier() }

func (osPlatform) alive(pid int32, start uint64) bool {
	return proc.Alive(proc.ID{PID: pid, Start: start})
}

func selfIdent() ident {
	id := proc.Self()
	return ident{pid: id.PID, start: id.Start}
}
