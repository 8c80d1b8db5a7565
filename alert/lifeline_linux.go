//go:build linux

package alert

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A lifeline lets senders learn that this process died without a system
// call and without waiting for anyone to notice: it is the kernel's robust
// futex list (set_robust_list(2)), the mechanism behind robust pthread
// mutexes, used for one word. A goroutine locked to its OS thread registers
// a list whose one entry is the member's life word in its registry slot,
// and that word holds the thread's TID. When the thread exits, and it does
// only when the whole process dies (or execs), the kernel sets the
// FUTEX_OWNER_DIED bit in the word before the process's exit is visible
// anywhere else: before its pidfd becomes readable and before its parent
// can reap it. A sender that loads the word after putting an alert in the
// member's inbox therefore knows whether the member was still alive at
// that moment.
type lifeline struct {
	head  robustHead
	entry robustEntry
	tid   uint32
	stop  chan struct{}
	done  chan struct{}
}

// robustEntry and robustHead are the kernel's struct robust_list and
// struct robust_list_head (pointers and a long, in the C ABI).
type robustEntry struct{ next uintptr }

type robustHead struct {
	list    robustEntry // first entry; pointing at itself means empty
	offset  int         // from an entry to its futex word
	pending uintptr     // list_op_pending, unused
}

// ownerDied is FUTEX_OWNER_DIED, the bit the kernel sets in the life word.
const ownerDied = 0x40000000

// startLifeline starts the goroutine that holds the lifeline's thread and
// registers an empty list on it; arm then points it at a word.
func startLifeline() (*lifeline, error) {
	l := &lifeline{stop: make(chan struct{}), done: make(chan struct{})}
	l.head.list.next = uintptr(unsafe.Pointer(&l.head))
	errc := make(chan error, 1)
	go func() {
		defer close(l.done)
		// Never unlocked while the list is registered: the thread must
		// live exactly as long as the process, or until Close.
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SET_ROBUST_LIST, uintptr(unsafe.Pointer(&l.head)), unsafe.Sizeof(l.head), 0); e != 0 {
			runtime.UnlockOSThread()
			errc <- e
			return
		}
		l.tid = uint32(unix.Gettid())
		errc <- nil
		<-l.stop
		// Unregister before the thread goes back to the runtime, which
		// may end it: the word's mapping may be gone by then, or the
		// slot reused.
		unix.RawSyscall(unix.SYS_SET_ROBUST_LIST, 0, unsafe.Sizeof(l.head), 0)
		runtime.UnlockOSThread()
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return l, nil
}

// arm makes word the list's one entry. The caller then stores l.tid in
// word. The kernel reads the list only when the thread exits, so the
// entry can be written from any thread; the head's first pointer is
// written last, so that a death in between finds an empty list.
func (l *lifeline) arm(word *uint32) {
	l.entry.next = uintptr(unsafe.Pointer(&l.head))
	l.head.offset = int(uintptr(unsafe.Pointer(word)) - uintptr(unsafe.Pointer(&l.entry)))
	atomic.StoreUintptr(&l.head.list.next, uintptr(unsafe.Pointer(&l.entry)))
}

// close unregisters the list and releases the thread. After it returns
// the kernel no longer writes to the word.
func (l *lifeline) close() {
	if l == nil {
		return
	}
	close(l.stop)
	<-l.done
}
