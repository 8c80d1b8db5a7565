//go:build linux

package proc

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("PROCWIRE_PROC_CHILD") == "sleep" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSelf(t *testing.T) {
	id := Self()
	if id.PID != int32(os.Getpid()) || id.Start == 0 {
		t.Fatalf("Self() = %v, want pid %d and a start time", id, os.Getpid())
	}
	if Self() != id {
		t.Fatal("Self() changed between calls")
	}
	if !Alive(id) {
		t.Fatal("Alive(Self()) = false")
	}
	if Alive(ID{PID: id.PID, Start: id.Start + 1}) {
		t.Fatal("Alive with another start time = true; a reused pid would look alive")
	}
	if !Alive(ID{PID: id.PID}) {
		t.Fatal("Alive with unknown start time = false for a live pid")
	}
}

func TestLookupMissing(t *testing.T) {
	for _, pid := range []int32{0, -1, 1 << 30} {
		if _, err := Lookup(pid); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%d) = %v, want ErrNotFound", pid, err)
		}
		if Alive(ID{PID: pid, Start: 1}) {
			t.Errorf("Alive(pid %d) = true", pid)
		}
	}
}

// TestKilledChild checks that a SIGKILLed child counts as dead while it is
// still a zombie (not reaped), and after it is reaped.
func TestKilledChild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROCWIRE_PROC_CHILD=sleep")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := Lookup(int32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(id) {
		t.Fatal("running child is not Alive")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Until reaped, the child is a zombie; it must be dead all the same.
	deadline := time.Now().Add(20 * time.Second)
	for Alive(id) {
		if time.Now().After(deadline) {
			t.Fatal("killed child still Alive")
		}
		time.Sleep(time.Millisecond)
	}
	var st syscall.WaitStatus
	if _, err := syscall.Wait4(cmd.Process.Pid, &st, syscall.WNOHANG, nil); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if Alive(id) {
		t.Fatal("reaped child still Alive")
	}
}

func TestParseStat(t *testing.T) {
	fields := " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 123456 20 21\n"
	for _, tc := range []struct {
		line  string
		state byte
		start uint64
		ok    bool
	}{
		{"42 (sh)" + fields, 'S', 123456, true},
		{"42 (a b) (c)" + fields, 'S', 123456, true},
		{"42 ())" + fields, 'S', 123456, true},
		{"42 (x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 7", 'Z', 7, true},
		{"42 (x) S 1 2 3", 0, 0, false},
		{"42 x S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 7", 0, 0, false},
		{"42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -7", 0, 0, false},
		{"42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999999999999999999999", 0, 0, false},
		{"42 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 7", 0, 0, false},
		{"", 0, 0, false},
	} {
		state, start, err := parseStat([]byte(tc.line))
		if (err == nil) != tc.ok || state != tc.state || start != tc.start {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, ok=%v", tc.line, state, start, err, tc.state, tc.start, tc.ok)
		}
	}
}

func TestParseStatPID(t *testing.T) {
	for _, tc := range []struct {
		line string
		pid  int32
		ok   bool
	}{
		{"42 (sh) S", 42, true},
		{"1 (init) S", 1, true},
		{"(sh) S", 0, false},
		{"42", 0, false},
		{"99999999999 (x) S", 0, false},
	} {
		pid, err := parseStatPID([]byte(tc.line))
		if (err == nil) != tc.ok || pid != tc.pid {
			t.Errorf("parseStatPID(%q) = %d, %v; want %d, ok=%v", tc.line, pid, err, tc.pid, tc.ok)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 11 1 2\n"))
	f.Add([]byte("42 (a) (b) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99 20"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStatPID(b)
		state, start, err := parseStat(b)
		if err != nil && (state != 0 || start != 0) {
			t.Fatalf("error with values: %q %d %v", state, start, err)
		}
	})
}

func BenchmarkAlive(b *testing.B) {
	id := Self()
	b.ReportAllocs()
	for b.Loop() {
		if !Alive(id) {
			b.Fatal("not alive")
		}
	}
}
