// Package mq provides named message queues in shared memory for the
// processes of one host: many producers, one consumer, messages of any
// length up to a limit set when the queue is made.
//
// The consumer makes (or takes over) a queue with Create; producers attach
// with Open:
//
//	q, err := mq.Create("jobs", 1<<20, nil) // consumer
//	err = q.Listen(ctx, func(msg []byte) { ... })
//
//	p, err := mq.Open("jobs", nil) // producer, in any process
//	err = p.Send(ctx, []byte("hello"))
//
// A queue is a shared-memory segment (see package shm) holding Lanes+1
// lanes, each a single-producer ring of capacity bytes. A producer Queue
// leases a lane of its own at its first send and keeps it until Close;
// sending is then a copy and one store, with no lock shared with other
// producers (and on amd64 one locked instruction, for the Queue's own
// goroutines). When every dedicated lane is leased by a live process,
// further producers share lane 0, taking turns under a lock in shared
// memory. The consumer reads the lanes round-robin, in place.
//
// Memory: a queue holds the memory of its header and lane table (a few
// KiB) and of each lane's ring from the moment a producer first leases
// that lane: header + lanes in use × capacity, never more than
// (Lanes+1) × capacity. A queue with the default 16 lanes and one
// producer takes one ring. A lane's memory is reserved (fallocate) when
// it is leased, so a full /dev/shm makes that first send use the shared
// lane instead or, if that has no memory either, fail with ErrNoSpace,
// never a crash later; the lane's memory stays reserved for
// the next producer until the queue is removed.
//
// Guarantees:
//
//   - Messages sent through one Queue are received in the order they were
//     sent; each message is received once, whole. A Queue never changes
//     lanes. Messages of different Queues have no order relative to each
//     other, even if one was sent after the other's Send returned.
//   - A message whose Send returned nil will be received (unless the queue
//     is removed). Send waits while the lane is full (TrySend returns
//     ErrFull instead); nothing is dropped silently.
//   - A producer killed at any instant, even half way through writing a
//     message or holding the shared lane's lock, does not wedge or corrupt
//     the queue: a message becomes visible only once it is whole, the next
//     producer takes over a dead producer's lane (counted in
//     Stats.Takeovers), and a dead holder's lock is recovered within about
//     20 ms.
//   - A consumer that exits or dies leaves the unread messages in the
//     queue for the next Create. Messages a consumer had been given by
//     ReceiveBatch or Listen in a call that had not returned when it died
//     may be given again to the next consumer; Receive releases each
//     message before returning it.
//   - The consumer sleeps on a futex when every lane is empty, and
//     producers make the wake-up system call only when it sleeps.
//     Producers waiting for room first yield the core a few times (the
//     consumer that would make room may be waiting for it), then sleep on
//     a futex too.
//
// Who pays for the order that keeps a wake-up from being lost is the
// consumer's choice (Options.Fence): on amd64 producers may skip a fence
// per send if the consumer issues a membarrier system call each time it
// goes to sleep. That suits consumers that are busy or spin before
// sleeping (the default); a consumer that sleeps after most messages
// (negative Spin) makes its producers fence instead, since a membarrier
// per sleep would add to every message's latency.
//
// The byte layout and the protocols, with the argument for why no wake-up
// is lost, are described in docs/mq.md.
package mq
