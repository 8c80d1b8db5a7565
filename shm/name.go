package shm

import "fmt"

// MaxNameLen is the longest segment name accepted.
const MaxNameLen = 200

// filePrefix is put before a segment's name to form its file name in
// /dev/shm, so that procwire's segments are easy to list and never collide
// with other programs' files.
const filePrefix = "procwire."

// ValidName returns nil if name can name a segment, or an error wrapping
// ErrInvalidName that says what is wrong with it.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("shm: %w: empty name", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("shm: %w: name is %d bytes, longer than %d", ErrInvalidName, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("shm: %w: %q", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("shm: %w: %q has byte %q at %d; use only A-Z a-z 0-9 . _ -", ErrInvalidName, name, c, i)
		}
	}
	return nil
}
