//go:build linux

package dict

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procwire/procwire/internal/proc"
)

// claimStep names the instants of a claimed overwrite (setClaimed) at
// which claimUntil stops, as a claimer killed there would.
type claimStep int

const (
	stepEntry   claimStep = iota // journal entry written, item not claimed
	stepClaimed                  // item claimed, nothing written in it
	stepMidCopy                  // claimed, value length and half the value written
	stepSeq                      // everything written but the state
)

// claimUntil performs the steps of a claimed overwrite of key's item with
// v by the owner of claim slot j (identity owner), up to step stop, and
// returns the item and its state while claimed. It panics if the item
// cannot be claimed.
func claimUntil(d *Dict, key string, v Value, j uint32, owner proc.ID, stop claimStep) (uint32, uint8) {
	t, h := d.shardOf(key)
	o, seq, _ := t.peekFind(key, h)
	if o == 0 {
		panic(fmt.Sprintf("claimUntil: %q not found", key))
	}
	vlen := valueLen(v)
	e := offJournal + j*journalSlotSize
	t.put32(e+jBusy, 1)
	t.writeEntry(e, o, v, vlen, 0, 0, max(t.u64(offSeq), seq)+1)
	t.put64(e+jBase, seq)
	t.put32(e+jOwnerPID, uint32(owner.PID))
	t.put64(e+jOwnerStart, owner.Start)
	st := stateRewrite + uint8(j)
	if stop == stepEntry {
		return o, st
	}
	if w := t.load64(o); stateOf(w) != stateLive || !t.cas64(o, w, withState(w, st)) {
		panic(fmt.Sprintf("claimUntil: CAS failed on state %d", stateOf(w)))
	}
	switch stop {
	case stepMidCopy:
		s, _ := v.Str()
		t.put32(o+chValLen, vlen)
		copy(t.data[t.valOff(o):], s[:len(s)/2])
	case stepSeq:
		t.applyJournal(o, e)
		t.storeState(o, st)
	}
	return o, st
}

// deadID names a process that does not run: this one with another start
// time, as a process that died and whose pid was reused would appear.
func deadID() proc.ID {
	id := proc.Self()
	id.Start++
	return id
}

