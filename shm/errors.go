package shm

import "errors"

// Errors returned by this package, testable with errors.Is. The errors
// returned wrap them, prefixed with "shm:", the operation and the segment's
// name, and followed by the details.
var (
	ErrNotFound     = errors.New("segment not found")
	ErrExists       = errors.New("segment already exists")
	ErrIncompatible = errors.New("incompatible segment")
	ErrInvalidName  = errors.New("invalid segment name")
	ErrClosed       = errors.New("segment closed")
	ErrOutOfRange   = errors.New("offset out of range")
	ErrNoSpace      = errors.New("no space left for shared memory")
)
