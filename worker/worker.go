package worker

import (
	"github.com/procwire/procwire/alert"

	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
)

var (
	// ErrMasterGone is the context cause in a worker whose master died.
	ErrMasterGone = errors.New("worker: master process is gone")
	// ErrShutdown, wrapped with the signal's name, is the context cause in
	// a worker told to stop by SIGTERM or SIGINT. The SIGTERM the kernel
	// sends a worker when its master dies may give this cause too, if it
	// comes before the master is seen to be gone.
	ErrShutdown = errors.New("worker: shut down by signal")
)

// Func is the body of a worker process. It should return soon after ctx
// is done; its error becomes the result of Run in that worker.
type Func func(ctx context.Context, w *Worker) error

// IsWorker reports whether this process was started as a worker by a
// master's Run. It is meant for main, before Run: Run in a worker removes
// the variables that mark it, so that programs the worker starts do not
// take themselves for workers.
func IsWorker() bool {
	_, ok := os.LookupEnv(envIndex)
	return ok
}

// Worker is the view a worker process has of itself. Its methods are safe
// for concurrent use.
type Worker struct {
	id        identity
	listeners []net.Listener
	log       *slog.Logger

	alerts *alert.Group

	readyOnce sync.Once
	ctl       net.Conn // control socket to the master
}

// Index returns the worker's slot, from 0 to Config.Workers-1. A worker
// restarted after a crash or a reload keeps its slot's index.
func (w *Worker) Index() int { return w.id.Index }

// Generation returns how many reloads (SIGHUP) the master had begun when
// it started this worker; the first workers are generation 0.
func (w *Worker) Generation() int { return w.id.Generation }

// GroupName returns a name shared by every worker of this master, old and
// new across reloads, and by no other master's workers. Workers use it to
// join one alert group.
func (w *Worker) GroupName() string { return w.id.Group }

// Alerts returns the worker's membership of its master's alert group, or
// nil when Config.Alerts is nil.
func (w *Worker) Alerts() *alert.Group { return w.alerts }

// PID returns the worker's process id.
func (w *Worker) PID() int { return os.Getpid() }

// MasterPID returns the process id of the master.
func (w *Worker) MasterPID() int { return w.id.Master }

// Listener returns the i-th listener of Config.Listeners, shared with the
// other workers. It panics if i is out of range, like a slice index. Run
// closes the listeners when the worker function returns.
//
// Do not call Fd on the File of a listener: it would switch the socket,
// which all workers share, to blocking mode, and a worker blocked in
// accept could then no longer be stopped by closing its listener.
func (w *Worker) Listener(i int) net.Listener { return w.listeners[i] }

// Listeners returns all inherited listeners in the order of
// Config.Listeners.
func (w *Worker) Listeners() []net.Listener {
	return append([]net.Listener(nil), w.listeners...)
}

// Ready tells the master that this worker is serving. It matters only
// with Config.ManualReady, during a reload: the master retires the old
// worker of this slot once the new one is ready. Calls after the first do
// nothing.
func (w *Worker) Ready() {
	w.readyOnce.Do(func() {
		if _, err := w.ctl.Write([]byte{readyByte}); err != nil && !errors.Is(err, net.ErrClosed) {
			w.log.Warn("worker: cannot report readiness to the master", "err", err)
		}
	})
}

// readyByte is what a worker writes on its control socket when ready.
const readyByte = 'R'
