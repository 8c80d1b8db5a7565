package worker

import (
	"strings"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{-1, 0},
		{0, 0},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{6, time.Second},
		{1000, time.Second}, // no overflow
	} {
		if got := b.delay(tc.n); got != tc.want {
			t.Errorf("delay(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestSettingsDefaults(t *testing.T) {
	l := []ListenSpec{{Network: "unix", Address: "/tmp/x.sock"}}
	s, err := (&Config{Listeners: l}).settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.Workers < 1 || s.StopTimeout != DefaultStopTimeout || s.ReadyTimeout != DefaultReadyTimeout ||
		s.Backoff != (Backoff{DefaultBackoffMin, DefaultBackoffMax, DefaultBackoffReset}) ||
		s.Logger == nil || s.Stdout == nil || s.Stderr == nil {
		t.Errorf("defaults not applied: %+v", s)
	}
	if s.Listeners[0].Mode != DefaultSocketMode {
		t.Errorf("socket mode %v, want %v", s.Listeners[0].Mode, DefaultSocketMode)
	}
	if l[0].Mode != 0 {
		t.Error("settings wrote to the caller's Listeners")
	}
	if _, err := (*Config)(nil).settings(); err != nil {
		t.Errorf("nil Config: %v", err)
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	id := identity{Index: 3, Generation: 7, Group: "w1-abc", Master: 42, Listeners: 2, StopTimeout: 1500 * time.Millisecond}
	env := id.environ([]string{"HOME=/root", "PROCWIRE_WORKER=9", "PROCWIRE_WORKER_GROUP=old"})
	if strings.Count(strings.Join(env, "\n"), "PROCWIRE_WORKER=") != 1 {
		t.Errorf("inherited worker variables were not replaced: %q", env)
	}
	got, err := parseIdentity(lookupIn(env))
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Errorf("round trip: got %+v, want %+v", got, id)
	}
}

func TestParseIdentityErrors(t *testing.T) {
	good := identity{Index: 0, Group: "g", Master: 1, StopTimeout: time.Second}.environ(nil)
	for _, tc := range []struct {
		set, want string
	}{
		{"PROCWIRE_WORKER=-1", "PROCWIRE_WORKER=\"-1\" is not a number"},
		{"PROCWIRE_WORKER_GENERATION=x", "PROCWIRE_WORKER_GENERATION=\"x\""},
		{"PROCWIRE_WORKER_MASTER=0", "PROCWIRE_WORKER_MASTER=\"0\""},
		{"PROCWIRE_WORKER_LISTENERS=5000", "PROCWIRE_WORKER_LISTENERS=\"5000\""},
		{"PROCWIRE_WORKER_GROUP=", "PROCWIRE_WORKER_GROUP is not set or empty"},
		{"PROCWIRE_WORKER_STOP_TIMEOUT=0s", "not a positive duration"},
	} {
		_, err := parseIdentity(lookupIn(append(good, tc.set)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("with %s: %v, want an error containing %q", tc.set, err, tc.want)
		}
	}
}

// FuzzParseIdentity feeds arbitrary values to the worker's environment
// parser: it must not panic, and what it accepts must survive a round trip.
func FuzzParseIdentity(f *testing.F) {
	f.Add("0", "0", "w1-x", "1", "0", "10s")
	f.Add("3", "12", "group", "4242", "2", "1.5s")
	f.Add("-1", "", "", "0", "99999", "-1s")
	f.Add("1e3", "0x10", "\x00", "1", "1024", "1h")
	f.Fuzz(func(t *testing.T, index, gen, group, master, listeners, stop string) {
		env := []string{
			"PROCWIRE_WORKER=" + index,
			"PROCWIRE_WORKER_GENERATION=" + gen,
			"PROCWIRE_WORKER_GROUP=" + group,
			"PROCWIRE_WORKER_MASTER=" + master,
			"PROCWIRE_WORKER_LISTENERS=" + listeners,
			"PROCWIRE_WORKER_STOP_TIMEOUT=" + stop,
		}
		id, err := parseIdentity(lookupIn(env))
		if err != nil {
			return
		}
		if id.Listeners > maxListeners || id.Master < 1 || id.StopTimeout <= 0 || id.Group == "" {
			t.Fatalf("accepted out-of-range identity %+v", id)
		}
		again, err := parseIdentity(lookupIn(id.environ(nil)))
		if err != nil || again != id {
			t.Fatalf("round trip of %+v: %+v, %v", id, again, err)
		}
	})
}

// lookupIn returns an os.LookupEnv over env, the last entry of a name
// winning as in os/exec.
func lookupIn(env []string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := "", false
		for _, kv := range env {
			if k, val, _ := strings.Cut(kv, "="); k == name {
				v, ok = val, true
			}
		}
		return v, ok
	}
}
