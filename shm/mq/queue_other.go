//go:build !linux

package mq

import "errors"

var errUnsupported = errors.New("mq: shared-memory queues need Linux")

// Create needs Linux; elsewhere it returns an error.
func Create(name string, capacity int, opts *Options) (*Queue, error) { return nil, errUnsupported }

// Open needs Linux; elsewhere it returns an error.
func Open(name string, opts *Options) (*Queue, error) { return nil, errUnsupported }

// Remove needs Linux; elsewhere it returns an error.
func Remove(name string) error { return errUnsupported }
