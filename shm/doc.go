// Package shm provides named shared-memory segments for the processes of
// one Linux host, and Mutex, a lock that lives inside a segment and survives
// the death of its holder.
//
// A segment is a file /dev/shm/procwire.<name> mapped with MAP_SHARED. It
// starts with a 128-byte header (magic, layout version, kind, the kind's
// own version, data size, creator pid and start time, creation time and a
// checksum) followed by the data area that Data returns. The layout is
// specified byte by byte in docs/shm.md.
//
// Guarantees:
//
//   - An attacher never sees a half-initialized segment. The creator builds
//     the segment in an unnamed file (O_TMPFILE), runs Options.Init on its
//     zeroed data area, writes the header's magic last, and only then gives
//     the file its name with link(2), which also makes Create exclusive.
//   - A segment of another kind, kind version or layout version, or a file
//     that is not a procwire segment, is refused with ErrIncompatible and is
//     never misread.
//   - Names are 1–200 characters of [A-Za-z0-9._-], never "." or "..", so a
//     name cannot escape /dev/shm. Segments are created 0600 by default.
//   - Memory is reserved (fallocate) before it is used, so a full /dev/shm
//     is an error wrapping ErrNoSpace, never a SIGBUS. A segment is
//     reserved in full when it is made, unless Options.Sparse asks that
//     only its header and a prefix be; the rest then takes memory only
//     once reserved with Allocate.
//   - Remove unlinks the name; processes that have the segment mapped keep
//     using it until they Close it.
//
// Mutex is a cross-process lock for a 64-byte slot of a segment. Taking and
// releasing it uncontended costs one atomic compare-and-swap each. Waiters
// sleep on a futex with a timeout and check whether the holder still lives;
// if it died holding the lock (kill -9), a waiter takes the lock over within
// a bounded time and is told so, so that it can repair the structure the
// lock protects. Holders are identified by pid and process start time, so a
// reused pid is not mistaken for the dead holder.
//
// All processes sharing a segment must see the same pid namespace and /proc.
package shm
