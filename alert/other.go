//go:build !linux

package alert

import (
	"context"
	"errors"
)

// errUnsupported is returned by Join on systems other than Linux: the
// package needs futexes, pidfds and /dev/shm.
var errUnsupported = errors.New("alert: only supported on Linux")

// Group is a membership in an alert group; on this system none can be made.
type Group struct{ handlers handlers }

// Join returns an error on systems other than Linux.
func Join(ctx context.Context, group string, cfg *Config) (*Group, error) { return nil, errUnsupported }

// ListMembers returns an error on systems other than Linux.
func ListMembers(ctx context.Context, group string) ([]Member, error) { return nil, errUnsupported }

// Send returns an error on systems other than Linux.
func (g *Group) Send(ctx context.Context, pid int, name string, data []byte) error {
	return errUnsupported
}

// SendMany returns an error on systems other than Linux.
func (g *Group) SendMany(ctx context.Context, pid int, msgs []Message) (int, error) {
	return 0, errUnsupported
}

// Broadcast returns an error on systems other than Linux.
func (g *Group) Broadcast(ctx context.Context, name string, data []byte) error {
	return errUnsupported
}

// Members returns nil on systems other than Linux.
func (g *Group) Members() []Member { return nil }

// Close does nothing on systems other than Linux.
func (g *Group) Close() error { return nil }

// Leave is Close.
func (g *Group) Leave() error { return nil }

// Name returns "" on systems other than Linux.
func (g *Group) Name() string { return "" }

// PID returns 0 on systems other than Linux.
func (g *Group) PID() int { return 0 }

// Stats returns zero counters on systems other than Linux.
func (g *Group) Stats() Stats { return Stats{} }

func (g *Group) handling(a *Alert) bool { return false }

func (g *Group) send(ctx context.Context, pid int, start uint64, name string, data []byte) error {
	return errUnsupported
}
