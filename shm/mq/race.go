//go:build race

package mq

import "sync/atomic"

// raceSync exists for the race detector only. It cannot see the
// synchronization a queue really provides (atomics on shared memory
// outside the Go heap), so a message passed between goroutines of one
// process would look like a race between the sender's earlier writes and
// the receiver's reads; callers would need workarounds of their own. An
// atomic add (a release and an acquire to the detector) at each hand-off
// (a producer publishing a record, the consumer seeing it, the consumer
// publishing a head, a producer seeing it) gives it the happens-before
// edges that the lanes provide. Race builds only: it costs a shared cache
// line per hand-off.
var raceSync atomic.Uint64

func raceRelease() { raceSync.Add(1) }
func raceAcquire() { raceSync.Add(1) }
