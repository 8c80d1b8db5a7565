package proc

import (
	"errors"
	"strconv"
)

// ID names one process for its whole life: a pid plus the start time that
// tells it apart from later processes given the same pid.
type ID struct {
	PID   int32
	Start uint64 // starttime, field 22 of /proc/PID/stat (clock ticks since boot)
}

// String formats the ID as pid/start.
func (id ID) String() string {
	return strconv.FormatInt(int64(id.PID), 10) + "/" + strconv.FormatUint(id.Start, 10)
}

// ErrNotFound is returned by Lookup when no live process has the pid.
var ErrNotFound = errors.New("proc: no such process")
