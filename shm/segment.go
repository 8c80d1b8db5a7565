package shm

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Dir is the directory that holds the segments' files.
const Dir = "/dev/shm"

// HeaderSize is the size of a segment's header: the data area starts
// this many bytes into the file and into the mapping, which start on a
// page boundary. A layout that wants page-aligned parts (to Allocate
// whole pages) places them at offsets ≡ −HeaderSize modulo the page size.
const HeaderSize = headerSize

// Options configures Open, Create and Attach. A nil *Options is the same
// as a zero Options: a raw segment, version 1, mode 0600, no Init.
type Options struct {
	// Mode is the file mode of a created segment; 0 means 0600.
	Mode os.FileMode
	// Kind is what the segment holds; 0 means KindRaw. Attaching refuses
	// a segment of another kind with ErrIncompatible.
	Kind Kind
	// Version is the kind's own layout version; 0 means 1. Attaching
	// refuses a segment of another version with ErrIncompatible.
	Version uint32
	// Init, if not nil, is run by the creator on the zeroed data area
	// before the segment is published; no other process can see the
	// segment until it returns. If it returns an error the segment is
	// discarded and Create or Open returns that error.
	Init func(data []byte) error
	// Sparse makes the creator reserve the memory of only the header and
	// the first Reserve bytes of the data area; the rest takes memory only
	// once it is reserved with Allocate. Without Sparse the whole segment
	// is reserved at creation. Either way, running out of space in Dir is
	// an error (ErrNoSpace) when the memory is reserved, never a SIGBUS
	// later, provided that nothing touches a byte of a sparse segment
	// before some process has reserved it: not even a read, since reading
	// a page of shared memory makes it exist. Init must keep to the first
	// Reserve bytes. Attaching ignores Sparse.
	Sparse bool
	// Reserve is how many bytes at the start of a sparse segment's data
	// area are reserved at creation, at most the data size; only Sparse
	// uses it.
	Reserve int
}

func (o *Options) norm() Options {
	var n Options
	if o != nil {
		n = *o
	}
	if n.Mode == 0 {
		n.Mode = 0o600
	}
	n.Mode &= os.ModePerm
	if n.Kind == 0 {
		n.Kind = KindRaw
	}
	if n.Version == 0 {
		n.Version = 1
	}
	return n
}

// Info describes a segment found by List.
type Info struct {
	Name       string    // the segment's name, without the "procwire." prefix
	Kind       Kind      // what it holds
	Version    uint32    // the kind's layout version
	Size       int64     // bytes in the data area
	Held       int64     // bytes of memory the segment's file holds, header included (less than Size+128 if sparse)
	CreatorPID int32     // the process that created it
	Created    time.Time // when it was created
	Err        error     // why the header could not be read; the other fields are then zero
}

// Segment is a mapped shared-memory segment. Its methods may be called from
// several goroutines; Data must not be used after Close.
type Segment struct {
	name    string
	mem     []byte // the whole mapping, header included
	data    []byte // mem[headerSize:], cap-limited
	hdr     header
	created bool
	// dev and ino identify the segment's file, which Allocate reopens by
	// name: holding a descriptor per segment would cost one for as long
	// as a segment is mapped.
	dev, ino uint64

	// mu is read-locked by the methods that use the mapping and
	// write-locked by Close, which must not unmap it under them.
	mu     sync.RWMutex
	closed bool
}

// Data returns the data area: it starts 64-byte aligned just after the
// header, and its length is the size given when the segment was created.
// It is shared with every process that maps the segment, so concurrent use
// needs atomics or a Mutex.
func (s *Segment) Data() []byte { return s.data }

// Name returns the segment's name.
func (s *Segment) Name() string { return s.name }

// Size returns the size of the data area.
func (s *Segment) Size() int { return len(s.data) }

// Kind returns the kind recorded in the segment's header.
func (s *Segment) Kind() Kind { return s.hdr.kind }

// Version returns the kind's layout version recorded in the header.
func (s *Segment) Version() uint32 { return s.hdr.version }

// CreatorPID returns the pid of the process that created the segment.
func (s *Segment) CreatorPID() int32 { return s.hdr.creatorPID }

// CreatedAt returns when the segment was created.
func (s *Segment) CreatedAt() time.Time { return s.hdr.created }

// Created reports whether this Open or Create call created the segment
// (rather than attaching an existing one).
func (s *Segment) Created() bool { return s.created }

// ReadAt copies data-area bytes at off into p. Like io.ReaderAt, it returns
// io.EOF when fewer than len(p) bytes are left.
func (s *Segment) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, fmt.Errorf("shm: read %s: %w", s.name, ErrClosed)
	}
	if off < 0 || off > int64(len(s.data)) {
		return 0, fmt.Errorf("shm: read %s at %d: %w (size %d)", s.name, off, ErrOutOfRange, len(s.data))
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt copies p into the data area at off. A write that would not fit
// writes nothing and returns an error wrapping ErrOutOfRange. ReadAt and
// WriteAt do not synchronize with other processes: a reader may see a
// write half done unless both hold a Mutex.
func (s *Segment) WriteAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, fmt.Errorf("shm: write %s: %w", s.name, ErrClosed)
	}
	if off < 0 || off > int64(len(s.data)) || int64(len(p)) > int64(len(s.data))-off {
		return 0, fmt.Errorf("shm: write %s: %d bytes at %d: %w (size %d)", s.name, len(p), off, ErrOutOfRange, len(s.data))
	}
	return copy(s.data[off:], p), nil
}

func (s *Segment) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Close unmaps the segment. It does not remove it (see Remove). Calling it
// again does nothing.
func (s *Segment) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := unmap(s.mem)
	s.mem, s.data = nil, nil
	if err != nil {
		return fmt.Errorf("shm: close %s: %w", s.name, err)
	}
	return nil
}
