//go:build !linux

package futex

import (
	"errors"
	"time"
)

// ErrTimeout is returned by Wait when the timeout passed before a wake.
var ErrTimeout = errors.New("futex: timed out")

// errUnsupported is returned on systems without futexes.
var errUnsupported = errors.New("futex: only supported on Linux")

// Wait is not supported outside Linux.
func Wait(addr *uint32, val uint32, timeout time.Duration) error { return errUnsupported }

// Wake is not supported outside Linux.
func Wake(addr *uint32, n int) (int, error) { return 0, errUnsupported }
