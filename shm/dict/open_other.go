//go:build !linux

package dict

import (
	"errors"
	"fmt"
)

var errNotLinux = errors.New("dict: shared dictionaries need Linux")

// Open needs Linux; elsewhere it returns an error.
func Open(name string, capacity int, opts *Options) (*Dict, error) {
	return nil, fmt.Errorf("dict: open %q: %w", name, errNotLinux)
}

// Attach needs Linux; elsewhere it returns an error.
func Attach(name string, opts *Options) (*Dict, error) {
	return nil, fmt.Errorf("dict: open %q: %w", name, errNotLinux)
}

// Remove needs Linux; elsewhere it returns an error.
func Remove(name string) error {
	return fmt.Errorf("dict: remove %q: %w", name, errNotLinux)
}
