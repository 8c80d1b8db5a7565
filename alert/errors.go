package alert

import (
	"errors"
	"fmt"
)

// Limits taken from ngx_lua_ipc, so that code ported from it keeps working.
const (
	// MaxName is the longest alert name, in bytes.
	MaxName = 254
	// MaxData is the largest alert payload, in bytes (2³² − 256).
	MaxData = 4294967040
)

// Sentinel errors. Errors returned by this package wrap one of these (or a
// context error), so callers test them with errors.Is.
var (
	// ErrNoMember: the destination pid is not a live member of the group.
	ErrNoMember = errors.New("alert: no such member")
	// ErrBackpressure: the destination's inbox is full and Config.FullPolicy is Fail.
	ErrBackpressure = errors.New("alert: destination inbox full")
	// ErrNameTooLong: the alert name exceeds MaxName bytes.
	ErrNameTooLong = errors.New("alert: name too long")
	// ErrDataTooLong: the alert data exceeds MaxData bytes.
	ErrDataTooLong = errors.New("alert: data too long")
	// ErrClosed: the Group has been closed (left).
	ErrClosed = errors.New("alert: group closed")
	// ErrNotInHandler: Reply was called after the handler that received the alert returned.
	ErrNotInHandler = errors.New("alert: reply called outside of alert handler")
	// ErrInvalidGroup: the group name is empty, too long or has characters other than [A-Za-z0-9_-].
	ErrInvalidGroup = errors.New("alert: invalid group name")
	// ErrGroupFull: the group already has MaxMembers members.
	ErrGroupFull = errors.New("alert: group full")
	// ErrAlreadyMember: this process has already joined the group (a process joins a group once).
	ErrAlreadyMember = errors.New("alert: already a member")
	// ErrMalformed: a record in an inbox could not be decoded.
	ErrMalformed = errors.New("alert: malformed record")
)

// memberError carries ngx_lua_ipc's text while wrapping ErrNoMember.
type memberError struct{ pid int }

func (e *memberError) Error() string { return fmt.Sprintf("no worker process with PID %d", e.pid) }
func (e *memberError) Unwrap() error { return ErrNoMember }

func noMember(pid int) error { return &memberError{pid: pid} }

// lengthError carries ngx_lua_ipc's length texts while wrapping a sentinel.
type lengthError struct {
	what  string
	limit int64
	n     int64
	err   error
}

func (e *lengthError) Error() string {
	return fmt.Sprintf("alert %s length cannot exceed %d, was %d", e.what, e.limit, e.n)
}
func (e *lengthError) Unwrap() error { return e.err }

// checkAlert validates an alert before anything is allocated or sent, so an
// oversize payload is refused without touching memory for it.
func checkAlert(name string, dataLen int) error {
	if len(name) > MaxName {
		return &lengthError{what: "name", limit: MaxName, n: int64(len(name)), err: ErrNameTooLong}
	}
	if int64(dataLen) > MaxData {
		return &lengthError{what: "data", limit: MaxData, n: int64(dataLen), err: ErrDataTooLong}
	}
	return nil
}

// MaxGroupName is the longest group name. It keeps the inbox segment names
// derived from it within the shared-memory name limit.
const MaxGroupName = 100

func checkGroup(group string) error {
	if group == "" || len(group) > MaxGroupName {
		return fmt.Errorf("%w: %q: must be 1-%d characters", ErrInvalidGroup, group, MaxGroupName)
	}
	for i := 0; i < len(group); i++ {
		c := group[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: character %q not allowed (use A-Z a-z 0-9 _ -)", ErrInvalidGroup, group, c)
		}
	}
	return nil
}
