//go:build linux

package sem

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/proc/proctest"
	"github.com/procwire/procwire/shm"
)

var testPrefix = fmt.Sprintf("semtest-%d-", os.Getpid())

// TestMain runs a child role (see runChild) in processes started by
// proctest.Start, and the tests otherwise, checking that they leave no
// semaphore or goroutine behind.
func TestMain(m *testing.M) {
	os.Exit(proctest.Main(m, func(role string, args []string) int {
		args = append(args, "", "")
		return runChild(role, args[0], args[1])
	}, "/dev/shm/procwire.sem."+testPrefix+"*"))
}

func semName(t testing.TB) string {
	return testPrefix + strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
}

// open opens the test's semaphore and removes it when the test ends.
func open(t testing.TB, initial int, opts *Options) *Sem {
	t.Helper()
	s, err := Open(semName(t), initial, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		Remove(s.Name())
	})
	return s
}

func runChild(role, name, arg string) int {
	arg, noUndo := strings.CutSuffix(arg, ",noundo")
	n, _ := strconv.Atoi(arg)
	ctx := context.Background()
	switch role {
	case "closewhileacquiring":
		return closeWhileAcquiring(name)
	case "hold":
		// Acquire n units (with Undo unless told), say so, and wait to be killed.
		s, err := Open(name, 0, &Options{Undo: !noUndo})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		for range n {
			s.Acquire(ctx)
		}
		fmt.Println("held")
		time.Sleep(time.Hour)
	case "limit":
		// n rounds of acquire, count the holders in a raw segment, release.
		s, err := Open(name, 0, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		seg, err := shm.Attach(name, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		inside := (*int32)(ptr(seg.Data()))
		max := (*int32)(ptr(seg.Data()[4:]))
		for range n {
			s.Acquire(ctx)
			in := atomic.AddInt32(inside, 1)
			for {
				m := atomic.LoadInt32(max)
				if in <= m || atomic.CompareAndSwapInt32(max, m, in) {
					break
				}
			}
			for range 100 {
				atomic.LoadInt32(inside)
			}
			atomic.AddInt32(inside, -1)
			s.Release()
		}
		fmt.Println("done")
	case "churn":
		// Acquire and release forever with Undo, acknowledging each pair.
		s, err := Open(name, 0, &Options{Undo: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		out := []byte("+\n")
		for {
			s.Acquire(ctx)
			s.Release()
			os.Stdout.Write(out)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 3
	}
	return 0
}

func TestOpenNeverResets(t *testing.T) {
	s := open(t, 3, nil)
	if !s.TryAcquire() || s.Value() != 2 {
		t.Fatalf("after TryAcquire: value %d, want 2", s.Value())
	}
	s2, err := Open(s.Name(), 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Value() != 2 {
		t.Fatalf("second Open reset the count to %d, want 2", s2.Value())
	}
	s3, err := Attach(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.Value() != 2 {
		t.Fatalf("Attach sees count %d, want 2", s3.Value())
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial int
		want    error
	}{
		{"", 1, shm.ErrInvalidName},
		{"../x", 1, shm.ErrInvalidName},
		{semName(t), -1, ErrBadInitial},
	} {
		if _, err := Open(tc.name, tc.initial, nil); !errors.Is(err, tc.want) {
			t.Errorf("Open(%q, %d) = %v, want %v", tc.name, tc.initial, err, tc.want)
		}
	}
	// One over the limit, where an int can hold it.
	if over := int64(MaxValue) + 1; over <= math.MaxInt {
		if _, err := Open(semName(t), int(over), nil); !errors.Is(err, ErrBadInitial) {
			t.Errorf("Open(_, %d) = %v, want ErrBadInitial", over, err)
		}
	}
	if _, err := Attach(semName(t), nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Attach of a missing semaphore = %v, want ErrNotFound", err)
	}
	if err := Remove(semName(t)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove of a missing semaphore = %v, want ErrNotFound", err)
	}
	// A segment of another kind under the semaphore's name is refused.
	seg, err := shm.Create("sem."+semName(t), 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Remove(seg.Name())
	defer seg.Close()
	if _, err := Open(semName(t), 1, nil); !errors.Is(err, shm.ErrIncompatible) {
		t.Errorf("Open over a raw segment = %v, want shm.ErrIncompatible", err)
	}
}

func TestTryAcquireRelease(t *testing.T) {
	s := open(t, 2, nil)
	if !s.TryAcquire() || !s.TryAcquire() {
		t.Fatal("TryAcquire failed with units left")
	}
	if s.TryAcquire() {
		t.Fatal("TryAcquire succeeded at 0")
	}
	for range 3 {
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if s.Value() != 3 {
		t.Fatalf("value %d, want 3", s.Value())
	}
	s.Close()
	if err := s.Release(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Release after Close = %v", err)
	}
	if err := s.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close = %v", err)
	}
}

func TestOverflow(t *testing.T) {
	s := open(t, MaxValue, nil)
	if err := s.Release(); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Release at MaxValue = %v, want ErrOverflow", err)
	}
	if s.Value() != MaxValue {
		t.Fatalf("value %d", s.Value())
	}
}

func TestAcquireWaits(t *testing.T) {
	s := open(t, 0, nil)
	const waiters = 4
	var wg sync.WaitGroup
	var got atomic.Int32
	for range waiters {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			got.Add(1)
		})
	}
	time.Sleep(10 * time.Millisecond)
	if got.Load() != 0 {
		t.Fatal("Acquire did not wait at 0")
	}
	for range waiters {
		s.Release()
	}
	wg.Wait()
	if got.Load() != waiters || s.Value() != 0 {
		t.Fatalf("%d acquired, value %d", got.Load(), s.Value())
	}
}

func TestAcquireContext(t *testing.T) {
	s := open(t, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v, want DeadlineExceeded", err)
	}
	s.Release()
	if s.Value() != 1 {
		t.Fatalf("a cancelled Acquire changed the count: %d", s.Value())
	}
}

// TestLimitMultiProcess checks that a semaphore of 2 never lets more than 2
// of 4 processes in at once.
func TestLimitMultiProcess(t *testing.T) {
	s := open(t, 2, nil)
	seg, err := shm.Create(s.Name(), 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Remove(s.Name())
	defer seg.Close()
	var cs []*proctest.Child
	for range 4 {
		cs = append(cs, proctest.Start(t, "limit", s.Name(), "3000"))
	}
	for _, c := range cs {
		c.WaitLine(t, "done")
		c.Wait()
	}
	if max := atomic.LoadInt32((*int32)(ptr(seg.Data()[4:]))); max < 1 || max > 2 {
		t.Fatalf("at most %d processes were inside at once, want 1 or 2", max)
	}
	if s.Value() != 2 {
		t.Fatalf("value %d after all released, want 2", s.Value())
	}
}

// TestUndoKilledHolder: a child holding 2 of 3 units with Undo is killed;
// its units come back to waiters. Without Undo they would stay taken.
func TestUndoKilledHolder(t *testing.T) {
	s := open(t, 3, &Options{Undo: true})
	c := proctest.Start(t, "hold", s.Name(), "2")
	c.WaitLine(t, "held")
	if s.Value() != 1 {
		t.Fatalf("value %d with 2 units held, want 1", s.Value())
	}
	if err := s.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Wait for the 2 held units in another goroutine; kill the holder.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		err := s.Acquire(ctx)
		if err == nil {
			err = s.Acquire(ctx)
		}
		errc <- err
	}()
	c.Signal(syscall.SIGKILL) // not reaped yet: a zombie
	if err := <-errc; err != nil {
		t.Fatal("units of a killed Undo holder were not given back:", err)
	}
	c.Kill()
	if s.Value() != 0 {
		t.Fatalf("value %d, want 0", s.Value())
	}
	for range 3 {
		s.Release()
	}
	if s.Value() != 3 {
		t.Fatalf("value %d, want 3", s.Value())
	}
}

// TestNoUndoKeepsUnits: without Undo, the units of a killed holder stay
// taken, as with a semaphore used to hand units between processes.
func TestNoUndoKeepsUnits(t *testing.T) {
	s := open(t, 1, &Options{Undo: true})
	c := proctest.Start(t, "hold", s.Name(), "1,noundo")
	c.WaitLine(t, "held")
	c.Kill()
	time.Sleep(2 * reclaimEvery)
	if s.TryAcquire() {
		t.Fatal("a unit taken without Undo came back when its taker died")
	}
}

func TestUndoCloseAndReopen(t *testing.T) {
	obs := open(t, 2, nil) // a handle without Undo, to look at the table
	entry := func(i int) *holder { return &obs.l.table[i] }
	s, err := Open(obs.Name(), 0, &Options{Undo: true})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(obs.Name(), 0, &Options{Undo: true})
	if err != nil {
		t.Fatal(err)
	}
	slot := s.slot
	if slot < 0 || s2.slot != slot || entry(slot).refs != 2 {
		t.Fatalf("two handles of one process: entries %d and %d, refs %d", slot, s2.slot, entry(slot).refs)
	}
	s2.Close()
	if entry(slot).pid == 0 {
		t.Fatal("Close of one handle freed the entry the other uses")
	}
	s.TryAcquire()
	s.Close()
	if entry(slot).pid == 0 || entry(slot).held != 1 {
		t.Fatalf("entry pid %d held %d after Close while holding a unit", entry(slot).pid, entry(slot).held)
	}
	s3, err := Open(obs.Name(), 0, &Options{Undo: true})
	if err != nil {
		t.Fatal(err)
	}
	if s3.slot != slot {
		t.Fatalf("reopen took entry %d, want %d", s3.slot, slot)
	}
	s3.Release()
	if entry(slot).held != 0 || obs.Value() != 2 {
		t.Fatalf("after Release: held %d value %d", entry(slot).held, obs.Value())
	}
	s3.Close()
	if entry(slot).pid != 0 {
		t.Fatal("entry not freed by the last Close with nothing held")
	}
}

// TestUndoCrash kills Undo children at random moments while they acquire
// and release; afterwards every unit must be back.
func TestUndoCrash(t *testing.T) {
	kills := 100
	if testing.Short() {
		kills = 20
	}
	const initial, running = 2, 3
	s := open(t, initial, nil)
	live := map[*proctest.Child]bool{}
	for range running {
		live[proctest.Start(t, "churn", s.Name(), "")] = true
	}
	defer func() {
		for c := range live {
			c.Kill()
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	deadline := time.Now().Add(60 * time.Second)
	for k := 0; k < kills; k++ {
		var victim *proctest.Child
		for victim == nil {
			for c := range live {
				if c.Acks() > 0 {
					victim = c
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %d kills no child makes progress: semaphore stuck?", k)
			}
			time.Sleep(200 * time.Microsecond)
		}
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Microsecond)
		victim.Kill()
		delete(live, victim)
		live[proctest.Start(t, "churn", s.Name(), "")] = true
	}
	for c := range live {
		c.Kill()
		delete(live, c)
	}
	t.Logf("%d kills; %d of %d units held by dead processes at the end", kills, initial-s.Value(), initial)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range initial {
		if err := s.Acquire(ctx); err != nil {
			t.Fatalf("unit %d never came back after the kills: %v (value %d)", i, err, s.Value())
		}
	}
	if s.TryAcquire() {
		t.Fatal("more units than the initial count after the kills")
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	for _, undo := range []bool{false, true} {
		b.Run(fmt.Sprintf("undo=%v", undo), func(b *testing.B) {
			s := open(b, 1, &Options{Undo: undo})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s.Acquire(ctx)
				s.Release()
			}
		})
	}
}

// TestWaitersDoNotPinThreads checks that goroutines waiting on one Sem do
// not each block an OS thread in futex_wait.
func TestWaitersDoNotPinThreads(t *testing.T) {
	s := open(t, 0, nil)
	before := proctest.Threads(t)
	const waiters = 200
	var wg sync.WaitGroup
	for range waiters {
		wg.Go(func() {
			if err := s.Acquire(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	during := proctest.Threads(t)
	for range waiters {
		s.Release()
	}
	wg.Wait()
	t.Logf("threads: %d before, %d with %d waiters", before, during, waiters)
	if during-before > waiters/4 {
		t.Fatalf("%d waiting goroutines grew the process from %d to %d threads", waiters, before, during)
	}
	if s.Value() != 0 {
		t.Fatalf("value %d, want 0", s.Value())
	}
}
