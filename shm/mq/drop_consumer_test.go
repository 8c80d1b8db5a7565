//go:build linux

package mq

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestDroppedConsumerReleasesOwner: a consumer Queue dropped without
// Close gives the consumer role up when it is collected, as a producer
// Queue gives its lane back, so that another Create can take the queue
// over while this process lives. (It used to keep the role, its owner
// word naming this live process, until the process exited.)
func TestDroppedConsumerReleasesOwner(t *testing.T) {
	name := qName(t)
	func() {
		q, err := Create(name, 4096, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = q // dropped unclosed
	}()
	defer Remove(name)
	var err error
	for range 200 {
		runtime.GC()
		time.Sleep(time.Millisecond)
		var q *Queue
		if q, err = Create(name, 4096, nil); err == nil {
			q.Close()
			return
		}
		if !errors.Is(err, ErrBusy) {
			t.Fatal(err)
		}
	}
	t.Fatalf("Create after the first consumer Queue was dropped and collected: %v", err)
}

// TestIncompatibleCreateReleasesOwner: a Create that attached as the
// consumer and then refused the queue (other capacity) gives the role
// back at once, and its Queue, unmapped by then, is collected without
// touching the mapping.
func TestIncompatibleCreateReleasesOwner(t *testing.T) {
	name := qName(t)
	q, err := Create(name, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	q.Close()
	if _, err := Create(name, 8192, nil); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("Create with another capacity = %v, want ErrIncompatible", err)
	}
	for range 3 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	q2, err := Create(name, 4096, nil)
	if err != nil {
		t.Fatalf("Create after a refused one: %v", err)
	}
	q2.Close()
}
