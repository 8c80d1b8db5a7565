//go:build !linux

package proc

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("proc: process start times need Linux /proc")

// Self returns the calling process's ID; outside Linux the start time is 0.
func Self() ID { return ID{PID: int32(os.Getpid())} }

// Lookup is not supported outside Linux.
func Lookup(pid int32) (ID, error) { return ID{}, errUnsupported }

// Alive cannot tell outside Linux and answers true, the safe answer for locks.
func Alive(id ID) bool { return true }

// SameTimeNamespace answers true outside Linux, where start times are not used.
func SameTimeNamespace(pid int32) bool { return true }
