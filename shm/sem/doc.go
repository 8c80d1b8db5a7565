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
// reclaims the entries of dead processes. Unlike SEM_UNDO, releasing a unit
// a process did not acquire (one process acquires, another releases) does
// not skew the count: a Release only lowers the caller's own held count if
// it is above zero.
//
// The count and the table are updated under an shm.Mutex with an undo
// journal, so a process killed at any instruction leaves a state that the
// next user repairs. The byte layout is in docs/shm.md.
package sem
