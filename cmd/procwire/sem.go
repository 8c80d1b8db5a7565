package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/procwire/procwire/shm/sem"
)

func init() {
	register(command{
		name:    "sem",
		summary: "use a named semaphore (NAME acquire | release | value)",
		run:     runSem,
	})
}

func runSem(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sem", "NAME acquire|release|value [--timeout D] [--initial N]", stderr)
	timeout := fs.Duration("timeout", 0, "how long acquire waits (0: until interrupted)")
	initial := fs.Int("initial", 1, "count of a semaphore that acquire or release creates")
	// Flags may come before or after NAME and the action.
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) >= 2 {
		if err := fs.Parse(pos[2:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErr("unexpected argument %q", fs.Arg(0))
		}
	}
	if len(pos) < 2 {
		fs.Usage()
		return usageErr("need a semaphore NAME and an action (acquire, release or value)")
	}
	name, action := pos[0], pos[1]
	if *initial < 0 || *initial > sem.MaxValue {
		return usageErr("--initial %d out of range [0, %d]", *initial, sem.MaxValue)
	}
	if *timeout < 0 {
		return usageErr("--timeout must not be negative")
	}
	var s *sem.Sem
	var err error
	switch action {
	case "acquire", "release":
		s, err = sem.Open(name, *initial, nil)
	case "value":
		s, err = sem.Attach(name, nil)
	default:
		return usageErr("unknown action %q: want acquire, release or value", action)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	switch action {
	case "acquire":
		if *timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		if err := s.Acquire(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("acquire %s: no unit within %v", name, *timeout)
			}
			return fmt.Errorf("acquire %s: %w", name, err)
		}
	case "release":
		if err := s.Release(); err != nil {
			return err
		}
	case "value":
		fmt.Fprintln(stdout, s.Value())
	}
	return nil
}
