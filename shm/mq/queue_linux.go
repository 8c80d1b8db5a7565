//go:build linux

package mq

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/procwire/procwire/shm"
)

func (o *Options) norm() (Options, error) {
	var n Options
	if o != nil {
		n = *o
	}
	if n.Lanes < 0 || n.Lanes > MaxLanes {
		return n, fmt.Errorf("mq: Lanes %d out of range (0..%d)", n.Lanes, MaxLanes)
	}
	if n.Spin == 0 {
		n.Spin = DefaultSpin
	}
	switch n.Fence {
	case FenceAuto:
		n.Fence = FenceConsumer
		if n.Spin < 0 {
			n.Fence = FenceProducers
		}
	case FenceProducers, FenceConsumer:
	default:
		return n, fmt.Errorf("mq: unknown %v", n.Fence)
	}
	if n.MaxMessage < 0 {
		return n, fmt.Errorf("mq: negative MaxMessage %d", n.MaxMessage)
	}
	return n, nil
}

// Create makes the queue called name, with Options.Lanes dedicated lanes
// plus a shared one, each a ring of capacity bytes (rounded up to a power
// of two, at least MinCapacity), and returns the consumer's Queue. If the
// queue exists with the same capacity, Create attaches to it as its new
// consumer and the unread messages are kept; if it has another capacity
// (or lane count, if Options.Lanes is set) Create returns
// ErrIncompatible, and if it has a live consumer, ErrBusy. The name
// follows package shm's rules: 1–200 characters of [A-Za-z0-9._-].
func Create(name string, capacity int, opts *Options) (*Queue, error) {
	o, err := opts.norm()
	if err != nil {
		return nil, err
	}
	c, err := roundCapacity(capacity)
	if err != nil {
		return nil, err
	}
	maxMsg, err := maxMessageFor(o.MaxMessage, c)
	if err != nil {
		return nil, err
	}
	lanes := o.Lanes
	if lanes == 0 {
		lanes = DefaultLanes
	}
	if err := checkLanes(lanes, c); err != nil {
		return nil, err
	}
	seg, err := createOrAttach(name, c, maxMsg, lanes, o.Mode)
	if err != nil {
		return nil, err
	}
	q, err := newOSQueue(seg, o, true)
	if err != nil {
		seg.Close()
		return nil, err
	}
	fail := func(format string, args ...any) (*Queue, error) {
		q.Close() // gives the consumer role back before the unmapping
		seg.Close()
		return nil, fmt.Errorf("%w: %s has "+format, append([]any{ErrIncompatible, name}, args...)...)
	}
	if q.r.size != uint64(c) {
		return fail("%d-byte lanes, not %d", q.r.size, c)
	}
	if o.Lanes != 0 && q.r.nlanes-1 != o.Lanes {
		return fail("%d lanes, not %d", q.r.nlanes-1, o.Lanes)
	}
	return q, nil
}

// createOrAttach attaches the segment of an existing queue, whatever its
// size, or makes a new one.
func createOrAttach(name string, capacity, maxMsg, lanes int, mode os.FileMode) (*shm.Segment, error) {
	so := &shm.Options{
		Mode:    mode,
		Kind:    shm.KindMQ,
		Version: layoutVersion,
		Init:    func(data []byte) error { return initLayout(data, capacity, maxMsg, lanes) },
		// The rings take memory only once leased (see reserveLane).
		Sparse:  true,
		Reserve: ringsAt(lanes),
	}
	for range 10 {
		seg, err := shm.Attach(name, so)
		if !errors.Is(err, shm.ErrNotFound) {
			if err != nil {
				return nil, wrapShm("create", name, err)
			}
			return seg, nil
		}
		seg, err = shm.Create(name, layoutSize(capacity, lanes), so)
		if !errors.Is(err, shm.ErrExists) {
			if err != nil {
				return nil, wrapShm("create", name, err)
			}
			return seg, nil
		}
	}
	return nil, fmt.Errorf("mq: create %s: the queue keeps being made and removed", name)
}

// Open attaches to the existing queue called name as a producer. It
// returns ErrNotFound if there is no such queue. The Queue leases a lane
// at its first send.
func Open(name string, opts *Options) (*Queue, error) {
	o, err := opts.norm()
	if err != nil {
		return nil, err
	}
	seg, err := shm.Attach(name, &shm.Options{Kind: shm.KindMQ, Version: layoutVersion})
	if err != nil {
		return nil, wrapShm("open", name, err)
	}
	q, err := newOSQueue(seg, o, false)
	if err != nil {
		seg.Close()
		return nil, err
	}
	return q, nil
}

func newOSQueue(seg *shm.Segment, o Options, consumer bool) (*Queue, error) {
	name := seg.Name()
	r, err := newRing(seg.Data(), osPlatform{}, selfIdent(), seg.Allocate)
	if err != nil {
		return nil, fmt.Errorf("%w (queue %s)", err, name)
	}
	maxMsg := r.maxMsg
	if o.MaxMessage > 0 {
		if o.MaxMessage > maxMsg {
			return nil, fmt.Errorf("%w: MaxMessage %d exceeds the limit %d of queue %s", ErrIncompatible, o.MaxMessage, maxMsg, name)
		}
		maxMsg = o.MaxMessage
	}
	if consumer {
		if err := r.claimOwner(); err != nil {
			return nil, fmt.Errorf("%w (queue %s)", err, name)
		}
		var v uint32
		if o.Fence == FenceProducers {
			v = 1
		}
		atomic.StoreUint32(r.fence, v)
	}
	return newQueue(r, name, consumer, maxMsg, o.Spin, seg.Close), nil
}

func wrapShm(op, name string, err error) error {
	switch {
	case errors.Is(err, shm.ErrNotFound):
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	case errors.Is(err, shm.ErrIncompatible):
		return fmt.Errorf("%w: %s: %w", ErrIncompatible, name, err)
	}
	return fmt.Errorf("mq: %s %s: %w", op, name, err)
}

// Remove deletes the queue called name. Processes that have it open keep
// using it until they close it; a later Create makes a new, empty queue.
// It returns ErrNotFound if there is no such queue, and ErrIncompatible if
// the segment of that name is not a queue.
func Remove(name string) error {
	seg, err := shm.Attach(name, &shm.Options{Kind: shm.KindMQ, Version: layoutVersion})
	if err != nil {
		return wrapShm("remove", name, err)
	}
	seg.Close()
	if err := shm.Remove(name); err != nil {
		return wrapShm("remove", name, err)
	}
	return nil
}
