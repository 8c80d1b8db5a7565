//go:build linux

package dict

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/internal/proc/proctest"
)

// Child processes re-run the test binary with childEnv naming their role;
// TestMain dispatches them before any test runs.
const childEnv = "PROCWIRE_DICT_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role, os.Getenv("PROCWIRE_DICT_NAME"), os.Args))
	}
	// proctest.Main fails the run on leaked goroutines and on dictionaries
	// left in /dev/shm (testName also checks each one as its test ends).
	os.Exit(proctest.Main(m, nil, fmt.Sprintf("/dev/shm/procwire.dicttest.*.%d", os.Getpid())))
}

// startChild starts this test binary in a child role on dictionary name.
// Its stdout is returned for acknowledgements; stdin closing tells
// long-running roles to stop.
func startChild(t testing.TB, role, name string, args ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"="+role, "PROCWIRE_DICT_NAME="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, bufio.NewReader(stdout)
}

// runChild runs one child role and returns its exit status.
func runChild(role, name string, args []string) int {
	d, err := Open(name, 1<<20, &Options{Logger: discardLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	defer d.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch role {
	case "incr":
		// Increment a shared counter n times, then report.
		n, _ := strconv.Atoi(args[len(args)-1])
		one := 0.0
		for i := 0; i < n; i++ {
			if _, _, err := d.Incr("counter", 1, &one, 0); err != nil {
				fmt.Fprintln(os.Stderr, "child incr:", err)
				return 4
			}
			k := fmt.Sprintf("p%d-%d", os.Getpid(), i%50)
			if _, err := d.Set(k, Number(float64(i)), 0, 0); err != nil {
				fmt.Fprintln(os.Stderr, "child set:", err)
				return 4
			}
			if v, _, err := d.Get(k); err != nil || v != Number(float64(i)) {
				fmt.Fprintln(os.Stderr, "child get:", v, err)
				return 4
			}
		}
		fmt.Fprintln(out, "done")
	case "holdlock":
		// Die holding the lock in the middle of writing an item.
		t := &d.shards[0]
		t.lock()
		o, _ := t.newItem("torn", 64, true)
		t.writeItem(o, "torn", hashKey("torn"), TypeString, 64, 0, 0)
		fmt.Fprintln(out, "locked")
		out.Flush()
		select {}
	case "hammer":
		// Count every acknowledged increment in an 8-byte file mapped
		// shared (the last argument): stores to it survive SIGKILL, and
		// cost so little that the child spends most of its time inside
		// dictionary operations, where the kills should land. Mixed in:
		// sets with TTLs, sets that evict, list pushes and pops,
		// FlushExpired.
		f, err := os.OpenFile(args[len(args)-1], os.O_RDWR, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hammer:", err)
			return 4
		}
		m, err := syscall.Mmap(int(f.Fd()), 0, 8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hammer:", err)
			return 4
		}
		acks := (*uint64)(unsafe.Pointer(&m[0]))
		pid := os.Getpid()
		ctrShard := shardOf(hashKey("ctr")) & d.mask
		zero := 0.0
		filler := strings.Repeat("x", 300)
		for i := 0; ; i++ {
			// Overwritten in place: a kill in the middle must leave one
			// whole value or the other (TestCrashKill checks them).
			if _, err := d.Set(flipKeys[i%len(flipKeys)], flipValues[i%len(flipValues)], 0, 0); err != nil {
				fmt.Fprintln(os.Stderr, "hammer flip:", err)
				return 4
			}
			if _, _, err := d.Incr("ctr", 1, &zero, 0); err != nil {
				fmt.Fprintln(os.Stderr, "hammer incr:", err)
				return 4
			}
			atomic.AddUint64(acks, 1)
			k := "t" + strconv.Itoa(i%200)
			if _, err := d.Set(k, String(filler[:i%300]), time.Duration(i%5)*time.Millisecond, uint32(i)); err != nil && err != ErrNoMemory {
				fmt.Fprintln(os.Stderr, "hammer set:", err)
				return 4
			}
			l := "list" + strconv.Itoa(i%3)
			if _, err := d.RPush(l, String(k)); err != nil && err != ErrNoMemory {
				fmt.Fprintln(os.Stderr, "hammer rpush:", err)
				return 4
			}
			pop := d.LPop
			if i%2 == 0 {
				pop = d.RPop
			}
			if _, err := pop(l); err != nil && err != ErrNotFound {
				fmt.Fprintln(os.Stderr, "hammer pop:", err)
				return 4
			}
			if i%997 == 0 {
				// Rare: it walks the whole LRU list under the lock.
				d.FlushExpired(10)
			}
			// Fresh keys fill the memory so that stores evict, but only
			// in shards other than the counter's: an evicted counter
			// would restart from its init value.
			fresh := "u" + strconv.Itoa(pid) + "." + strconv.Itoa(i)
			if shardOf(hashKey(fresh))&d.mask != ctrShard {
				// With mixed sizes, 30 evictions may not free a chunk
				// large enough: no memory is a legal outcome.
				if _, err := d.Set(fresh, String(filler[:64]), 0, 0); err != nil && err != ErrNoMemory {
					fmt.Fprintln(os.Stderr, "hammer set fresh:", err)
					return 4
				}
			}
		}
	case "claimhold":
		// Die in the middle of a claimed overwrite of "key", with the
		// value length and half of claimHoldValue written.
		claimUntil(d, "key", claimHoldValue, d.claim.j, proc.Self(), stepMidCopy)
		fmt.Fprintln(out, "claimed")
		out.Flush()
		select {}
	case "flip":
		// Overwrite keys in place, each with 100 copies of one letter,
		// alternating, until stdin closes.
		stop := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
		fmt.Fprintln(out, "flipping")
		out.Flush()
		for i := 0; ; i++ {
			if _, err := d.Set(flipKeys[i%len(flipKeys)], flipValues[i%len(flipValues)], 0, 0); err != nil {
				fmt.Fprintln(os.Stderr, "flip set:", err)
				return 4
			}
			if i%1024 == 0 {
				select {
				case <-stop:
					return 0
				default:
				}
			}
		}
	case "bench":
		// Get (and Set, unless the last argument is "get") as fast as
		// possible until stdin closes; report ops and seconds.
		mode := args[len(args)-1]
		keys := twoProcessKeys(mode, 1)
		mixed := mode != "get"
		// Start on the first byte from stdin, stop when it closes.
		var go1 [1]byte
		if _, err := io.ReadFull(os.Stdin, go1[:]); err != nil {
			return 5
		}
		stop := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
		buf := make([]byte, 0, 256)
		n := 0
		start := time.Now()
		x := uint64(os.Getpid())*0x2545f4914f6cdd1d | 1
		for {
			for i := 0; i < 1024; i++ {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				j := int(x & 1023)
				// The operation is drawn independently of the key, so
				// that Gets also meet the keys the other process is
				// overwriting.
				if mixed && x>>32&1 == 0 {
					d.Set(keys[j], benchValue, 0, 0)
				} else {
					buf, _, _, _ = d.GetBytes(keys[j], buf[:0])
				}
			}
			n += 1024
			select {
			case <-stop:
				fmt.Fprintln(out, n, time.Since(start).Seconds())
				return 0
			default:
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", role)
		return 2
	}
	return 0
}

// twoProcessKeys returns the 1024 keys the process of the given role
// (0: parent, 1: child) draws from in a BenchmarkTwoProcesses mode: all
// the keys, or for "mixed-ownkeys" half of them, disjoint from the other
// process's, or for "mixed-ownshards" those of half the shards (repeated to
// fill the 1024).
func twoProcessKeys(mode string, role int) []string {
	keys := benchKeys(1024)
	var own []string
	for i, k := range keys {
		switch mode {
		case "mixed-ownkeys":
			if i&1 == role {
				own = append(own, k)
			}
		case "mixed-ownshards":
			if int(shardOf(hashKey(k))&1) == role {
				own = append(own, k)
			}
		default:
			return keys
		}
	}
	for len(own) < len(keys) {
		own = append(own, own...)
	}
	return own[:len(keys)]
}

// flipKeys are overwritten in place with flipValues by the flip and hammer
// child roles: each value is 100 copies of one letter, so a torn read or a
// torn write shows.
var (
	flipKeys   = []string{"flip-0", "flip-1", "flip-2", "flip-3"}
	flipValues = func() []Value {
		var vs []Value
		for c := 'a'; c <= 'z'; c++ {
			vs = append(vs, String(strings.Repeat(string(c), 100)))
		}
		return vs
	}()
)

// checkFlip reports what is wrong with a value read from a flip key.
func checkFlip(b []byte) error {
	if len(b) != 100 || strings.Count(string(b), string(b[:1])) != 100 {
		return fmt.Errorf("torn value %q", b)
	}
	return nil
}

// testName returns a dictionary name unique to the test and process, and
// removes the dictionary when the test ends.
func testName(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("dicttest.%s.%d", strings.NewReplacer("/", ".", " ", "_").Replace(t.Name()), os.Getpid())
	t.Cleanup(func() {
		Remove(name)
		if _, err := os.Stat("/dev/shm/procwire." + name); err == nil {
			t.Errorf("segment %s left in /dev/shm", name)
		}
	})
	return name
}
