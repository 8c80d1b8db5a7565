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

// self is computed once: a process's ID never changes. It is read through
// /proc/self, and its Start is left 0 when that /proc does not belong to
// this process's pid namespace (its pid differs from getpid), because then
// no pid found in /proc can be trusted either.
var self = sync.OnceValue(func() ID {
	pid := int32(os.Getpid())
	var buf [1024]byte
	n, err := readFile("/proc/self/stat", buf[:])
	if err != nil {
		return ID{PID: pid}
	}
	statPID, _ := parseStatPID(buf[:n])
	_, start, err := parseStat(buf[:n])
	if err != nil || statPID != pid {
		return ID{PID: pid}
	}
	return ID{PID: pid, Start: start}
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
			// /proc mounted with hidepid=2 hides other users' processes
			// as if they did not exist: ask the kernel before calling
			// the process gone.
			if kerr := unix.Kill(int(pid), 0); kerr != unix.ESRCH {
				return ID{}, fmt.Errorf("proc: pid %d exists but %s cannot be read (hidepid?): %w", pid, p, err)
			}
			return ID{}, fmt.Errorf("proc: pid %d: %w", pid, ErrNotFound)
		}
		return ID{}, fmt.Errorf("proc: read %s: %w", p, err)
	}
	state, start, err := parseStat(buf[:n])
	if err != nil {
		return ID{}, fmt.Errorf("proc: %s: %w", p, err)
	}
	if (state == 'Z' || state == 'X' || state == 'x') && !otherThreads(pid) {
		return ID{}, fmt.Errorf("proc: pid %d is a zombie: %w", pid, ErrNotFound)
	}
	return ID{PID: pid, Start: start}, nil
}

// Alive reports whether the process named by id still runs: a process with
// that pid exists, is not a zombie, and started at id.Start. An ID with
// Start == 0 (start time unknown) is checked by pid alone.
//
// When /proc is not usable (not mounted, or from another pid namespace:
// Self().Start == 0), Alive falls back to kill(pid, 0), which cannot see pid
// reuse or zombies. When /proc cannot be read for another reason it answers
// true: wrongly calling a live process dead would break the locks that rely
// on it, while the opposite only delays a recovery.
func Alive(id ID) bool {
	if id.PID <= 0 {
		return false
	}
	if Self().Start == 0 {
		return unix.Kill(int(id.PID), 0) != unix.ESRCH
	}
	cur, err := Lookup(id.PID)
	switch {
	case err == nil:
		return id.Start == 0 || cur.Start == id.Start || !SameTimeNamespace(id.PID)
	case errors.Is(err, ErrNotFound):
		return false
	default:
		return true
	}
}

// SameTimeNamespace reports whether process pid is in this process's time
// namespace. The start time in /proc/PID/stat is shifted by the boottime
// offset of the reader's time namespace, so a process records another
// start time for itself than one in another time namespace reads for it:
// start times can tell processes apart only within one time namespace. It
// answers false when it cannot tell, true if pid is gone or the kernel has
// no time namespaces.
func SameTimeNamespace(pid int32) bool {
	own, err := os.Readlink("/proc/self/ns/time")
	if err != nil {
		return true // no time namespaces (before Linux 5.6)
	}
	other, err := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/ns/time")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	return other == own
}

// otherThreads reports whether the process pid has threads besides its
// main one. A process whose main thread exited while others run (a C
// program calling pthread_exit in main) shows the main thread as a zombie,
// yet it lives on. When unsure it answers true.
func otherThreads(pid int32) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/task")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return true
	}
	self := strconv.Itoa(int(pid))
	for _, n := range names {
		if n != self {
			return true
		}
	}
	return false
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
