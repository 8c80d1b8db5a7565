//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/internal/proc"
)

// attachWait bounds how long an attacher waits for a segment whose header
// is not yet published (only creators that do not publish by link(2), such
// as other implementations of the layout, can show one).
const attachWait = 5 * time.Second

// openRetries bounds how often Open retries when the segment disappears
// between a failed Create and the Attach that follows (or the reverse).
const openRetries = 100

func path(name string) string { return Dir + "/" + filePrefix + name }

// Open attaches the segment called name, creating it with a data area of
// size bytes if it does not exist. When attaching, an existing segment must
// have the kind and version of opts and at least size data bytes, or Open
// returns an error wrapping ErrIncompatible; its data area keeps its own
// size.
func Open(name string, size int, opts *Options) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	o := opts.norm()
	for range openRetries {
		s, err := create(name, size, &o)
		if !errors.Is(err, ErrExists) {
			return s, err
		}
		s, err = attach(name, size, &o)
		if !errors.Is(err, ErrNotFound) {
			return s, err
		}
	}
	return nil, fmt.Errorf("shm: open %s: segment keeps being created and removed", name)
}

// Create creates the segment called name with a data area of size bytes.
// It fails with an error wrapping ErrExists if the name is taken.
func Create(name string, size int, opts *Options) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	o := opts.norm()
	return create(name, size, &o)
}

// Attach maps the existing segment called name. It fails with an error
// wrapping ErrNotFound if there is none, and ErrIncompatible if it is not a
// segment of the kind and version of opts.
func Attach(name string, opts *Options) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	o := opts.norm()
	return attach(name, 0, &o)
}

// Remove unlinks the segment called name. Processes that have it mapped
// keep using it; it is freed when the last one closes it. It returns an
// error wrapping ErrNotFound if there is no such segment.
func Remove(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := unix.Unlink(path(name)); err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("shm: remove %s: %w", name, ErrNotFound)
		}
		return fmt.Errorf("shm: remove %s: %w", name, err)
	}
	return nil
}

// List returns the procwire segments in Dir, sorted by name. A segment whose
// header cannot be read is listed with Err set.
func List() ([]Info, error) {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return nil, fmt.Errorf("shm: list: %w", err)
	}
	var out []Info
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), filePrefix)
		if !ok || ValidName(name) != nil || !e.Type().IsRegular() {
			continue
		}
		info := Info{Name: name}
		h, held, err := readHeader(path(name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			info.Err = err
		} else {
			info.Kind, info.Version, info.Size = h.kind, h.version, h.dataSize
			info.CreatorPID, info.Created = h.creatorPID, h.created
			info.Held = held
		}
		out = append(out, info)
	}
	return out, nil
}

// readHeader reads the header of the segment file p, and how many bytes
// of memory the file holds.
func readHeader(p string) (header, int64, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return header{}, 0, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return header{}, 0, err
	}
	var b [headerSize]byte
	n, _ := f.ReadAt(b[:], 0)
	h, err := parseHeader(b[:n], st.Size)
	return h, st.Blocks * 512, err
}

