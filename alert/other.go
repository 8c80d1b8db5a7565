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

func (g *Group) send(ctx context.Context, pid int, start uint64, name string, data []byte) error {
	return errUnsupported
}
