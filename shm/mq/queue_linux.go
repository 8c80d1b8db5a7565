//go:build linux

package mq

import (
	"errors"
	"fmt"

	"github.com/procwire/procwire/shm"
)

func (o *Options) norm() (Options, error) {
	var n Options
	if o != nil {
		n = *o
	}
	if n.TornTimeout < 0 {
		return n, fmt.Errorf("mq: negative TornTimeout %v", n.TornTimeout)
	}
	if n.TornTimeout == 0 {
		n.TornTimeout = DefaultTornTimeout
	}
	if n.Spin == 0 {
		n.Spin = DefaultSpin
	}
	if n.MaxMessage < 0 {
		return n, fmt.Errorf("mq: negative MaxMessage %d", n.MaxMessage)
	}
	return n, nil
}

// Create makes the queue called name with a ring of capacity bytes (rounded
// up to a power of two, at least MinCapacity) and returns the consumer's
// Queue. If the queue exists with the same capacity, Create attaches to it
// as its new consumer and the unread messages are kept; if it has another
// capacity Create returns ErrIncompatible, and if it has a live consumer,
// ErrBusy. The name follows package shm's rules: 1–200 characters of
// [A-Za-z0-9._-].
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
	so := &shm.Options{
		Mode:    o.Mode,
		Kind:    shm.KindMQ,
		Version: layoutVersion,
		Init:    func(data []byte) error { return initLayout(data, c, maxMsg) },
	}
	seg, err := shm.Open(name, layoutSize(c), so)
	if err != nil {
		return nil, wrapShm("create", name, err)
	}
	q, err := newOSQueue(seg, o, true)
	if err != nil {
		seg.Close()
		return nil, err
	}
	if q.r.size != uint64(c) {
		q.r.releaseOwner()
		seg.Close()
		return nil, fmt.Errorf("%w: %s has a %d-byte ring, not %d", ErrIncompatible, name, q.r.size, c)
	}
	return q, nil
}

// Open attaches to the existing queue called name as a producer. It
// returns ErrNotFound if there is no such queue.
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
	r, err := newRing(seg.Data(), osPlatform{}, selfIdent(), o.TornTimeout)
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