func create(name string, size int, o *Options) (*Segment, error) {
	if size < 0 || int64(size) > maxDataSize {
		return nil, fmt.Errorf("shm: create %s: size %d out of range [0, %d]", name, size, int64(maxDataSize))
	}
	if o.Sparse && (o.Reserve < 0 || o.Reserve > size) {
		return nil, fmt.Errorf("shm: create %s: Reserve %d out of range [0, %d]", name, o.Reserve, size)
	}
	p := path(name)
	// Skip the work of building a segment that cannot be published.
	if err := unix.Access(p, unix.F_OK); err == nil {
		return nil, fmt.Errorf("shm: create %s: %w", name, ErrExists)
	}
	// publish links an O_TMPFILE file through /proc/self/fd.
	tmpfile := unix.Access("/proc/self/fd", unix.F_OK) == nil
	fd, tmp, err := openUnnamed(o.Mode, tmpfile)
	if err != nil {
		return nil, fmt.Errorf("shm: create %s: %w", name, err)
	}
	defer unix.Close(fd)
	if tmp != "" {
		defer unix.Unlink(tmp)
	}
	// The umask must not narrow the mode asked for.
	if err := unix.Fchmod(fd, uint32(o.Mode)); err != nil {
		return nil, fmt.Errorf("shm: create %s: chmod: %w", name, err)
	}
	total := int64(headerSize) + int64(size)
	if err := unix.Ftruncate(fd, total); err != nil {
		return nil, fmt.Errorf("shm: create %s: size %d: %w", name, total, err)
	}
	// Reserve the memory now so that running out of /dev/shm space is an
	// error here rather than a SIGBUS on first touch. A sparse segment
	// reserves what the creator writes; Allocate reserves the rest.
	reserve := total
	if o.Sparse {
		reserve = int64(headerSize) + int64(o.Reserve)
	}
	if err := fallocate(fd, 0, reserve); err != nil {
		return nil, fmt.Errorf("shm: create %s: reserve %d bytes: %w", name, reserve, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: create %s: %w", name, err)
	}
	mem, err := unix.Mmap(fd, 0, int(total), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: create %s: mmap: %w", name, err)
	}
	self := proc.Self()
	s := &Segment{
		name: name,
		mem:  mem,
		data: mem[headerSize:total:total],
		hdr: header{
			kind:       o.Kind,
			version:    o.Version,
			dataSize:   int64(size),
			creatorPID: self.PID,
			creatorSt:  self.Start,
			created:    time.Now(),
		},
		created: true,
		dev:     st.Dev,
		ino:     st.Ino,
	}
	var hb [headerSize]byte
	s.hdr.encode(hb[:])
	// Everything but the magic first; the magic is stored last and
	// atomically so that a reader that can see the file sees either no
	// magic or a complete header.
	copy(mem[8:headerSize], hb[8:])
	// Unmap unless published, also if Init panics.
	published := false
	defer func() {
		if !published {
			unix.Munmap(mem)
		}
	}()
	if o.Init != nil {
		if err := o.Init(s.data); err != nil {
			return nil, fmt.Errorf("shm: create %s: init: %w", name, err)
		}
	}
	// hb holds the magic's little-endian bytes; store them as one word.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[offMagic])), binary.NativeEndian.Uint64(hb[offMagic:]))
	if err := publish(fd, tmp, p); err != nil {
		if err == unix.EEXIST {
			return nil, fmt.Errorf("shm: create %s: %w", name, ErrExists)
		}
		return nil, fmt.Errorf("shm: create %s: link: %w", name, err)
	}
	published = true
	return s, nil
}

// openUnnamed opens a new file in Dir that has no name yet. It uses
// O_TMPFILE if tmpfile is set and the kernel supports it, so that a creator
// that dies leaves nothing behind; otherwise it makes a hidden temporary
// file whose name it returns for removal.
func openUnnamed(mode os.FileMode, tmpfile bool) (fd int, tmp string, err error) {
	if tmpfile {
		fd, err = unix.Open(Dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, uint32(mode))
		if err == nil {
			return fd, "", nil
		}
		if err != unix.EOPNOTSUPP && err != unix.EISDIR && err != unix.EINVAL {
			return -1, "", fmt.Errorf("open unnamed file in %s: %w", Dir, err)
		}
	}
	var rnd [8]byte
	for range 100 {
		if _, err := unix.Getrandom(rnd[:], 0); err != nil {
			return -1, "", err
		}
		tmp = Dir + "/.procwire-new-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(*(*uint64)(unsafe.Pointer(&rnd)), 36)
		fd, err = unix.Open(tmp, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, uint32(mode))
		if err != unix.EEXIST {
			break
		}
	}
	if err != nil {
		return -1, "", fmt.Errorf("create temporary file in %s: %w", Dir, err)
	}
	return fd, tmp, nil
}

// publish gives the finished file its name; link(2) fails with EEXIST
// rather than replace an existing segment.
func publish(fd int, tmp, p string) error {
	if tmp != "" {
		return unix.Link(tmp, p)
	}
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW)
}

func attach(name string, minSize int, o *Options) (*Segment, error) {
	fd, err := unix.Open(path(name), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil, fmt.Errorf("shm: attach %s: %w", name, ErrNotFound)
		}
		if err == unix.ELOOP {
			return nil, fmt.Errorf("shm: attach %s: %w: it is a symbolic link", name, ErrIncompatible)
		}
		return nil, fmt.Errorf("shm: attach %s: %w", name, err)
	}
	defer unix.Close(fd)
	h, st, err := waitHeader(fd)
	if err != nil {
		return nil, fmt.Errorf("shm: attach %s: %w", name, err)
	}
	switch {
	case h.kind != o.Kind:
		return nil, fmt.Errorf("shm: attach %s: %w: segment holds %v, want %v", name, ErrIncompatible, h.kind, o.Kind)
	case h.version != o.Version:
		return nil, fmt.Errorf("shm: attach %s: %w: %v layout version %d, want %d", name, ErrIncompatible, h.kind, h.version, o.Version)
	case h.dataSize < int64(minSize):
		return nil, fmt.Errorf("shm: attach %s: %w: data area is %d bytes, want at least %d", name, ErrIncompatible, h.dataSize, minSize)
	}
	total := headerSize + int(h.dataSize)
	mem, err := unix.Mmap(fd, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: attach %s: mmap: %w", name, err)
	}
	return &Segment{name: name, mem: mem, data: mem[headerSize:total:total], hdr: h, dev: st.Dev, ino: st.Ino}, nil
}

