//go:build linux

package dict

import (
	"errors"
	"math"
	"syscall"
	"testing"
	"unsafe"
)

// TestHugeString stores a string longer than 4 GiB, whose length does not
// fit the item's u32 value length: truncated to it, the store would copy
// the string over the rest of the shared memory. The string is backed by
// an anonymous mapping reserved without memory, so only the pages a store
// reads cost anything.
func TestHugeString(t *testing.T) {
	n64 := uint64(1)<<32 + 1 // a u32 length of 1: the class of a one-byte item
	if n64 > math.MaxInt {
		t.Skip("an int cannot hold a length over 4 GiB here")
	}
	n := int(n64)
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		t.Skipf("cannot reserve %d bytes of address space: %v", n, err)
	}
	defer syscall.Munmap(b)
	huge := String(unsafe.String(&b[0], n))

	d, err := Open(testName(t), 1<<20, &Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// An existing item of the class a one-byte value needs, without a
	// TTL, so that the store may also overwrite it in place or claim it.
	if _, err := d.Set("k", String("v"), 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, store := range []struct {
		name string
		do   func() error
	}{
		{"Set", func() error { _, err := d.Set("k", huge, 0, 0); return err }},
		{"Replace", func() error { _, err := d.Replace("k", huge, 0, 0); return err }},
		{"SafeSet", func() error { return d.SafeSet("k", huge, 0, 0) }},
		{"Set new key", func() error { _, err := d.Set("new", huge, 0, 0); return err }},
		{"Add", func() error { _, err := d.Add("new2", huge, 0, 0); return err }},
	} {
		if err := store.do(); !errors.Is(err, ErrNoMemory) {
			t.Errorf("%s(%d-byte string) = %v, want ErrNoMemory", store.name, n, err)
		}
		if err := d.Check(); err != nil {
			t.Fatalf("after %s: %v", store.name, err)
		}
	}
}
