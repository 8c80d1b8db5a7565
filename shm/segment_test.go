//go:build linux

package shm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/proc/proctest"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"jobs.v2_queue-1", true},
		{strings.Repeat("x", MaxNameLen), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{"a\x00", false},
		{strings.Repeat("x", MaxNameLen+1), false},
	} {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidName)) {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if !tc.ok {
			if _, err := Open(tc.name, 8, nil); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Open(%q) = %v, want ErrInvalidName", tc.name, err)
			}
			if err := Remove(tc.name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Remove(%q) = %v, want ErrInvalidName", tc.name, err)
			}
		}
	}
}

func TestCreateAttachRemove(t *testing.T) {
	name := segName(t)
	s, err := Create(name, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer Remove(name)
	if !s.Created() || s.Size() != 1000 || len(s.Data()) != 1000 || s.Kind() != KindRaw || s.Name() != name {
		t.Fatalf("segment: created=%v size=%d len=%d kind=%v name=%q", s.Created(), s.Size(), len(s.Data()), s.Kind(), s.Name())
	}
	if addr := uintptr(unsafePointer(s.Data())); addr%64 != 0 {
		t.Fatalf("data area at %#x, not 64-byte aligned", addr)
	}
	if s.CreatorPID() != int32(os.Getpid()) || time.Since(s.CreatedAt()) > time.Minute {
		t.Fatalf("creator %d at %v", s.CreatorPID(), s.CreatedAt())
	}
	st, err := os.Stat(Dir + "/" + filePrefix + name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := s.WriteAt([]byte("hello"), 10); err != nil {
		t.Fatal(err)
	}

	a, err := Attach(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Created() || a.Size() != 1000 {
		t.Fatalf("attached: created=%v size=%d", a.Created(), a.Size())
	}
	buf := make([]byte, 5)
	if _, err := a.ReadAt(buf, 10); err != nil || string(buf) != "hello" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	a.Data()[0] = 42 // visible through the other mapping
	if s.Data()[0] != 42 {
		t.Fatal("write through one mapping not seen through the other")
	}

	if _, err := Create(name, 10, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	if err := Remove(name); err != nil {
		t.Fatal(err)
	}
	// Mapped users keep working after Remove.
	s.Data()[1] = 7
	if a.Data()[1] != 7 {
		t.Fatal("mapping broken by Remove")
	}
	if _, err := Attach(name, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Attach after Remove = %v, want ErrNotFound", err)
	}
	if err := Remove(name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove = %v, want ErrNotFound", err)
	}
}

func TestOpenCreateOrAttach(t *testing.T) {
	name := segName(t)
	opts := &Options{Kind: KindDict, Version: 3, Mode: 0o640}
	s1, err := Open(name, 256, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s1.Close()
	s2, err := Open(name, 100, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !s1.Created() || s2.Created() || s2.Size() != 256 || s2.Kind() != KindDict || s2.Version() != 3 {
		t.Fatalf("s1 created=%v, s2 created=%v size=%d kind=%v version=%d", s1.Created(), s2.Created(), s2.Size(), s2.Kind(), s2.Version())
	}
	st, err := os.Stat(Dir + "/" + filePrefix + name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640 (umask must not apply)", st.Mode().Perm())
	}
	for _, tc := range []struct {
		what string
		size int
		opts *Options
	}{
		{"bigger size", 257, opts},
		{"other kind", 0, &Options{Kind: KindMQ, Version: 3}},
		{"other version", 0, &Options{Kind: KindDict, Version: 4}},
		{"nil options (raw)", 0, nil},
	} {
		if _, err := Open(name, tc.size, tc.opts); !errors.Is(err, ErrIncompatible) {
			t.Errorf("Open with %s = %v, want ErrIncompatible", tc.what, err)
		}
	}
	if _, err := Attach(name, &Options{Kind: KindSem, Version: 3}); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Attach of another kind = %v, want ErrIncompatible", err)
	}
}

func TestAttachForeignFiles(t *testing.T) {
	name := segName(t)
	p := Dir + "/" + filePrefix + name
	defer os.Remove(p)
	valid := make([]byte, headerSize+8)
	(&header{kind: KindRaw, version: 1, dataSize: 8, creatorPID: 1, created: time.Unix(1, 0)}).encode(valid)
	corrupt := bytes.Clone(valid)
	corrupt[offKind]++ // checksum no longer matches
	short := bytes.Clone(valid)
	short = short[:headerSize+4] // header claims 8 data bytes
	for _, tc := range []struct {
		what string
		data []byte
	}{
		{"garbage", bytes.Repeat([]byte("not a segment "), 20)},
		{"corrupt header", corrupt},
		{"truncated data", short},
	} {
		if err := os.WriteFile(p, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Attach(name, nil); !errors.Is(err, ErrIncompatible) {
			t.Errorf("Attach of %s = %v, want ErrIncompatible", tc.what, err)
		}
		if _, err := Open(name, 8, nil); !errors.Is(err, ErrIncompatible) {
			t.Errorf("Open of %s = %v, want ErrIncompatible", tc.what, err)
		}
		os.Remove(p)
	}
	if err := os.WriteFile(p, valid, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Attach(name, nil)
	if err != nil {
		t.Fatalf("Attach of a valid hand-made segment: %v", err)
	}
	s.Close()
	os.Remove(p)

	// A symbolic link is never followed.
	if err := os.Symlink("/etc/passwd", p); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(name, nil); !errors.Is(err, ErrIncompatible) {
		t.Errorf("Attach of a symlink = %v, want ErrIncompatible", err)
	}
}

// TestInitBeforePublish checks that attachers racing a slow Init see either
// no segment or a fully initialized one.
func TestInitBeforePublish(t *testing.T) {
	name := segName(t)
	defer Remove(name)
	const size = 1 << 16
	started := make(chan struct{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var seen, missing int
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-started
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := Attach(name, nil)
			if errors.Is(err, ErrNotFound) {
				missing++
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			for i, b := range s.Data() {
				if b != 0xAB {
					t.Errorf("attacher saw byte %d = %#x before Init finished", i, b)
					break
				}
			}
			seen++
			s.Close()
		}
	}()
	s, err := Create(name, size, &Options{Init: func(data []byte) error {
		close(started)
		for i := range data {
			data[i] = 0xAB
			if i%4096 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	s.Close()
	if seen == 0 {
		t.Fatal("attacher never saw the published segment")
	}
	t.Logf("attacher: %d times not found, %d times complete", missing, seen)
}

func TestInitError(t *testing.T) {
	name := segName(t)
	boom := errors.New("boom")
	_, err := Create(name, 64, &Options{Init: func([]byte) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("Create = %v, want the Init error", err)
	}
	if _, err := Attach(name, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Attach after failed Init = %v, want ErrNotFound", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a panic in Init was swallowed")
			}
		}()
		Create(name, 64, &Options{Init: func([]byte) error { panic("init") }})
	}()
	if _, err := Attach(name, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Attach after Init panicked = %v, want ErrNotFound", err)
	}
}

func TestReadWriteAt(t *testing.T) {
	s := newSeg(t, 16)
	for _, tc := range []struct {
		off  int64
		n    int
		ok   bool
		want int
	}{
		{0, 16, true, 16},
		{8, 8, true, 8},
		{16, 0, true, 0},
		{15, 2, false, 0},
		{17, 0, false, 0},
		{-1, 1, false, 0},
	} {
		n, err := s.WriteAt(make([]byte, tc.n), tc.off)
		if (err == nil) != tc.ok || n != tc.want {
			t.Errorf("WriteAt(%d bytes, %d) = %d, %v; want %d, ok=%v", tc.n, tc.off, n, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrOutOfRange) {
			t.Errorf("WriteAt error %v is not ErrOutOfRange", err)
		}
	}
	s.WriteAt([]byte("0123456789abcdef"), 0)
	buf := make([]byte, 4)
	if n, err := s.ReadAt(buf, 14); n != 2 || err != io.EOF || string(buf[:2]) != "ef" {
		t.Errorf("ReadAt at the end = %d, %v, %q; want 2, EOF, \"ef\"", n, err, buf[:n])
	}
	if _, err := s.ReadAt(buf, 17); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("ReadAt past the end = %v", err)
	}
	s.Close()
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := s.ReadAt(buf, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close = %v, want ErrClosed", err)
	}
	if _, err := s.WriteAt(buf, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteAt after Close = %v, want ErrClosed", err)
	}
}

func TestList(t *testing.T) {
	a := newSeg(t, 10)
	name := segName(t) + ".mq"
	b, err := Create(name, 20, &Options{Kind: KindMQ, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer b.Close()
	bad := segName(t) + ".bad"
	if err := os.WriteFile(Dir+"/"+filePrefix+bad, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer Remove(bad)
	infos, err := List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Info{}
	for _, in := range infos {
		got[in.Name] = in
	}
	if in := got[a.Name()]; in.Kind != KindRaw || in.Size != 10 || in.CreatorPID != int32(os.Getpid()) || in.Err != nil {
		t.Errorf("List entry for raw segment: %+v", in)
	}
	if in := got[name]; in.Kind != KindMQ || in.Version != 2 || in.Size != 20 || in.Created.IsZero() {
		t.Errorf("List entry for mq segment: %+v", in)
	}
	if in, ok := got[bad]; !ok || !errors.Is(in.Err, ErrIncompatible) {
		t.Errorf("List entry for junk file: %+v, want ErrIncompatible", in)
	}
}

func TestSegmentMultiProcess(t *testing.T) {
	s := newSeg(t, MutexSize+8)
	const perChild = 2000
	var cs []*proctest.Child
	for range 3 {
		cs = append(cs, proctest.Start(t, "count", s.Name(), "2000"))
	}
	for _, c := range cs {
		if err := c.Wait(); err != nil {
			t.Fatal("child:", err)
		}
	}
	if got := *(*uint64)(unsafePointer(s.Data()[MutexSize:])); got != 3*perChild {
		t.Fatalf("counter = %d, want %d", got, 3*perChild)
	}
}

// TestOpenRace has goroutines Open one name at once: exactly one creates
// it, and all see the creator's Init.
func TestOpenRace(t *testing.T) {
	name := segName(t)
	defer Remove(name)
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			s, err := Open(name, 64, &Options{Init: func(b []byte) error { b[0] = 1; return nil }})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			if s.Data()[0] != 1 {
				t.Error("attached a segment before its Init ran")
			}
			mu.Lock()
			if s.Created() {
				created++
			}
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d Opens created the segment, want 1", created)
	}
}

// TestPublishNamedTemp checks the fallback for systems without O_TMPFILE
// or /proc: a hidden temporary file, linked under the name, then removed.
func TestPublishNamedTemp(t *testing.T) {
	fd, tmp, err := openUnnamed(0o600, false)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if !strings.HasPrefix(tmp, Dir+"/.procwire-new-") {
		t.Fatalf("temporary file %q", tmp)
	}
	defer os.Remove(tmp)
	p := Dir + "/" + filePrefix + segName(t)
	if err := publish(fd, tmp, p); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	if err := publish(fd, tmp, p); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("second publish = %v, want EEXIST", err)
	}
}
