package mq

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// sendLock serialises the goroutines sending through one Queue. It exists
// because sync.Mutex costs two locked instructions per send (the CAS of
// Lock and the XADD of Unlock), and on the single-send fast path each of
// them waits for the store buffer to drain, which holds the previous
// send's stores to a cache line the consumer has just taken back: at
// 10-byte messages the two were a quarter of a send's cost.
//
// A fast holder (tryFast) takes the lock with one CAS and holds it for a
// copy and a few stores, never blocking; it releases it with a plain store
// where the platform allows (unlockFast). A slow holder (lock) may block
// while it holds the lock (the shared lane's lock, a lease, fallocate); it
// releases it with an atomic store and wakes a waiter.
//
// A plain-store release cannot check for waiters (that needs a store-load
// fence), so waiters do not sleep while a fast holder has the lock: they
// poll, which costs nothing much since a fast holder keeps it for tens of
// nanoseconds. Only one goroutine polls at a time, the one holding queue;
// the others sleep on queue. While it waits (want = 1) a fast acquirer
// gives the lock back at once and queues too, so waiters are not starved
// by a goroutine sending in a loop.
type sendLock struct {
	state uint32        // lockFree, lockFast or lockSlow; released with a plain store by unlockFast
	want  atomic.Uint32 // 1 while a goroutine waits for state
	queue sync.Mutex    // held by the waiting goroutine; the next ones sleep here
	token chan struct{} // capacity 1: a slow holder's release wakes a waiter blocked on it
}

const (
	lockFree = iota
	lockFast // held by tryFast: released within nanoseconds, never blocks
	lockSlow // held by lock: may block, releases with unlock, which wakes a waiter
)

// tryFast takes the lock for a short, non-blocking critical section, if it
// is free and nobody waits for it. The caller releases it with unlockFast.
func (k *sendLock) tryFast() bool {
	if !atomic.CompareAndSwapUint32(&k.state, lockFree, lockFast) {
		return false
	}
	if k.want.Load() == 0 {
		return true
	}
	// Let the waiter have its turn: it is polling for lockFree, not
	// blocked on token.
	atomic.StoreUint32(&k.state, lockFree)
	return false
}

// unlockFast releases a lock taken by tryFast. With plain set (see
// releasePlain), the release is a plain store: on amd64 it is a release
// store all the same (stores are not reordered with earlier loads and
// stores), and it spares the send a locked instruction. Then the caller's
// later loads may pass the store; the wake-up protocol accounts for that
// (see docs/mq.md).
func (k *sendLock) unlockFast(plain bool) {
	if plain {
		releasePlain(&k.state)
		return
	}
	atomic.StoreUint32(&k.state, lockFree)
}

// lock takes the lock for a critical section that may block.
func (k *sendLock) lock() {
	if atomic.CompareAndSwapUint32(&k.state, lockFree, lockSlow) {
		if k.want.Load() == 0 {
			return
		}
		k.unlock() // a waiter was first
	}
	k.queue.Lock()
	k.want.Store(1)
	for i := 0; ; i++ {
		// The store of want above comes before this load (both are
		// sequentially consistent) and unlock stores lockFree before it
		// loads want: so if we see lockSlow, that holder's unlock sees
		// want = 1 and sends a token.
		switch atomic.LoadUint32(&k.state) {
		case lockFree:
			if atomic.CompareAndSwapUint32(&k.state, lockFree, lockSlow) {
				k.want.Store(0)
				k.queue.Unlock()
				return
			}
		case lockSlow:
			<-k.token // may be stale: look again
		default:
			// A fast holder: gone in nanoseconds unless it was
			// preempted, in which case it needs our CPU.
			if i%64 == 63 {
				runtime.Gosched()
			}
		}
	}
}

// unlock releases a lock taken by lock.
func (k *sendLock) unlock() {
	atomic.StoreUint32(&k.state, lockFree)
	if k.want.Load() != 0 {
		select {
		case k.token <- struct{}{}:
		default: // one is already pending
		}
	}
}
