// Package proc identifies processes in a way that survives pid reuse.
//
// A pid alone does not name a process for long: once it exits, the kernel
// may give the same pid to a new process. An ID pairs the pid with the
// process's start time (field 22 of /proc/PID/stat, in clock ticks since
// boot), which no later process with that pid can share. Alive answers
// whether the very process named by an ID still runs; a zombie (killed but
// not yet reaped) counts as dead, because it will never release anything.
//
// All processes that compare IDs must see the same pid namespace and /proc;
// procwire's shared-memory locks rely on that (see docs/shm.md).
package proc
