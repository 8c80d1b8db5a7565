package shm

import "errors"

// Errors returned by this package, testable with errors.Is. The errors
// returned wrap them with the segment's name and the details.
var (
	ErrNotFound     = errors.New("shm: segment not found")
	ErrExists       = errors.New("shm: segment already exists")
	ErrIncompatible = errors.New("shm: incompatible segment")
	ErrInvalidName  = errors.New("shm: invalid segment name")
	ErrClosed       = errors.New("shm: segment closed")
	ErrOutOfRange   = errors.New("shm: offset out of range")
)
