package worker

import (
	"github.com/procwire/procwire/alert"

	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"
)

// Defaults used for the zero values of [Config] and [Backoff].
const (
	DefaultStopTimeout  = 10 * time.Second
	DefaultReadyTimeout = 30 * time.Second
	DefaultBackoffMin   = 100 * time.Millisecond
	DefaultBackoffMax   = 10 * time.Second
	DefaultBackoffReset = 10 * time.Second
	DefaultSocketMode   = fs.FileMode(0o600)
)

// Config says how many workers to run, what they listen on and how they
// are stopped and restarted. A nil *Config, and the zero value of each
// field, mean the documented default.
//
// In a worker process only Logger and ManualReady matter; the rest is
// read by the master.
type Config struct {
	// Workers is the number of worker processes; 0 means runtime.NumCPU().
	Workers int

	// Listeners are opened once by the master and passed to every worker,
	// which finds them with Worker.Listener in the same order.
	Listeners []ListenSpec

	// StopTimeout is how long a worker may take to return after it is told
	// to stop before it is killed with SIGKILL; 0 means DefaultStopTimeout.
	StopTimeout time.Duration

	// ReadyTimeout is how long a new worker started by a reload (SIGHUP)
	// may take to become ready before the reload is abandoned; 0 means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// ManualReady makes workers report readiness themselves by calling
	// Worker.Ready. Without it a worker is ready once its function has run
	// for 200ms without returning, which suffices when it serves the
	// inherited listeners: they queue connections in the backlog even
	// before the first Accept. It is read in the worker processes.
	ManualReady bool

	// Backoff paces the restarts of workers that keep exiting.
	Backoff Backoff

	// Alerts, when non-nil, makes every worker a member of the alert
	// group named Worker.GroupName before fn runs, and until it returns:
	// workers of one master, old and new across reloads, can alert each
	// other with Worker.Alerts. Put the handlers in Alerts.Handlers, so
	// that they are in place before the others can see the worker and
	// nothing sent to it early is lost. A nil Alerts.Logger means the
	// worker's logger.
	Alerts *alert.Config

	// Group overrides Worker.GroupName; empty means a name made from the
	// master's pid and start time.
	Group string

	// Logger receives supervision events; nil means slog.Default().
	Logger *slog.Logger

	// Path is the program to run as a worker; empty means os.Executable().
	// It is resolved when Run starts.
	Path string
	// Args is the worker's argv including argv[0]; nil means os.Args.
	Args []string
	// Env is the worker's environment, to which Run adds the variables that
	// make it a worker; nil means os.Environ().
	Env []string
	// Stdout and Stderr receive the workers' output; nil means the master's
	// own os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
}

// ListenSpec describes one listening socket, in the terms of net.Listen.
type ListenSpec struct {
	// Network is "tcp", "tcp4", "tcp6" or "unix".
	Network string
	// Address is a host:port for TCP (port 0 picks a free port) or a
	// file-system path for "unix".
	Address string
	// Mode is the permission of a Unix socket file; 0 means
	// DefaultSocketMode (0600). Ignored for TCP.
	Mode fs.FileMode
}

// Backoff paces the restarts of a worker slot. The first restart is
// immediate; while the workers of the slot keep exiting before they have
// run for Reset, each further restart waits twice as long as the last,
// from Min up to Max. A worker that ran at least Reset starts the count
// again.
type Backoff struct {
	Min   time.Duration // 0 means DefaultBackoffMin
	Max   time.Duration // 0 means DefaultBackoffMax
	Reset time.Duration // 0 means DefaultBackoffReset
}

// delay returns how long to wait before restart number n (0-based) of a
// worker that keeps exiting early: 0, Min, 2*Min, 4*Min, ... capped at Max.
func (b Backoff) delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// settings is a Config with its defaults applied and checked.
type settings struct {
	Config
}

func (c *Config) settings() (*settings, error) {
	s := &settings{}
	if c != nil {
		s.Config = *c
	}
	if s.Workers < 0 {
		return nil, fmt.Errorf("worker: Workers must not be negative, was %d", s.Workers)
	}
	if s.Workers == 0 {
		s.Workers = runtime.NumCPU()
	}
	if s.StopTimeout < 0 || s.ReadyTimeout < 0 {
		return nil, errors.New("worker: StopTimeout and ReadyTimeout must not be negative")
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = DefaultStopTimeout
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = DefaultReadyTimeout
	}
	b := &s.Backoff
	if b.Min < 0 || b.Max < 0 || b.Reset < 0 {
		return nil, errors.New("worker: Backoff durations must not be negative")
	}
	if b.Min == 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoffMax, b.Min)
	}
	if b.Max < b.Min {
		return nil, fmt.Errorf("worker: Backoff.Max (%v) is below Backoff.Min (%v)", b.Max, b.Min)
	}
	if b.Reset == 0 {
		b.Reset = DefaultBackoffReset
	}
	// Copy so that filling in defaults never writes to the caller's slice.
	s.Listeners = append([]ListenSpec(nil), s.Listeners...)
	for i, l := range s.Listeners {
		switch l.Network {
		case "tcp", "tcp4", "tcp6":
		case "unix":
			if l.Address == "" {
				return nil, fmt.Errorf("worker: Listeners[%d]: unix socket needs a path", i)
			}
			if l.Address[0] == '@' {
				return nil, fmt.Errorf("worker: Listeners[%d]: abstract unix socket %q is not supported", i, l.Address)
			}
		default:
			return nil, fmt.Errorf("worker: Listeners[%d]: unsupported network %q (want tcp, tcp4, tcp6 or unix)", i, l.Network)
		}
		if l.Mode&^fs.ModePerm != 0 {
			return nil, fmt.Errorf("worker: Listeners[%d]: Mode %v has bits other than permissions", i, l.Mode)
		}
		if l.Mode == 0 {
			s.Listeners[i].Mode = DefaultSocketMode
		}
	}
	if strings.ContainsRune(s.Group, 0) {
		return nil, fmt.Errorf("worker: Group %q contains a NUL byte", s.Group)
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Stdout == nil {
		s.Stdout = os.Stdout
	}
	if s.Stderr == nil {
		s.Stderr = os.Stderr
	}
	return s, nil
}
