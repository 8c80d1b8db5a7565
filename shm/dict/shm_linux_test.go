//go:build linux

package dict

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/shm"
)

func TestOpenAttach(t *testing.T) {
	name := testName(t)
	if _, err := Attach(name, nil); !errors.Is(err, shm.ErrNotFound) {
		t.Fatalf("Attach(missing) = %v", err)
	}
	a, err := Open(name, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if fi, err := os.Stat("/dev/shm/procwire." + name); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("segment mode: %v %v", fi, err)
	}
	if _, err := a.Set("k", String("v"), 0, 3); err != nil {
		t.Fatal(err)
	}
	b, err := Attach(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if v, fl, err := b.Get("k"); err != nil || v != String("v") || fl != 3 {
		t.Fatalf("Get through second mapping = %v %v %v", v, fl, err)
	}
	if b.Capacity() != 1<<20 {
		t.Fatalf("Capacity = %d", b.Capacity())
	}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{0, MinCapacity - 1} {
		if _, err := Open(name+"x", c, nil); err == nil {
			t.Errorf("Open(capacity %d) succeeded", c)
		}
	}
	if _, err := Open("../etc", 1<<20, nil); !errors.Is(err, shm.ErrInvalidName) {
		t.Errorf("Open(bad name) = %v", err)
	}
}

func TestOpenRefusesOtherKind(t *testing.T) {
	name := testName(t)
	seg, err := shm.Open(name, 1<<20, &shm.Options{Kind: shm.KindRaw})
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if _, err := Open(name, 1<<20, nil); !errors.Is(err, shm.ErrIncompatible) {
		t.Fatalf("Open(raw segment) = %v, want ErrIncompatible", err)
	}
}

// TestProcesses has several processes increment one counter and work on
// their own keys at the same time.
func TestProcesses(t *testing.T) {
	name := testName(t)
	d, err := Open(name, 1<<20, &Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const children, each = 3, 3000
	var outs []*bufio.Reader
	var cmds []interface{ Wait() error }
	for i := 0; i < children; i++ {
		cmd, stdin, out := startChild(t, "incr", name, strconv.Itoa(each))
		stdin.Close()
		cmds = append(cmds, cmd)
		outs = append(outs, out)
	}
	one := 0.0
	for i := 0; i < each; i++ {
		if _, _, err := d.Incr("counter", 1, &one, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		line, _ := outs[i].ReadString('\n')
		if err := cmd.Wait(); err != nil || line != "done\n" {
			t.Fatalf("child %d: %v, %q", i, err, line)
		}
	}
	if v, _, err := d.Get("counter"); err != nil || v != Number((children+1)*each) {
		t.Fatalf("counter = %v, %v; want %d", v, err, (children+1)*each)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashKill is issue 3's crash test: children hammer the dictionary
// (incr on a shared counter, sets with TTLs, list pushes and pops) and are
// killed with SIGKILL at random moments, many times. Afterwards nobody is
// stuck, Check finds nothing and the counter matches the acknowledged
// increments: acked <= counter <= acked + kills, since an increment
// whose acknowledgement was not received may or may not have landed.
func TestCrashKill(t *testing.T) {
	rounds := 100 // two children killed per round
	if testing.Short() {
		rounds = 10
	}
	name := testName(t)
	// Two shards: recovery of one must not disturb the other.
	d, err := Open(name, 1<<20, &Options{Shards: 2, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 3))
	dir := t.TempDir()
	readAcks := func(path string) int {
		b, err := os.ReadFile(path)
		if err != nil || len(b) != 8 {
			t.Fatalf("ack file: %v", err)
		}
		return int(binary.LittleEndian.Uint64(b))
	}
	acked, kills := 0, 0
	for round := 0; round < rounds; round++ {
		type child struct {
			cmd   *exec.Cmd
			stdin io.Closer
			acks  string
		}
		var cs []child
		for i := 0; i < 2; i++ {
			acks := fmt.Sprintf("%s/acks-%d-%d", dir, round, i)
			if err := os.WriteFile(acks, make([]byte, 8), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd, stdin, _ := startChild(t, "hammer", name, acks)
			cs = append(cs, child{cmd, stdin, acks})
		}
		// Kill each child at a random moment after it got going.
		for _, c := range cs {
			deadline := time.Now().Add(30 * time.Second)
			for readAcks(c.acks) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("child never acknowledged an increment: dictionary stuck?")
				}
				time.Sleep(100 * time.Microsecond)
			}
			time.Sleep(time.Duration(r.IntN(25000)) * time.Microsecond) // longer than lock recovery, sometimes
			c.cmd.Process.Signal(syscall.SIGKILL)
			c.cmd.Wait()
			if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("child exited on its own (%v): see its stderr", c.cmd.ProcessState)
			}
			c.stdin.Close()
			kills++
			acked += readAcks(c.acks)
		}
	}
	// Nobody is stuck: the lock comes back even if the last child died
	// holding it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Check() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Check did not get the lock within 30s")
	}
	v, _, err := d.Get("ctr")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := v.Number()
	if int(got) < acked || int(got) > acked+kills {
		t.Fatalf("counter %v, acknowledged %d, kills %d", got, acked, kills)
	}
	for _, k := range flipKeys {
		b, _, _, err := d.GetBytes(k, nil)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if err := checkFlip(b); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	st, _ := d.Stats()
	t.Logf("kills %d, acked increments %d, counter %v, stats %+v", kills, acked, got, st)
	if st.Resets != 0 || st.Dropped != 0 {
		t.Errorf("crashes lost data: %+v", st)
	}
	for i := 0; i < 3; i++ {
		if n, err := d.LLen("list" + strconv.Itoa(i)); err != nil || n < 0 {
			t.Fatalf("LLen = %d, %v", n, err)
		}
	}
}

// openFlipDict opens a dictionary for the tests that overwrite flipKeys
// from several processes, with every key holding flipValues[0]; the
// dictionary is closed when the test ends.
func openFlipDict(t *testing.T) (string, *Dict) {
	t.Helper()
	name := testName(t)
	d, err := Open(name, 1<<20, &Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, k := range flipKeys {
		if _, err := d.Set(k, flipValues[0], 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	return name, d
}

// TestInPlaceReads has a child process overwrite keys in place as fast as
// it can while this one reads them, without the lock where it may: every
// value read must be whole, never part of one and part of the next.
func TestInPlaceReads(t *testing.T) {
	name, d := openFlipDict(t)
	cmd, stdin, out := startChild(t, "flip", name)
	if line, err := out.ReadString('\n'); line != "flipping\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	reads := 2_000_000
	if testing.Short() {
		reads = 200_000
	}
	buf := make([]byte, 0, 128)
	seen := map[byte]bool{}
	for i := 0; i < reads; i++ {
		var err error
		buf, _, _, err = d.GetBytes(flipKeys[i%len(flipKeys)], buf[:0])
		if err == nil {
			err = checkFlip(buf)
		}
		if err != nil {
			stdin.Close()
			cmd.Wait()
			t.Fatalf("read %d: %v", i, err)
		}
		seen[buf[0]] = true
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if len(seen) < 2 {
		t.Errorf("reads saw only %d distinct values: the child did not overwrite concurrently", len(seen))
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverDeadHolder kills a process that holds the lock halfway
// through writing an item: the next user gets the lock, the index is
// rebuilt and the half-written item is gone.
func TestRecoverDeadHolder(t *testing.T) {
	name := testName(t)
	d, err := Open(name, 1<<20, &Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Set("kept", String("yes"), 0, 0)
	cmd, stdin, out := startChild(t, "holdlock", name)
	defer stdin.Close()
	if line, err := out.ReadString('\n'); line != "locked\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	done := make(chan error, 1)
	go func() {
		_, _, err := d.Get("kept")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lock not recovered within 30s")
	}
	st, _ := d.Stats()
	if st.Recoveries != 1 || st.Items != 1 || st.Resets != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if _, _, _, err := d.GetStale("torn"); err != ErrNotFound {
		t.Fatalf("half-written item visible: %v", err)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkGet(b *testing.B) {
	d, err := Open(testName(b), 64<<20, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	benchGet(b, d)
}

func BenchmarkSet(b *testing.B) {
	d, err := Open(testName(b), 64<<20, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	benchSet(b, d)
}

// BenchmarkTwoProcesses runs Gets (get) or half Sets, half Gets (mixed) of
// random keys in this process and in a child process at once, and reports
// the total throughput of both. The two other cases show what sharing
// costs: in mixed-ownkeys the processes use disjoint halves of the keys (no
// item is shared, the shards' locks are), in mixed-ownshards the keys of
// disjoint halves of the shards (nothing written is shared).
func BenchmarkTwoProcesses(b *testing.B) {
	for _, mode := range []string{"get", "mixed", "mixed-ownkeys", "mixed-ownshards"} {
		b.Run(mode, func(b *testing.B) { benchTwoProcesses(b, mode) })
	}
}

func benchTwoProcesses(b *testing.B, mode string) {
	name := testName(b)
	d, err := Open(name, 64<<20, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for _, k := range benchKeys(1024) {
		d.Set(k, benchValue, 0, 0)
	}
	keys := twoProcessKeys(mode, 0)
	mixed := mode != "get"
	cmd, stdin, out := startChild(b, "bench", name, mode)
	stdin.Write([]byte{1}) // start the child's loop
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	x := uint64(0x9e3779b97f4a7c15) // xorshift: keys in random order
	for b.Loop() {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		j := int(x & 1023)
		// The operation is drawn independently of the key, so that Gets
		// also meet the keys the other process is overwriting.
		if mixed && x>>32&1 == 0 {
			d.Set(keys[j], benchValue, 0, 0)
		} else {
			buf, _, _, _ = d.GetBytes(keys[j], buf[:0])
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	// The child reports its own operations and time; its rate, measured
	// while it ran alongside this loop, adds to ours.
	stdin.Close()
	line, _ := out.ReadString('\n')
	cmd.Wait()
	var childOps int
	var childSecs float64
	if _, err := fmt.Sscan(line, &childOps, &childSecs); err != nil || childSecs <= 0 {
		b.Fatalf("child report %q: %v", line, err)
	}
	parent := float64(b.N) / elapsed.Seconds()
	child := float64(childOps) / childSecs
	b.ReportMetric(parent, "parent-ops/s")
	b.ReportMetric(child, "child-ops/s")
	b.ReportMetric(parent+child, "total-ops/s")
}

func ExampleDict() {
	name := fmt.Sprintf("example.%d", os.Getpid())
	d, err := Open(name, 1<<20, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer Remove(name)
	defer d.Close()

	d.Set("greeting", String("hello"), time.Minute, 0)
	v, flags, err := d.Get("greeting")
	fmt.Println(v, flags, err)

	one := 0.0
	n, _, _ := d.Incr("hits", 1, &one, 0)
	n, _, _ = d.Incr("hits", 1, nil, 0)
	fmt.Println(n)

	_, err = d.Add("greeting", String("again"), 0, 0)
	fmt.Println(err)

	_, _, err = d.Get("missing")
	fmt.Println(errors.Is(err, ErrNotFound), err)
	// Output:
	// hello 0 <nil>
	// 2
	// exists
	// true not found
}

func ExampleDict_GetBytes() {
	name := fmt.Sprintf("example-bytes.%d", os.Getpid())
	d, err := Open(name, 1<<20, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer Remove(name)
	defer d.Close()

	d.Set("page", String("<html>"), 0, 0)
	d.Set("ratio", Number(0.25), 0, 7)
	buf := make([]byte, 0, 64) // reused: reads do not allocate
	for _, k := range []string{"page", "ratio"} {
		var typ Type
		var flags uint32
		buf, typ, flags, err = d.GetBytes(k, buf[:0])
		fmt.Printf("%s %s %d %v\n", buf, typ, flags, err)
	}
	// Output:
	// <html> string 0 <nil>
	// 0.25 number 7 <nil>
}

func ExampleDict_RPush() {
	name := fmt.Sprintf("example-list.%d", os.Getpid())
	d, err := Open(name, 1<<20, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer Remove(name)
	defer d.Close()

	d.RPush("jobs", String("a"))
	d.RPush("jobs", Number(2))
	n, _ := d.LPush("jobs", String("first"))
	fmt.Println("length", n)
	for {
		v, err := d.LPop("jobs")
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(v.Type(), v)
	}
	// Output:
	// length 3
	// string first
	// string a
	// number 2
	// not found
}

func TestOpenShardsOption(t *testing.T) {
	name := testName(t)
	for _, n := range []int{3, 32, -1} {
		if _, err := Open(name, 1<<20, &Options{Shards: n}); err == nil {
			t.Errorf("Open with %d shards succeeded", n)
		}
	}
	d, err := Open(name, 1<<20, &Options{Shards: 4, Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if fi, err := os.Stat("/dev/shm/procwire." + name); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("segment mode: %v %v", fi, err)
	}
	st, _ := d.Stats()
	if st.Shards != 4 {
		t.Fatalf("Shards = %d", st.Shards)
	}
	// An attacher uses the creator's shard count.
	e, err := Open(name, 1<<20, &Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if st, _ := e.Stats(); st.Shards != 4 {
		t.Fatalf("attacher sees %d shards", st.Shards)
	}
}

// BenchmarkParallel has GOMAXPROCS goroutines of one process share a
// dictionary, half Sets and half Gets of random keys.
func BenchmarkParallel(b *testing.B) {
	d, err := Open(testName(b), 64<<20, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	keys := benchKeys(1024)
	for _, k := range keys {
		d.Set(k, benchValue, 0, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var seed atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		x := seed.Add(0x9e3779b97f4a7c15) | 1
		buf := make([]byte, 0, 256)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			j := int(x & 1023)
			if x>>32&1 == 0 {
				d.Set(keys[j], benchValue, 0, 0)
			} else {
				buf, _, _, _ = d.GetBytes(keys[j], buf[:0])
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
