package dict

import "errors"

// Errors returned by the dictionary. Their texts are the ones OpenResty's
// ngx.shared.DICT returns, so a binding can hand err.Error() to Lua as is.
// Test for them with errors.Is.
var (
	ErrNotFound   = errors.New("not found")        // key missing or expired
	ErrExists     = errors.New("exists")           // Add of a live key
	ErrNoMemory   = errors.New("no memory")        // no room, even after evicting (if allowed)
	ErrNotNumber  = errors.New("not a number")     // Incr of a non-number
	ErrNotList    = errors.New("value not a list") // list operation on a non-list
	ErrIsList     = errors.New("value is a list")  // Get of a list
	ErrEmptyKey   = errors.New("empty key")        // key ""
	ErrKeyTooLong = errors.New("key too long")     // key over MaxKeyLen bytes
	ErrBadValue   = errors.New("bad value type")   // e.g. a boolean pushed on a list
	// ErrNilValue is returned by Add, Replace and their safe forms for a
	// nil Value (Set with a nil Value deletes instead).
	ErrNilValue = errors.New("attempt to add or replace nil values")
	// ErrBadExptime is returned for a negative TTL.
	ErrBadExptime = errors.New(`bad "exptime" argument`)
	// ErrBadInitTTL is returned by Incr for a negative init TTL.
	ErrBadInitTTL = errors.New(`bad "init_ttl" argument`)
	// ErrInitTTL is returned by Incr when an init TTL is given without init.
	ErrInitTTL = errors.New(`must provide "init" when providing "init_ttl"`)

	// ErrCorrupt reports a dictionary whose shared memory is not a valid
	// layout: refused on Open, reported by Check.
	ErrCorrupt = errors.New("dict: corrupt shared memory")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("dict: closed")
)
