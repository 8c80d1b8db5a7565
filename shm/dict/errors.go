package dict

import "errors"

// Errors returned by the dictionary. Their texts are the ones OpenResty's
// ngx.shared.DICT returns, so a binding can hand err.Error() to Lua as is.
// Test for them with errors.Is.
var (
	ErrNotFound   = errors.New("not found")
	ErrExists     = errors.New("exists")
	ErrNoMemory   = errors.New("no memory")
	ErrNotNumber  = errors.New("not a number")
	ErrNotList    = errors.New("value not a list")
	ErrIsList     = errors.New("value is a list")
	ErrEmptyKey   = errors.New("empty key")
	ErrKeyTooLong = errors.New("key too long")
	ErrBadValue   = errors.New("bad value type")
	// ErrNilValue is returned by Add, Replace and their safe forms for a
	// nil Value (Set with a nil Value deletes instead).
	ErrNilValue = errors.New("attempt to add or replace nil values")
	// ErrBadExptime is returned for a negative TTL.
	ErrBadExptime = errors.New(`bad "exptime" argument`)
	// ErrInitTTL is returned by Incr when an init TTL is given without init.
	ErrInitTTL = errors.New(`must provide "init" when providing "init_ttl"`)

	// ErrCorrupt reports a dictionary whose shared memory is not a valid
	// layout: refused on Open, reported by Check.
	ErrCorrupt = errors.New("dict: corrupt shared memory")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("dict: closed")
)
