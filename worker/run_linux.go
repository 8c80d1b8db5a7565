//go:build linux

package worker

import (
	"github.com/procwire/procwire/alert"

	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Fds of a worker process: the control socket, then the listeners.
const (
	ctlFD           = 3
	firstListenerFD = 4
)

// autoReadyAfter is how long fn must have run for a worker without
// Config.ManualReady to report ready.
const autoReadyAfter = 200 * time.Millisecond

// Run runs the master or, in a process the master started, the worker.
//
// In the master, where fn is not called, Run starts cfg.Workers copies of the program and
// supervises them (see the package documentation) until ctx ends or the
// master gets SIGTERM or SIGINT. It then stops every worker, waits for
// them all to be reaped and returns nil; it returns an error if the
// listeners cannot be opened or the first workers cannot be started.
//
// In a worker, Run calls fn with a context that is cancelled on SIGTERM,
// SIGINT or the death of the master, and returns fn's error; main should
// exit with a non-zero status if it is not nil.
func Run(ctx context.Context, cfg *Config, fn Func) error {
	s, err := cfg.settings()
	if err != nil {
		return err
	}
	if IsWorker() {
		if fn == nil {
			return errors.New("worker: Run in a worker process needs a non-nil fn")
		}
		return runWorker(ctx, s, fn)
	}
	return runMaster(ctx, s)
}

// runWorker is Run in a worker process.
func runWorker(ctx context.Context, s *settings, fn Func) error {
	id, err := parseIdentity(os.LookupEnv)
	if err != nil {
		return err
	}
	// An environment inherited by some unrelated descendant must not make
	// it adopt fds it does not own.
	if ppid := os.Getppid(); ppid != id.Master {
		return fmt.Errorf("worker: %s names master pid %d but the parent is pid %d (the master died, or the variable was inherited by an unrelated process)", envMaster, id.Master, ppid)
	}
	// Like sd_listen_fds, take the variables out of the environment: a
	// program this worker runs must not believe it is a worker too.
	for _, name := range envNames() {
		os.Unsetenv(name)
	}
	w := &Worker{id: id, log: s.Logger.With("worker", id.Index, "pid", os.Getpid())}

	// net.FileConn and net.FileListener dup the fds with close-on-exec;
	// closing the originals keeps them out of the worker's own children,
	// which could otherwise hold the listeners or the control socket open.
	f := os.NewFile(ctlFD, "procwire-worker-control")
	w.ctl, err = net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("worker: control socket on fd %d: %w", ctlFD, err)
	}
	for i := range id.Listeners {
		fd := firstListenerFD + i
		f := os.NewFile(uintptr(fd), fmt.Sprintf("procwire-listener-%d", i))
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			for _, l := range w.listeners {
				l.Close()
			}
			w.ctl.Close()
			return fmt.Errorf("worker: listener %d on fd %d: %w", i, fd, err)
		}
		w.listeners = append(w.listeners, l)
	}
	defer func() {
		for _, l := range w.listeners {
			l.Close()
		}
	}()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { // also when fn panics, so that no goroutine is left blocked
		signal.Stop(sigc)
		close(done)
		w.ctl.Close() // unblocks the control reader
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			select {
			case sig := <-sigc:
				if os.Getppid() != id.Master {
					// PR_SET_PDEATHSIG after the whole master is gone.
					// (While another master thread lives, we are
					// reparented to it and cannot tell yet.)
					cancel(ErrMasterGone)
				} else {
					cancel(fmt.Errorf("%w: %v", ErrShutdown, sig))
				}
			case <-done:
				return
			}
		}
	})

	// The master never writes after start, so any return from Read means
	// its end is closed: it died. PR_SET_PDEATHSIG sends SIGTERM too, but
	// that hangs on the kernel's rule about the forking thread; the socket
	// does not, and it arms the exit deadline below.
	wg.Go(func() {
		_, err := w.ctl.Read(make([]byte, 1))
		if errors.Is(err, net.ErrClosed) {
			return // we closed it: fn has returned
		}
		w.log.Warn("worker: master is gone; stopping", "master", id.Master)
		cancel(ErrMasterGone)
		t := time.NewTimer(id.StopTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			// Nobody is left to SIGKILL us; an orphan must not linger.
			w.log.Error("worker: did not stop within StopTimeout after the master died; exiting", "timeout", id.StopTimeout)
			os.Exit(1)
		case <-done:
		}
	})

	if s.Alerts != nil {
		ac := *s.Alerts
		if ac.Logger == nil {
			ac.Logger = w.log
		}
		g, err := alert.Join(ctx, id.Group, &ac)
		if err != nil {
			return fmt.Errorf("worker: joining the workers' alert group: %w", err)
		}
		defer g.Close()
		w.alerts = g
	}

	if !s.ManualReady {
		// A worker that fails at start-up usually does so at once; not
		// claiming readiness at once keeps a broken new version from
		// replacing every working old worker during a reload.
		t := time.AfterFunc(autoReadyAfter, w.Ready)
		defer t.Stop()
	}
	return fn(ctx, w)
}
