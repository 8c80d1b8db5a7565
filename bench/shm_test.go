package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	alertbench "github.com/procwire/procwire/alert/bench"
	"github.com/procwire/procwire/shm"
)

// TestMain lets the test binary be the helper processes of the shared-
// memory rows and the alert rows' members.
func TestMain(m *testing.M) {
	if args := os.Getenv("PROCWIRE_BENCH_HELPER"); args != "" {
		if err := Helper(context.Background(), strings.Split(args, "\x1f"), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("PROCWIRE_BENCH_GROUP") != "" {
		if err := alertbench.MemberFromEnv(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testCommand runs Helper in a child process of the test binary.
func testCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROCWIRE_BENCH_HELPER="+strings.Join(args, "\x1f"))
	return cmd
}

var quick = &Options{Duration: 100 * time.Millisecond, Warmup: -1}

// checkRows checks that every row measured something and that the rows
// are the ones wanted, in order.
func checkRows(t *testing.T, rs []Result, names ...string) {
	t.Helper()
	if len(rs) != len(names) {
		t.Fatalf("%d rows, want %d: %+v", len(rs), len(names), rs)
	}
	for i, r := range rs {
		if r.Name != names[i] {
			t.Errorf("row %d is %q, want %q", i, r.Name, names[i])
		}
		if r.Ops <= 0 || r.Rate() <= 0 || r.Elapsed <= 0 {
			t.Errorf("%s: nothing measured: %+v", r.Name, r)
		}
	}
}

// checkClean fails the test if it leaves goroutines behind or segments of
// this process's benchmarks in /dev/shm.
func checkClean(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
				break
			}
		}
		ents, err := os.ReadDir(shm.Dir)
		if err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf("procwire.bench.%d.", os.Getpid())
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				t.Errorf("segment left behind: %s", e.Name())
			}
		}
	})
}

func TestDict(t *testing.T) {
	checkClean(t)
	rs, err := Dict(context.Background(), testCommand, quick)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rs, "dict get, 16B key, 100B value", "dict set, 16B key, 100B value",
		"dict get+set 50/50, 2 processes, shared keys")
}

func TestMQ(t *testing.T) {
	checkClean(t)
	rs, err := MQ(context.Background(), testCommand, quick)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rs, "mq 10B messages, 1 producer process", "mq 10K messages, 1 producer process",
		"mq 10B messages, 4 producer processes")
}

func TestSem(t *testing.T) {
	checkClean(t)
	rs, err := Sem(context.Background(), quick)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rs, "sem acquire+release pair")
}

func TestAlerts(t *testing.T) {
	checkClean(t)
	rs, err := Alerts(context.Background(), alertbench.SelfSpawn("-test.run=^$"), quick)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rs, "alert 10B all-to-all, 5 processes, Send", "alert 10K all-to-all, 5 processes, Send",
		"alert 10B Send+Reply round trip, 2 processes")
	if rt := rs[2]; rt.P50 <= 0 || rt.P99 < rt.P50 {
		t.Errorf("round-trip percentiles not sane: p50 %v p99 %v", rt.P50, rt.P99)
	}
}

// TestHelperErrors: a helper given a bad role or argument says what was
// wrong, and a helper that cannot get ready fails the row with its error.
func TestHelperErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"mq-send", "q"}, {"mq-send", "q", "ten"}, {"dict-mixed"}} {
		err := Helper(context.Background(), args, strings.NewReader(""), new(strings.Builder))
		if err == nil {
			t.Errorf("Helper(%q) succeeded", args)
		}
	}
	err := Helper(context.Background(), []string{"mq-send", "q", "ten"}, strings.NewReader(""), new(strings.Builder))
	if err == nil || !strings.Contains(err.Error(), `bad size "ten"`) {
		t.Errorf("Helper with a bad size: %v", err)
	}
	// A queue that does not exist: the helper exits before it is ready.
	_, err = startHelper(context.Background(), testCommand, "mq-send", fmt.Sprintf("bench.%d.missing", os.Getpid()), "10")
	if err == nil || !strings.Contains(err.Error(), "did not get ready") {
		t.Errorf("helper on a missing queue: %v", err)
	}
}