// waitHeader reads and checks the header of fd, waiting a bounded time if
// it is not yet published.
func waitHeader(fd int) (header, unix.Stat_t, error) {
	deadline := time.Now().Add(attachWait)
	pause := 100 * time.Microsecond
	var st unix.Stat_t
	for {
		if err := unix.Fstat(fd, &st); err != nil {
			return header{}, st, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return header{}, st, fmt.Errorf("%w: not a regular file", ErrIncompatible)
		}
		var b [headerSize]byte
		n, err := unix.Pread(fd, b[:], 0)
		if err != nil {
			return header{}, st, err
		}
		h, err := parseHeader(b[:n], st.Size)
		if err == nil {
			// The magic is written last, so once it is seen the other
			// fields are final; a reader that raced the creator re-reads.
			return h, st, nil
		}
		if n == headerSize && !errors.Is(err, errNotReady) {
			return header{}, st, err
		}
		if time.Now().After(deadline) {
			return header{}, st, fmt.Errorf("%w (waited %v for its creator to initialize it)", err, attachWait)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

func unmap(mem []byte) error {
	if mem == nil {
		return nil
	}
	return unix.Munmap(mem)
}

// fallocate reserves n bytes of fd's file from off. File systems that
// cannot reserve (EOPNOTSUPP) are let be, as if every page were reserved.
func fallocate(fd int, off, n int64) error {
	if n <= 0 {
		return nil
	}
	switch err := unix.Fallocate(fd, 0, off, n); err {
	case nil, unix.EOPNOTSUPP:
		return nil
	case unix.ENOSPC:
		return fmt.Errorf("%w in %s: %w", ErrNoSpace, Dir, err)
	default:
		return err
	}
}

// Allocate reserves the memory of n bytes of the data area from off, so
// that touching them cannot fail later. It returns an error wrapping
// ErrNoSpace if Dir has not that much space left, and ErrOutOfRange for a
// range outside the data area. Reserving a reserved range does nothing,
// so every process about to use a range of a sparse segment (see
// Options.Sparse) may simply call it. It is a system call: reserve large
// ranges once, not a page at a time.
func (s *Segment) Allocate(off, n int64) error {
	if s.isClosed() {
		return fmt.Errorf("shm: allocate %s: %w", s.name, ErrClosed)
	}
	if size := s.hdr.dataSize; off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("shm: allocate %s: %d bytes at %d: %w (size %d)", s.name, n, off, ErrOutOfRange, size)
	}
	if n == 0 {
		return nil
	}
	err := s.fallocate(int64(headerSize)+off, n)
	if err != nil {
		return fmt.Errorf("shm: allocate %s: %d bytes at %d: %w", s.name, n, off, err)
	}
	return nil
}

// fallocate reserves a range of the file of s. The file is reopened by
// name and recognized by its inode. If the name has been removed or given
// to another file (or cannot be opened), the pages are made through the
// mapping instead (MADV_POPULATE_WRITE, Linux 5.14), which fails where
// touching them would have raised SIGBUS.
func (s *Segment) fallocate(off, n int64) error {
	if fd, err := unix.Open(path(s.name), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0); err == nil {
		var st unix.Stat_t
		err := unix.Fstat(fd, &st)
		if err == nil && st.Dev == s.dev && st.Ino == s.ino {
			err = fallocate(fd, off, n)
			unix.Close(fd)
			return err
		}
		unix.Close(fd)
	}
	// The mapping lives until Close, which waits for s.mu.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	page := int64(os.Getpagesize())
	lo, hi := off&^(page-1), min((off+n+page-1)&^(page-1), int64(len(s.mem)))
	switch err := unix.Madvise(s.mem[lo:hi], unix.MADV_POPULATE_WRITE); err {
	case nil:
		return nil
	case unix.EFAULT:
		return fmt.Errorf("%w in %s (segment removed; populating its mapping failed)", ErrNoSpace, Dir)
	default:
		return fmt.Errorf("segment removed; populating its mapping: %w", err)
	}
}
