package mq

import "errors"

var (
	// ErrFull is returned by TrySend when the ring has no room for the
	// message.
	ErrFull = errors.New("mq: queue full")
	// ErrTooLarge is returned for a message longer than the queue's
	// MaxMessage.
	ErrTooLarge = errors.New("mq: message too large")
	// ErrNotFound is returned by Open and Remove for a queue that does not
	// exist.
	ErrNotFound = errors.New("mq: queue not found")
	// ErrClosed is returned by calls on a closed Queue, including calls
	// that were blocked when Close was called.
	ErrClosed = errors.New("mq: queue closed")
	// ErrBusy is returned by Create when another live process (or another
	// Queue in this process) is already the queue's consumer.
	ErrBusy = errors.New("mq: queue already has a live consumer")
	// ErrNotConsumer is returned by the receiving methods of a Queue
	// returned by Open, which may only send.
	ErrNotConsumer = errors.New("mq: queue opened for sending only")
	// ErrCorrupt is returned when the shared memory does not hold a valid
	// queue, or a record in it is malformed. The queue is not used further.
	ErrCorrupt = errors.New("mq: corrupt queue")
	// ErrIncompatible is returned by Create and Open when the existing
	// queue was made with other parameters (capacity, message limit) or by
	// another layout version.
	ErrIncompatible = errors.New("mq: incompatible queue")
	// ErrNoSpace is returned by a Queue's first send when there is no
	// shared memory left (in /dev/shm) for the ring of the lane it
	// leases, nor for the shared lane it then falls back to; the error
	// also wraps shm.ErrNoSpace. The lane is given back and a later send
	// tries again.
	ErrNoSpace = errors.New("mq: no shared memory left for a lane")
)
