//go:build !linux

package shm

import (
	"errors"
	"fmt"
)

var errUnsupported = errors.New("shm: shared-memory segments need Linux")

// Open is not supported outside Linux.
func Open(name string, size int, opts *Options) (*Segment, error) {
	return nil, fmt.Errorf("shm: open %s: %w", name, errUnsupported)
}

// Create is not supported outside Linux.
func Create(name string, size int, opts *Options) (*Segment, error) {
	return nil, fmt.Errorf("shm: create %s: %w", name, errUnsupported)
}

// Attach is not supported outside Linux.
func Attach(name string, opts *Options) (*Segment, error) {
	return nil, fmt.Errorf("shm: attach %s: %w", name, errUnsupported)
}

// Remove is not supported outside Linux.
func Remove(name string) error { return fmt.Errorf("shm: remove %s: %w", name, errUnsupported) }

// List is not supported outside Linux.
func List() ([]Info, error) { return nil, fmt.Errorf("shm: list: %w", errUnsupported) }

// Allocate is not supported outside Linux.
func (s *Segment) Allocate(off, n int64) error {
	return fmt.Errorf("shm: allocate %s: %w", s.name, errUnsupported)
}

func unmap(mem []byte) error { return nil }
