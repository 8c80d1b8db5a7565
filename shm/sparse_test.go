//go:build linux

package shm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// held returns the bytes of memory the segment's file holds (st_blocks).
func held(t *testing.T, name string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path(name), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// checkHeld fails the test unless the segment holds between lo and lo plus
// four pages (the header's page, and the pages that reserved ranges
// straddle, since the data area starts 128 bytes into the file).
func checkHeld(t *testing.T, name string, lo int64, when string) {
	t.Helper()
	page := int64(os.Getpagesize())
	if got := held(t, name); got < lo || got > lo+4*page {
		t.Fatalf("%s: segment holds %d bytes, want %d to %d", when, got, lo, lo+4*page)
	}
}

func TestSparseAllocate(t *testing.T) {
	const size = 4 << 20
	name := segName(t)
	s, err := Create(name, size, &Options{
		Sparse:  true,
		Reserve: 100,
		Init: func(data []byte) error {
			copy(data, "initialized")
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s.Close()
	checkHeld(t, name, 0, "after Create")
	if string(s.Data()[:11]) != "initialized" {
		t.Fatalf("data starts %q", s.Data()[:11])
	}

	if err := s.Allocate(1<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, name, 1<<20, "after Allocate of 1 MiB")
	if err := s.Allocate(1<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, name, 1<<20, "after the same Allocate again")
	if err := s.Allocate(1<<20+5, 100); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, name, 1<<20, "after Allocate inside the reserved range")

	// Another process's handle reserves in the same file.
	a, err := Attach(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Allocate(3<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, name, 2<<20, "after the attacher's Allocate")
	a.Data()[3<<20] = 7
	if s.Data()[3<<20] != 7 {
		t.Fatal("write through one mapping not seen through the other")
	}
	if err := s.Allocate(0, size); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, name, size, "after Allocate of everything")
	infos, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.Name == name && in.Held != held(t, name) {
			t.Fatalf("List: Held %d, the file holds %d", in.Held, held(t, name))
		}
	}
}

func TestCreateReservesAll(t *testing.T) {
	const size = 1 << 20
	name := segName(t)
	s, err := Create(name, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s.Close()
	checkHeld(t, name, size, "not sparse")
	if err := s.Allocate(0, size); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, name, size, "after Allocate")
}

func TestAllocateBadRange(t *testing.T) {
	const size = 1 << 16
	name := segName(t)
	s, err := Create(name, size, &Options{Sparse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s.Close()
	for _, r := range []struct{ off, n int64 }{
		{-1, 10},
		{0, -1},
		{size + 1, 0},
		{size, 1},
		{size - 10, 11},
		{1 << 62, 1 << 62},
		{10, 1<<63 - 1},
	} {
		err := s.Allocate(r.off, r.n)
		want := fmt.Sprintf("%d bytes at %d", r.n, r.off)
		if !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), want) {
			t.Errorf("Allocate(%d, %d) = %v, want ErrOutOfRange naming %q", r.off, r.n, err, want)
		}
	}
	checkHeld(t, name, 0, "after refused ranges")
	if err := s.Allocate(size, 0); err != nil {
		t.Errorf("Allocate of nothing at the end: %v", err)
	}
	for _, reserve := range []int{-1, size + 1} {
		if _, err := Create(segName(t)+"x", size, &Options{Sparse: true, Reserve: reserve}); err == nil || !strings.Contains(err.Error(), fmt.Sprint("Reserve ", reserve)) {
			t.Errorf("Create with Reserve %d: %v", reserve, err)
		}
	}
	s.Close()
	if err := s.Allocate(0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Allocate after Close = %v, want ErrClosed", err)
	}
}

// TestAllocateNoSpace asks for more than Dir can ever hold: tmpfs refuses
// that at once, without taking memory from other users of /dev/shm.
func TestAllocateNoSpace(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs(Dir, &fs); err != nil {
		t.Fatal(err)
	}
	total := int64(fs.Blocks) * int64(fs.Bsize)
	if fs.Blocks == 0 || total+1<<30 > maxDataSize {
		t.Skipf("%s has no size limit below %d bytes", Dir, int64(maxDataSize))
	}
	size := int(total + 1<<30)
	name := segName(t)
	if _, err := Create(name, size, nil); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Create of %d bytes in a %d-byte %s = %v, want ErrNoSpace", size, total, Dir, err)
	}
	s, err := Create(name, size, &Options{Sparse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s.Close()
	err = s.Allocate(0, int64(size))
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Allocate of %d bytes = %v, want ErrNoSpace", size, err)
	}
	checkHeld(t, name, 0, "after the failed Allocate")
	if err := s.Allocate(0, 1<<16); err != nil {
		t.Fatalf("a small Allocate after a failed one: %v", err)
	}
}

// TestAllocateRemoved: a removed segment's pages are made through the
// mapping, and never in a new segment that took its name.
func TestAllocateRemoved(t *testing.T) {
	const size = 1 << 20
	name := segName(t)
	s, err := Create(name, size, &Options{Sparse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := Remove(name); err != nil {
		t.Fatal(err)
	}
	if err := s.Allocate(0, 1<<16); err != nil {
		t.Fatal(err)
	}
	s2, err := Create(name, size, &Options{Sparse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s2.Close()
	if err := s.Allocate(1<<16, 1<<19); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, name, 0, "the new segment, after the old one's Allocate")
	s.Data()[1<<16] = 1
	if s2.Data()[1<<16] != 0 {
		t.Fatal("the old segment's write reached the new one")
	}
}
