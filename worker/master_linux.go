//go:build linux

package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one worker process as the master sees it.
type proc struct {
	slot    int
	gen     int
	cmd     *exec.Cmd
	pid     int
	started time.Time
	ctl     net.Conn      // master's end of the control socket
	exited  chan struct{} // closed once the exit has been handled

	retiring bool      // we sent SIGTERM; its exit is expected
	killAt   time.Time // when a retiring proc gets SIGKILL
	killed   bool
	readyBy  time.Time // deadline of a reload's new worker
}

type exitEvent struct {
	p   *proc
	err error
}

// slot is one of the Config.Workers positions.
type slot struct {
	cur       *proc     // the serving worker, nil while none runs
	restartAt time.Time // non-zero: start a worker then
	failures  int       // early exits in a row, for the backoff
}

// master supervises the workers. All its fields are owned by the
// goroutine running loop; other goroutines only send on its channels.
type master struct {
	cfg       *settings
	log       *slog.Logger
	path      string
	args      []string
	env       []string
	group     string
	listeners []net.Listener
	files     []*os.File // dups of listeners, handed to every worker

	slots    []slot
	live     map[*proc]struct{}
	pending  *proc // new worker of a reload, not yet ready
	gen      int
	stopping bool

	exits   chan exitEvent
	readies chan *proc
	wg      sync.WaitGroup
}

// runMaster is Run in the master process.
func runMaster(ctx context.Context, s *settings) (err error) {
	m := &master{
		cfg:     s,
		log:     s.Logger,
		args:    s.Args,
		env:     s.Env,
		group:   s.Group,
		slots:   make([]slot, s.Workers),
		live:    make(map[*proc]struct{}),
		exits:   make(chan exitEvent),
		readies: make(chan *proc),
	}
	if m.path = s.Path; m.path == "" {
		if m.path, err = os.Executable(); err != nil {
			return fmt.Errorf("worker: cannot find the program to re-execute: %w", err)
		}
	}
	if m.args == nil {
		m.args = os.Args
	}
	if m.env == nil {
		m.env = os.Environ()
	}
	if m.group == "" {
		m.group = "w" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	defer m.closeListeners()
	if err := m.listen(); err != nil {
		return err
	}

	// PR_SET_PDEATHSIG fires when the thread that forked a worker exits,
	// not the process, and Go ends a thread whenever a goroutine locked to
	// it returns without unlocking. Pinning this goroutine, which does
	// every fork, keeps any other goroutine from locking the forking
	// thread, so it lives until all workers are gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigc)

	m.log.Info("worker: master starting", "workers", s.Workers, "group", m.group, "pid", os.Getpid())
	var startErr error
	for i := range m.slots {
		p, err := m.start(i)
		if err != nil {
			startErr = err
			m.beginStop("a worker failed to start")
			break
		}
		m.slots[i].cur = p
	}
	m.loop(ctx, sigc)
	m.wg.Wait()
	m.log.Info("worker: master stopped")
	return startErr
}

// listen opens the configured listeners and keeps a dup of each to hand
// to workers. The Unix listeners remove their socket files when closed.
func (m *master) listen() error {
	for i, spec := range m.cfg.Listeners {
		l, err := m.listenOne(spec)
		if err != nil {
			return fmt.Errorf("worker: Listeners[%d]: %w", i, err)
		}
		m.listeners = append(m.listeners, l)
		if spec.Network == "unix" {
			if err := os.Chmod(spec.Address, spec.Mode); err != nil {
				return fmt.Errorf("worker: Listeners[%d]: %w", i, err)
			}
		}
		f, err := dupListener(l)
		if err != nil {
			return fmt.Errorf("worker: Listeners[%d]: %w", i, err)
		}
		m.files = append(m.files, f)
		m.log.Info("worker: listening", "network", spec.Network, "address", l.Addr().String())
	}
	return nil
}

// listenOne opens one listener. A Unix socket file left by a master that
// was killed is removed, but only once connecting to it is refused: a
// socket someone still serves is never taken over.
func (m *master) listenOne(spec ListenSpec) (net.Listener, error) {
	l, err := net.Listen(spec.Network, spec.Address)
	if err == nil || spec.Network != "unix" || !errors.Is(err, syscall.EADDRINUSE) {
		return l, err
	}
	if fi, serr := os.Lstat(spec.Address); serr != nil || fi.Mode().Type() != fs.ModeSocket {
		return nil, err
	}
	c, derr := net.DialTimeout("unix", spec.Address, time.Second)
	if derr == nil {
		c.Close()
		return nil, err
	}
	if !errors.Is(derr, syscall.ECONNREFUSED) {
		return nil, err
	}
	m.log.Warn("worker: removing stale unix socket", "path", spec.Address)
	if rerr := os.Remove(spec.Address); rerr != nil {
		return nil, fmt.Errorf("%w (removing the stale socket file: %v)", err, rerr)
	}
	return net.Listen(spec.Network, spec.Address)
}

// dupListener returns a close-on-exec duplicate of l's descriptor.
//
// It does not use (*net.TCPListener).File: os/exec passes a File to a
// child through its Fd method, which puts a File made by package net into
// blocking mode, and O_NONBLOCK belongs to the socket that every worker
// shares. A worker's accept(2) would then block in the kernel, where
// closing the listener cannot wake it, and the worker could not stop. A
// File made by os.NewFile from a non-blocking descriptor is left as it is.
func dupListener(l net.Listener) (*os.File, error) {
	sc, err := l.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	var derr error
	if err := sc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup listener: %w", derr)
	}
	return os.NewFile(uintptr(dup), "procwire-listener "+l.Addr().String()), nil
}

