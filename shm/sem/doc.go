// Package sem provides named counting semaphores shared by the processes of
// one Linux host, in shared memory.
//
// A semaphore lives in the shm segment "sem.<name>" (file
// /dev/shm/procwire.sem.<name>). Open creates it with an initial count or
// opens the existing one; opening never resets the count (node_ipc's
// semCreate did, breaking mutual exclusion).
//
// Acquire takes one unit, sleeping on a futex while there is none;
// TryAcquire never waits; Release gives one back and wakes sleepers only
// if there are any. Uncontended, an Acquire+Release pair makes no system
// call.
//
// With Options.Undo, the units a process acquires and has not released are
// given back when it dies, as SEM_UNDO does for System V semaphores: each
// such process has an entry {pid, start time, units held} in a table in the
// segment, and any process that would have to wait for a unit first
// reclaims the entries of dead processes.
//
// Undo is meant for units that the same process acquires and releases, as
// with a lock. A Release lowers the caller's held count only if it is above
// zero, so, unlike SEM_UNDO, a process releasing units it never acquired
// never has a unit taken back when it exits. But a unit acquired with Undo
// and released by another process still counts as held by the acquirer,
// and comes back a second time if the acquirer dies: for units handed from
// one process to another, open without Undo. The same holds within one
// process for a unit acquired through a Sem opened with Undo and released
// through one opened without it: release through the handle that acquired.
//
// The count and the table are updated under an shm.Mutex with an undo
// journal, so a process killed at any instruction leaves a state that the
// next user repairs. The byte layout is in docs/shm.md.
package sem
