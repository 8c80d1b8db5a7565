//go:build linux

package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// self is computed once: a process's ID never changes.
var self = sync.OnceValue(func() ID {
	pid := int32(os.Getpid())
	id, err := Lookup(pid)
	if err != nil {
		// Without /proc the start time is unknown; Alive then falls back
		// to the pid alone.
		return ID{PID: pid}
	}
	return id
})

// Self returns the calling process's ID. It is computed once and cached.
func Self() ID { return self() }

// Lookup returns the ID of the live process with the given pid. It returns
// ErrNotFound if there is none or it is a zombie, and another error if
// /proc could not be read.
func Lookup(pid int32) (ID, error) {
	if pid <= 0 {
		return ID{}, fmt.Errorf("proc: pid %d: %w", pid, ErrNotFound)
	}
	var path [32]byte
	p := append(path[:0], "/proc/"...)
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, "/stat"...)
	var buf [1024]byte
	n, err := readFile(string(p), buf[:])
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return ID{}, fmt.Errorf("proc: pid %d: %w", pid, ErrNotFound)
		}
		return ID{}, fmt.Errorf("proc: read %s: %w", p, err)
	}
	state, start, err := parseStat(buf[:n])
	if err != nil {
		return ID{}, fmt.Errorf("proc: %s: %w", p, err)
	}
	if state == 'Z' || state == 'X' || state == 'x' {
		return ID{}, fmt.Errorf("proc: pid %d is a zombie: %w", pid, ErrNotFound)
	}
	return ID{PID: pid, Start: start}, nil
}

// Alive reports whether the process named by id still runs: a process with
// that pid exists, is not a zombie, and started at id.Start. An ID with
// Start == 0 (start time unknown) is checked by pid alone. If /proc cannot
// be read for another reason, Alive falls back to kill(pid, 0) and, when in
// doubt, answers true: wrongly calling a live process dead would break the
// locks that rely on it, while the opposite only delays a recovery.
func Alive(id ID) bool {
	cur, err := Lookup(id.PID)
	switch {
	case err == nil:
		return id.Start == 0 || cur.Start == id.Start
	case errors.Is(err, ErrNotFound):
		return false
	default:
		if id.PID <= 0 {
			return false
		}
		return unix.Kill(int(id.PID), 0) != unix.ESRCH
	}
}

// readFile reads a small file into buf without the allocations of os.ReadFile;
// the locks call Alive while they wait.
func readFile(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}
