// Package mq provides named message queues in shared memory for the
// processes of one host: many producers, one consumer, messages of any
// length up to a limit set when the queue is made.
//
// The consumer makes (or takes over) a queue with Create; producers attach
// with Open. A queue is a ring of bytes in a shared-memory segment (see
// package shm) that producers append records to without locks and the
// consumer reads in place:
//
//	q, err := mq.Create("jobs", 1<<20, nil) // consumer
//	err = q.Listen(ctx, func(msg []byte) { ... })
//
//	p, err := mq.Open("jobs", nil) // producer, in any process
//	err = p.Send(ctx, []byte("hello"))
//
// Guarantees:
//
//   - Messages from one goroutine are received in the order it sent them;
//     each message is received once, whole, or not at all.
//   - Send waits while the queue is full (TrySend returns ErrFull instead);
//     nothing is dropped silently.
//   - A producer killed while writing a message does not wedge the queue:
//     after Options.TornTimeout the consumer checks whether the producer
//     is alive (safe against pid reuse) and skips its half-written message
//     if not, counting it in Stats.Torn. A live producer, however slow, is
//     waited for.
//   - A consumer that exits or dies leaves the unread messages in the
//     queue for the next Create. Messages a consumer had been given by
//     ReceiveBatch or Listen in a call that had not returned when it died
//     may be given again to the next consumer; Receive releases each
//     message before returning it.
//   - The consumer sleeps on a futex when the queue is empty, and producers
//     make the wake-up system call only when it sleeps. Producers waiting
//     for room sleep on a futex too.
//
// The byte layout, the reservation and commit protocol and the wake-up
// protocol are described in docs/mq.md.
package mq
