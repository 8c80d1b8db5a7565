// Package futex wraps the Linux futex system call for words that live in
// shared memory and are used by several processes.
//
// Only the shared (not FUTEX_PRIVATE_FLAG) operations are used, so a waiter
// in one process is woken by a Wake in another process that maps the same
// page, whatever address each process maps it at.
//
// Wait blocks the calling OS thread (the Go runtime hands its P to another
// thread meanwhile), so it should be called with a timeout when the caller
// also needs to notice a cancelled context.
package futex
