//go:build linux

package shm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/proc/proctest"
)

// testPrefix starts the name of every segment the tests make, so that
// TestMain can check that none is left behind.
var testPrefix = fmt.Sprintf("shmtest-%d-", os.Getpid())

// TestMain runs a child role (see runChild) in processes started by
// proctest.Start, and the tests otherwise, checking that they leave no
// segment or goroutine behind.
func TestMain(m *testing.M) {
	os.Exit(proctest.Main(m, func(role string, args []string) int {
		args = append(args, "", "")
		return runChild(role, args[0], args[1])
	}, filepath.Join(Dir, filePrefix+testPrefix+"*")))
}

// segName returns a segment name unique to the test and this process.
func segName(t testing.TB) string {
	n := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return testPrefix + n
}

// newSeg creates a raw segment for the test and removes it afterwards.
func newSeg(t testing.TB, size int) *Segment {
	t.Helper()
	name := segName(t)
	s, err := Create(name, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		Remove(name)
	})
	return s
}

// runChild runs a child role and returns the exit status.
func runChild(role, seg, arg string) int {
	s, err := Attach(seg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	defer s.Close()
	out := bufio.NewWriterSize(os.Stdout, 64)
	switch role {
	case "hold":
		// Take the lock, say so, and hold it until killed.
		m := MutexAt(s.Data())
		m.Lock(context.Background())
		io.WriteString(os.Stdout, "locked\n")
		time.Sleep(time.Hour)
	case "count":
		// Add arg increments to a plain counter under the lock.
		var n int
		fmt.Sscan(arg, &n)
		m := MutexAt(s.Data())
		ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
		for range n {
			m.Lock(context.Background())
			v := *ctr
			yield()
			*ctr = v + 1
			m.Unlock()
		}
		out.WriteString("done\n")
		out.Flush()
	case "hammer":
		// Lock and Unlock as fast as possible until killed.
		m := MutexAt(s.Data())
		ctr := (*uint64)(unsafePointer(s.Data()[MutexSize:]))
		ctx := context.Background()
		for {
			m.Lock(ctx)
			*ctr++
			m.Unlock()
		}
	case "trylock":
		// Try the lock once and print the outcome.
		ok, rec := MutexAt(s.Data()).TryLock()
		fmt.Fprintf(os.Stdout, "ok=%v recovered=%v\n", ok, rec)
	case "readwhileclose":
		return readWhileClose(s)
	case "crash":
		var slot int
		fmt.Sscan(arg, &slot)
		runCrashChild(s, slot)
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", role)
		return 3
	}
	return 0
}