func openTest(t *testing.T, capacity int) *Dict {
	t.Helper()
	if !peekReads {
		t.Skip("claims need amd64")
	}
	d, err := Open(testName(t), capacity, &Options{Logger: discardLogger(), Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if d.claim.j == 0 {
		t.Fatal("no claim slot")
	}
	return d
}

// TestSetClaimed checks which stores overwrite in place by claiming the
// item, without the lock, and that each gives the same result as the
// locked path.
func TestSetClaimed(t *testing.T) {
	d := openTest(t, 1<<20)
	v100 := func(c byte) Value { return String(strings.Repeat(string(c), 100)) }
	tests := []struct {
		name    string
		setup   func()
		v       Value
		claimed bool
	}{
		{"same class", nil, v100('1'), true},
		{"number to string of its class", func() { d.Set("k", Number(1), 0, 0); d.Get("k") }, String("x"), true},
		{"smaller class", nil, String("short"), false},
		{"over the journal slot", nil, String(strings.Repeat("8", journalMaxValue+1)), false},
		{"item with an expiry", func() { d.Set("k", v100('0'), time.Hour, 0) }, v100('1'), false},
		{"other item with an expiry", func() { d.Set("other", v100('0'), time.Hour, 0) }, v100('1'), false},
		{"list", func() { d.Delete("k"); d.RPush("k", String("e")) }, String("x"), false},
		{"missing", func() { d.Delete("k") }, v100('1'), false},
		{"not yet read", func() { d.Delete("k"); d.Set("k", v100('0'), 0, 0) }, v100('1'), true},
	}
	for _, tt := range tests {
		d.FlushAll()
		d.FlushExpired(0)
		d.Set("k", v100('0'), 0, 0)
		d.Get("k")
		if tt.setup != nil {
			tt.setup()
		}
		tb, h := d.shardOf("k")
		before := tb.find("k", h)
		if got := d.setClaimed(tb, "k", h, tt.v, valueLen(tt.v), 7); got != tt.claimed {
			t.Errorf("%s: setClaimed = %v, want %v", tt.name, got, tt.claimed)
		}
		if !tt.claimed {
			d.Set("k", tt.v, 0, 7)
		} else if after := tb.find("k", h); after != before {
			t.Errorf("%s: claimed overwrite moved the item from %d to %d", tt.name, before, after)
		}
		if v, fl, err := d.Get("k"); err != nil || v != tt.v || fl != 7 {
			t.Errorf("%s: Get = %v, %d, %v", tt.name, v, fl, err)
		}
		if ttl, err := d.TTL("k"); err != nil || ttl != 0 {
			t.Errorf("%s: TTL = %v, %v", tt.name, ttl, err)
		}
		if err := d.Check(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	// A claimed overwrite keeps the item's LRU place, like one under the lock.
	d.FlushAll()
	d.FlushExpired(0)
	for _, k := range []string{"a", "b", "c"} {
		d.Set(k, v100('0'), 0, 0)
		d.Get(k)
	}
	tb, h := d.shardOf("b")
	if !d.setClaimed(tb, "b", h, v100('1'), 100, 0) {
		t.Fatal("setClaimed(b) = false")
	}
	if keys, _ := d.Keys(0); fmt.Sprint(keys) != "[c b a]" {
		t.Errorf("Keys = %v", keys)
	}
	// While the lock is held, claims back off.
	tb.lock()
	ok := d.setClaimed(tb, "b", h, v100('2'), 100, 0)
	tb.mu.Unlock()
	if ok {
		t.Error("setClaimed succeeded while the shard was locked")
	}
	if st, _ := d.Stats(); st.DeadClaims != 0 {
		t.Errorf("DeadClaims = %d", st.DeadClaims)
	}
}

// TestClaimCrashStates leaves an item as a claimer killed at each instant
// of a claimed overwrite would, and has the next operation on it, under
// the lock, finish the claim: it must not hang, and must find the old
// value or the new one, whole.
func TestClaimCrashStates(t *testing.T) {
	oldV, newV := String(strings.Repeat("o", 100)), String(strings.Repeat("n", 100))
	ops := []struct {
		name string
		op   func(d *Dict) (Value, error) // returns what key then holds
	}{
		{"Get", func(d *Dict) (Value, error) { v, _, err := d.Get("key"); return v, err }},
		{"GetStale", func(d *Dict) (Value, error) { v, _, _, err := d.GetStale("key"); return v, err }},
		{"Check", func(d *Dict) (Value, error) {
			if err := d.Check(); err != nil {
				return Value{}, err
			}
			v, _, err := d.Get("key")
			return v, err
		}},
		{"Set", func(d *Dict) (Value, error) {
			_, err := d.Set("key", String("set"), 0, 0)
			return String("set"), err
		}},
		{"Delete", func(d *Dict) (Value, error) { return Value{}, d.Delete("key") }},
		{"Expire", func(d *Dict) (Value, error) {
			d.Expire("key", time.Hour)
			v, _, err := d.Get("key")
			return v, err
		}},
		{"FlushAll", func(d *Dict) (Value, error) { return Value{}, d.FlushAll() }},
		{"rebuild", func(d *Dict) (Value, error) {
			// What the next holder does after a holder of the lock died.
			d.shards[0].locked(func(t *table) error { t.recover(); return nil })
			if st, _ := d.Stats(); st.Recoveries != 1 || st.Items != 1 || st.Dropped != 0 {
				return Value{}, fmt.Errorf("Stats after rebuild = %+v", st)
			}
			v, _, err := d.Get("key")
			return v, err
		}},
		{"evict", func(d *Dict) (Value, error) {
			// Fill the dictionary until key, the least recently used,
			// is evicted.
			for i := 0; i < 100_000; i++ {
				if _, err := d.Set(fmt.Sprint("fill", i), oldV, 0, 0); err != nil {
					return Value{}, err
				}
				if _, _, _, err := d.GetStale("key"); err == ErrNotFound {
					return Value{}, nil
				}
			}
			return Value{}, fmt.Errorf("key never evicted")
		}},
	}
	steps := []struct {
		name string
		step claimStep
		mod  func(tb *table, entry, o uint32)
		want Value
	}{
		{"claimed", stepClaimed, nil, newV},
		{"mid-copy", stepMidCopy, nil, newV},
		{"before release", stepSeq, nil, newV},
		// The claimer found the item at its offset with another sequence
		// number (it was replaced meanwhile): it had not written yet.
		{"claimed another item", stepClaimed, func(tb *table, e, o uint32) { tb.put64(e+jBase, 12345) }, oldV},
		{"entry names another item", stepClaimed, func(tb *table, e, o uint32) { tb.put32(e+jTarget, o+64) }, oldV},
	}
	for _, s := range steps {
		for _, op := range ops {
			t.Run(s.name+"/"+op.name, func(t *testing.T) {
				d := openTest(t, 256<<10)
				var logged bytes.Buffer
				d.shards[0].log = slog.New(slog.NewTextHandler(&logged, nil))
				d.Set("key", oldV, 0, 0)
				j := d.claim.j%claimSlots + 1 // a slot this Dict does not own
				o, _ := claimUntil(d, "key", newV, j, deadID(), s.step)
				if s.mod != nil {
					s.mod(&d.shards[0], offJournal+j*journalSlotSize, o)
				}
				// The state the claim left is what peek and Get see
				// first: not the torn value.
				done := make(chan struct{})
				var got Value
				var err error
				go func() {
					defer close(done)
					got, err = op.op(d)
				}()
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("operation on a claimed item did not complete")
				}
				want := s.want
				switch op.name {
				case "Set":
					want = String("set")
				case "Delete", "FlushAll", "evict":
					want = Value{}
				}
				if err != nil || got != want {
					t.Fatalf("got %v, %v; want %v", got, err, want)
				}
				if v, _, err := d.Get("key"); op.name != "Delete" && op.name != "FlushAll" && op.name != "evict" && (err != nil || v != want) {
					t.Fatalf("Get after = %v, %v; want %v", v, err, want)
				}
				if err := d.Check(); err != nil {
					t.Fatal(err)
				}
				if st, _ := d.Stats(); st.DeadClaims != 1 && s.mod == nil {
					t.Errorf("DeadClaims = %d, want 1", st.DeadClaims)
				}
				if s.mod == nil && !strings.Contains(logged.String(), "died during it") {
					t.Errorf("finished claim not logged: %q", logged.String())
				}
			})
		}
	}
}

// TestClaimLiveWaits has a lock holder meet an item claimed by a live
// claimer (this process, another goroutine): it waits for the claim to
// end rather than finishing it or reading the torn value.
func TestClaimLiveWaits(t *testing.T) {
	d := openTest(t, 256<<10)
	oldV, newV := String(strings.Repeat("o", 100)), String(strings.Repeat("n", 100))
	d.Set("key", oldV, 0, 0)
	j := d.claim.j%claimSlots + 1
	o, _ := claimUntil(d, "key", newV, j, proc.Self(), stepMidCopy)
	tb, _ := d.shardOf("key")
	var wg sync.WaitGroup
	var ended atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond)
		ended.Store(true)
		tb.applyJournal(o, offJournal+j*journalSlotSize) // the claimer finishes
	}()
	v, _, err := d.Get("key")
	returned := ended.Load()
	wg.Wait()
	if err != nil || v != newV {
		t.Fatalf("Get = %v, %v; want the new value", v, err)
	}
	if !returned {
		t.Error("Get returned before the claim ended")
	}
	if st, _ := d.Stats(); st.DeadClaims != 0 {
		t.Errorf("DeadClaims = %d, want 0", st.DeadClaims)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestClaimKill kills (SIGKILL) a child process in the middle of a
// claimed overwrite; then another operation on the item, in this
// process, must complete and see the old value or the new one, and a
// later opener takes the dead child's claim slot over.
func TestClaimKill(t *testing.T) {
	if !peekReads {
		t.Skip("claims need amd64")
	}
	oldV := String(strings.Repeat("o", 100))
	for _, tc := range []struct {
		name string
		op   func(d *Dict) error
	}{
		{"Set", func(d *Dict) error { _, err := d.Set("key", String("set"), 0, 0); return err }},
		{"Delete", func(d *Dict) error { return d.Delete("key") }},
		{"Get", func(d *Dict) error { _, _, err := d.Get("key"); return err }},
		{"Check", func(d *Dict) error { return d.Check() }},
		{"evict", func(d *Dict) error {
			for i := 0; i < 100_000; i++ {
				if _, err := d.Set(fmt.Sprint("fill", i), oldV, 0, 0); err != nil {
					return err
				}
				if _, _, _, err := d.GetStale("key"); err == ErrNotFound {
					return nil
				}
			}
			return fmt.Errorf("key never evicted")
		}},
		{"reopen", func(d *Dict) error {
			// A new opener gets the dead child's slot (this process holds
			// the other one) and finishes its claim first.
			e, err := Open(d.Name(), 1<<20, &Options{Logger: discardLogger()})
			if err != nil {
				return err
			}
			defer e.Close()
			if st, _ := e.Stats(); st.DeadClaims != 1 {
				return fmt.Errorf("reopen: DeadClaims = %d", st.DeadClaims)
			}
			// The slot the child left busy is usable again.
			tb, h := e.shardOf("key")
			if !e.setClaimed(tb, "key", h, claimHoldValue, 100, 0) {
				return fmt.Errorf("reopen: the taken-over slot %d does not claim", e.claim.j)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := testName(t)
			d, err := Open(name, 1<<20, &Options{Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			d.Set("key", oldV, 0, 0)
			cmd, stdin, out := startChild(t, "claimhold", name)
			defer stdin.Close()
			if line, err := out.ReadString('\n'); line != "claimed\n" {
				t.Fatalf("child: %q, %v", line, err)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			done := make(chan error, 1)
			go func() { done <- tc.op(d) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("operation on the dead child's claimed item did not complete")
			}
			v, _, err := d.Get("key")
			switch tc.name {
			case "Set":
				if v != String("set") {
					t.Errorf("Get = %v, %v", v, err)
				}
			case "Delete", "evict":
				if err != ErrNotFound {
					t.Errorf("Get after %s = %v, %v", tc.name, v, err)
				}
			default:
				if err != nil || v != claimHoldValue {
					t.Errorf("Get = %v, %v; want the child's value", v, err)
				}
			}
			if err := d.Check(); err != nil {
				t.Fatal(err)
			}
			if st, _ := d.Stats(); st.DeadClaims != 1 {
				t.Errorf("DeadClaims = %d, want 1", st.DeadClaims)
			}
		})
	}
}

// claimHoldValue is what the claimhold child was writing when killed.
var claimHoldValue = String(strings.Repeat("n", 100))

// TestClaimKillStress runs two children that overwrite a few keys,
// claiming them, as fast as they can, and kills one of them at a random
// moment, over and over (starting another), while this process stores,
// deletes and reads the same keys: no operation hangs, every value read
// is whole, and the dictionary stays consistent. A child killed holding
// the lock (storing a deleted key) is recovered from while the other
// one claims.
func TestClaimKillStress(t *testing.T) {
	name, d := openFlipDict(t)
	var err error // of the reads below
	kills := 100
	if testing.Short() {
		kills = 30
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	buf := make([]byte, 0, 128)
	deadline := time.Now().Add(60 * time.Second)
	var children [2]*exec.Cmd
	start := func() *exec.Cmd {
		cmd, _, out := startChild(t, "flip", name)
		if line, err := out.ReadString('\n'); line != "flipping\n" {
			t.Fatalf("child: %q, %v", line, err)
		}
		return cmd
	}
	defer func() {
		for _, c := range children {
			if c != nil {
				c.Process.Signal(syscall.SIGKILL)
				c.Wait()
			}
		}
	}()
	for i := 0; i < kills; i++ {
		for c := range children {
			if children[c] == nil {
				children[c] = start()
			}
		}
		// Let them flip a while, working on the keys too.
		until := time.Now().Add(time.Duration(rng.IntN(3000)) * time.Microsecond)
		for n := 0; time.Now().Before(until) || n == 0; n++ {
			k := flipKeys[rng.IntN(len(flipKeys))]
			switch rng.IntN(8) {
			case 0:
				d.Delete(k)
			case 1:
				d.Set(k, flipValues[rng.IntN(len(flipValues))], 0, 0)
			default:
				buf, _, _, err = d.GetBytes(k, buf[:0])
				if err == nil {
					err = checkFlip(buf)
				}
				if err != nil && err != ErrNotFound {
					t.Fatalf("kill %d: read %s: %v", i, k, err)
				}
			}
		}
		victim := rng.IntN(len(children))
		children[victim].Process.Signal(syscall.SIGKILL)
		children[victim].Wait()
		children[victim] = nil
		for _, k := range flipKeys {
			buf, _, _, err = d.GetBytes(k, buf[:0])
			if err == nil {
				err = checkFlip(buf)
			}
			if err != nil && err != ErrNotFound {
				t.Fatalf("after kill %d: %s: %v", i, k, err)
			}
			d.Set(k, flipValues[i%len(flipValues)], 0, 0) // so that the next child claims them
		}
		if err := d.Check(); err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		if time.Now().After(deadline) {
			t.Logf("stopped after %d kills", i+1)
			break
		}
	}
	st, _ := d.Stats()
	t.Logf("claims of killed children finished by others: %d; locks recovered: %d", st.DeadClaims, st.Recoveries)
	if st.Resets != 0 || st.Dropped != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestClaimSlots checks that each handle takes its own claim slot, that
// handles beyond the seven slots store under the lock (correctly), and
// that a closed handle's slot goes to the next opener.
func TestClaimSlots(t *testing.T) {
	d := openTest(t, 256<<10)
	handles := []*Dict{d}
	defer func() {
		for _, h := range handles[1:] {
			h.Close()
		}
	}()
	seen := map[uint32]bool{d.claim.j: true}
	for i := 1; i < claimSlots+2; i++ {
		h, err := Open(d.Name(), 256<<10, &Options{Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
		j := h.claim.j
		switch {
		case i < claimSlots && (j == 0 || seen[j]):
			t.Fatalf("handle %d got claim slot %d (taken: %v)", i, j, seen)
		case i >= claimSlots && j != 0:
			t.Fatalf("handle %d got claim slot %d beyond the %d slots", i, j, claimSlots)
		}
		seen[j] = true
	}
	last := handles[len(handles)-1]
	last.Set("k", String("slotless"), 0, 0)
	last.Set("k", String("lock-only"), 0, 0)
	if v, _, err := d.Get("k"); err != nil || v != String("lock-only") {
		t.Fatalf("Get = %v, %v", v, err)
	}
	freed := handles[3].claim.j
	handles[3].Close()
	h, err := Open(d.Name(), 256<<10, &Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	handles = append(handles, h)
	if h.claim.j != freed {
		t.Fatalf("new handle got slot %d, want the freed %d", h.claim.j, freed)
	}
	if st, _ := d.Stats(); st.DeadClaims != 0 {
		t.Errorf("DeadClaims = %d", st.DeadClaims)
	}
}

// TestClaimContention has two child processes overwrite the same keys by
// claims while this process overwrites and reads them: every value read
// is whole, and the dictionary ends consistent.
func TestClaimContention(t *testing.T) {
	if !peekReads {
		t.Skip("claims need amd64")
	}
	name, d := openFlipDict(t)
	type child struct {
		wait  func() error
		close func() error
	}
	var children []child
	for range 2 {
		cmd, stdin, out := startChild(t, "flip", name)
		if line, err := out.ReadString('\n'); line != "flipping\n" {
			t.Fatalf("child: %q, %v", line, err)
		}
		children = append(children, child{cmd.Wait, stdin.Close})
	}
	ops := 500_000
	if testing.Short() {
		ops = 100_000
	}
	buf := make([]byte, 0, 128)
	var err, failed error
	for i := 0; i < ops && failed == nil; i++ {
		k := flipKeys[i%len(flipKeys)]
		if i%4 == 0 {
			d.Set(k, flipValues[i%len(flipValues)], 0, 0)
			continue
		}
		buf, _, _, err = d.GetBytes(k, buf[:0])
		if err == nil {
			err = checkFlip(buf)
		}
		if err != nil {
			failed = fmt.Errorf("read %d: %v", i, err)
		}
	}
	for _, c := range children {
		c.close()
		if err := c.wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
	if failed != nil {
		t.Fatal(failed)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Stats(); st.DeadClaims != 0 || st.Recoveries != 0 {
		t.Errorf("Stats = %+v", st)
	}
}
