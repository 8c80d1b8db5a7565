package mq

import (
	"sync"
	"testing"
	"time"
)

// TestSendLock: goroutines taking the lock on the fast and the slow path,
// some of the slow ones sleeping while they hold it, exclude each other
// (the race detector checks the unguarded counter too), and a goroutine
// taking the fast path in a tight loop does not starve the slow ones.
func TestSendLock(t *testing.T) {
	k := sendLock{token: make(chan struct{}, 1)}
	var (
		count     int // guarded by k
		wg        sync.WaitGroup
		stop      = make(chan struct{})
		fastTaken int
	)
	wg.Go(func() { // the tight loop
		for {
			select {
			case <-stop:
				return
			default:
			}
			if k.tryFast() {
				count++
				fastTaken++
				k.unlockFast(plainStores)
			}
		}
	})
	const slow, rounds = 4, 500
	var slowWG sync.WaitGroup
	for range slow {
		slowWG.Go(func() {
			for i := range rounds {
				k.lock()
				count++
				if i%50 == 0 {
					time.Sleep(100 * time.Microsecond) // a holder that blocks
				}
				k.unlock()
				if k.tryFast() { // and the fast path from the same goroutines
					count++
					k.unlockFast(false)
				} else {
					k.lock()
					count++
					k.unlock()
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { slowWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("slow lockers starved")
	}
	close(stop)
	wg.Wait()
	k.lock()
	defer k.unlock()
	if want := fastTaken + slow*rounds*2; count != want {
		t.Errorf("count %d, want %d: the lock did not exclude", count, want)
	}
}