func (m *master) closeListeners() {
	for _, f := range m.files {
		f.Close()
	}
	for _, l := range m.listeners {
		l.Close()
	}
}

// start starts a worker for slot i in the current generation.
func (m *master) start(i int) (*proc, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("worker: control socket for worker %d: %w", i, err)
	}
	child := os.NewFile(uintptr(fds[1]), "procwire-worker-control")
	defer child.Close() // the worker has its copy once started
	parent := os.NewFile(uintptr(fds[0]), "procwire-worker-control")
	ctl, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		return nil, fmt.Errorf("worker: control socket for worker %d: %w", i, err)
	}
	id := identity{
		Index:       i,
		Generation:  m.gen,
		Group:       m.group,
		Master:      os.Getpid(),
		Listeners:   len(m.files),
		StopTimeout: m.cfg.StopTimeout,
	}
	cmd := &exec.Cmd{
		Path:       m.path,
		Args:       m.args,
		Env:        id.environ(m.env),
		Stdout:     m.cfg.Stdout,
		Stderr:     m.cfg.Stderr,
		ExtraFiles: append([]*os.File{child}, m.files...), // fd 3, then 4...
		// A grandchild holding the output pipes must not keep Wait from
		// reporting the worker's exit.
		WaitDelay: time.Second,
		SysProcAttr: &syscall.SysProcAttr{
			Pdeathsig: syscall.SIGTERM,
			Setpgid:   true,
		},
	}
	if err := cmd.Start(); err != nil {
		ctl.Close()
		return nil, fmt.Errorf("worker: start worker %d (%s): %w", i, m.path, err)
	}
	p := &proc{
		slot:    i,
		gen:     m.gen,
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		started: time.Now(),
		ctl:     ctl,
		exited:  make(chan struct{}),
	}
	m.live[p] = struct{}{}
	m.log.Info("worker: started", "worker", i, "pid", p.pid, "generation", p.gen)
	m.wg.Go(func() {
		err := cmd.Wait()
		m.exits <- exitEvent{p, err} // loop runs until every live proc is reaped
	})
	m.wg.Go(func() {
		b := make([]byte, 1)
		if n, _ := io.ReadFull(ctl, b); n == 1 && b[0] == readyByte {
			select {
			case m.readies <- p:
			case <-p.exited:
			}
		}
	})
	return p, nil
}

// loop handles events until the master is stopping and every worker has
// been reaped.
func (m *master) loop(ctx context.Context, sigc <-chan os.Signal) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	ctxDone := ctx.Done()
	for !m.stopping || len(m.live) > 0 {
		var wake <-chan time.Time
		if at, ok := m.nextDeadline(); ok {
			timer.Reset(time.Until(at))
			wake = timer.C
		}
		select {
		case <-ctxDone:
			ctxDone = nil
			m.beginStop("context done")
		case sig := <-sigc:
			switch {
			case sig == syscall.SIGHUP && !m.stopping:
				m.gen++
				m.log.Info("worker: reloading", "generation", m.gen)
				if m.pending == nil {
					m.continueReload()
				} // else the running reload also covers the new generation
			case sig == syscall.SIGHUP:
				// Stopping: nothing to reload.
			case m.stopping:
				m.log.Warn("worker: second stop signal; killing workers", "signal", sig.String())
				for p := range m.live {
					p.killAt = time.Now()
				}
			default:
				m.beginStop(sig.String())
			}
		case e := <-m.exits:
			m.handleExit(e.p, e.err)
		case p := <-m.readies:
			m.handleReady(p)
		case <-wake:
		}
		m.handleDeadlines(time.Now())
	}
}

// nextDeadline returns the earliest time at which handleDeadlines has
// something to do.
func (m *master) nextDeadline() (time.Time, bool) {
	var at time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for i := range m.slots {
		earlier(m.slots[i].restartAt)
	}
	for p := range m.live {
		if !p.killed {
			earlier(p.killAt)
		}
	}
	if m.pending != nil {
		earlier(m.pending.readyBy)
	}
	return at, !at.IsZero()
}

func (m *master) handleDeadlines(now time.Time) {
	for p := range m.live {
		if p.retiring && !p.killed && !now.Before(p.killAt) {
			p.killed = true
			m.log.Warn("worker: did not stop in time; killing it", "worker", p.slot, "pid", p.pid)
			p.cmd.Process.Kill()
		}
	}
	if p := m.pending; p != nil && !now.Before(p.readyBy) {
		m.log.Error("worker: new worker not ready in time; reload abandoned, old workers keep running",
			"worker", p.slot, "pid", p.pid, "timeout", m.cfg.ReadyTimeout)
		m.pending = nil
		m.retire(p)
		if m.slots[p.slot].cur == nil { // the old worker died meanwhile
			m.scheduleRestart(p.slot, 0)
		}
	}
	for i := range m.slots {
		sl := &m.slots[i]
		if sl.restartAt.IsZero() || now.Before(sl.restartAt) {
			continue
		}
		sl.restartAt = time.Time{}
		p, err := m.start(i)
		if err != nil {
			m.log.Error("worker: restart failed", "worker", i, "err", err)
			m.scheduleRestart(i, 0)
			continue
		}
		sl.cur = p
	}
}

// handleExit deals with a reaped worker.
func (m *master) handleExit(p *proc, err error) {
	delete(m.live, p)
	close(p.exited)
	p.ctl.Close()
	lived := time.Since(p.started)
	attrs := []any{"worker", p.slot, "pid", p.pid, "generation", p.gen, "ran", lived.Round(time.Millisecond)}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	switch {
	case p.retiring || m.stopping:
		m.log.Info("worker: stopped", attrs...)
		return
	case p == m.pending:
		m.log.Error("worker: new worker exited before it was ready; reload abandoned, old workers keep running", attrs...)
		m.pending = nil
		if m.slots[p.slot].cur == nil {
			m.scheduleRestart(p.slot, lived)
		}
		return
	}
	m.log.Warn("worker: exited unexpectedly", attrs...)
	if m.slots[p.slot].cur == p {
		m.slots[p.slot].cur = nil
		if m.pending == nil || m.pending.slot != p.slot { // else the pending one takes the slot
			m.scheduleRestart(p.slot, lived)
		}
	}
}

// scheduleRestart plans the start of a new worker in slot i after one that
// ran for lived exited.
func (m *master) scheduleRestart(i int, lived time.Duration) {
	sl := &m.slots[i]
	if lived >= m.cfg.Backoff.Reset {
		sl.failures = 0
	}
	d := m.cfg.Backoff.delay(sl.failures)
	sl.failures++
	sl.restartAt = time.Now().Add(d)
	m.log.Info("worker: restarting", "worker", i, "delay", d, "failures", sl.failures)
}

// handleReady promotes a reload's new worker once it is ready.
func (m *master) handleReady(p *proc) {
	if p != m.pending || m.stopping {
		return
	}
	m.pending = nil
	sl := &m.slots[p.slot]
	old := sl.cur
	sl.cur = p
	sl.restartAt = time.Time{}
	if old != nil {
		m.log.Info("worker: replaced", "worker", p.slot, "old", old.pid, "new", p.pid, "generation", p.gen)
		m.retire(old)
	}
	m.continueReload()
}

// continueReload starts the new worker of the next slot whose worker is of
// an older generation, or ends the reload.
func (m *master) continueReload() {
	for i := range m.slots {
		sl := &m.slots[i]
		if sl.cur == nil || sl.cur.gen >= m.gen {
			continue // a restart, if pending, is in the new generation already
		}
		p, err := m.start(i)
		if err != nil {
			m.log.Error("worker: reload abandoned, old workers keep running", "worker", i, "err", err)
			return
		}
		p.readyBy = time.Now().Add(m.cfg.ReadyTimeout)
		m.pending = p
		return
	}
	m.log.Info("worker: reload done", "generation", m.gen)
}

// retire asks p to stop and arms its SIGKILL deadline.
func (m *master) retire(p *proc) {
	if p.retiring {
		return
	}
	p.retiring = true
	p.killAt = time.Now().Add(m.cfg.StopTimeout)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.log.Warn("worker: cannot signal worker", "worker", p.slot, "pid", p.pid, "err", err)
	}
}

// beginStop stops every worker and cancels the restarts.
func (m *master) beginStop(reason string) {
	if m.stopping {
		return
	}
	m.stopping = true
	m.log.Info("worker: stopping workers", "reason", reason, "timeout", m.cfg.StopTimeout)
	m.pending = nil
	for i := range m.slots {
		m.slots[i].restartAt = time.Time{}
	}
	for p := range m.live {
		m.retire(p)
	}
}
