package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/procwire/procwire/shm/mq"
)

const mqUsage = `NAME send [--timeout D] MSG
       procwire mq NAME recv [--count N] [--timeout D]
       procwire mq NAME create --capacity SIZE [--lanes N] [--max-message SIZE] [--mode MODE]
       procwire mq NAME stat
       procwire mq NAME rm`

func init() {
	register(command{
		name:    "mq",
		summary: "send to, receive from, create or remove a shared-memory message queue",
		run:     runMQ,
	})
}

func runMQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("mq", mqUsage, stderr)
	timeout := fs.Duration("timeout", 0, "send/recv: give up after `D` (0: wait forever)")
	count := fs.Int("count", 1, "recv: number of messages to receive, one per line")
	capacity := fs.String("capacity", "", "create: size of each lane's ring in bytes (K, M, G suffixes), rounded up to a power of two")
	lanes := fs.Int("lanes", 0, "create: producers with a lane of their own; the others share one more (0: the default, "+strconv.Itoa(mq.DefaultLanes)+")")
	maxMsg := fs.String("max-message", "", "create: largest message (default: a quarter of the ring)")
	mode := fs.String("mode", "0600", "create: permission of the segment, in octal")
	if len(args) > 0 && mqIsHelp(args[0]) {
		fs.Usage()
		return flag.ErrHelp
	}
	if len(args) < 2 {
		fs.Usage()
		return usageErr("need a queue NAME and an action")
	}
	name, action := args[0], args[1]
	pos, err := mqParseArgs(fs, args[2:])
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	wantArgs := func(n int) error {
		if len(pos) != n {
			return usageErr("%s takes %d argument(s), got %d", action, n, len(pos))
		}
		return nil
	}
	switch action {
	case "send":
		if err := wantArgs(1); err != nil {
			return err
		}
		q, err := mq.Open(name, nil)
		if err != nil {
			return err
		}
		defer q.Close()
		return q.Send(ctx, []byte(pos[0]))
	case "recv":
		if err := wantArgs(0); err != nil {
			return err
		}
		if *count < 1 {
			return usageErr("--count must be at least 1")
		}
		return mqRecv(ctx, name, *count, stdout)
	case "create":
		if err := wantArgs(0); err != nil {
			return err
		}
		if *capacity == "" {
			return usageErr("create needs --capacity")
		}
		c, err := mqParseSize(*capacity)
		if err != nil {
			return usageErr("--capacity: %v", err)
		}
		if *lanes < 0 || *lanes > mq.MaxLanes {
			return usageErr("--lanes: %d out of range (0..%d)", *lanes, mq.MaxLanes)
		}
		o := &mq.Options{Lanes: *lanes}
		if *maxMsg != "" {
			if o.MaxMessage, err = mqParseSize(*maxMsg); err != nil {
				return usageErr("--max-message: %v", err)
			}
		}
		m, err := strconv.ParseUint(*mode, 8, 32)
		if err != nil || m > 0o777 {
			return usageErr("--mode: %q is not an octal permission", *mode)
		}
		o.Mode = 0o600
		if m != 0 {
			o.Mode = os.FileMode(m)
		}
		q, err := mq.Create(name, c, o)
		if err != nil {
			return err
		}
		s := q.Stats()
		fmt.Fprintf(stdout, "%s: %d-byte ring, messages up to %d bytes, %d lanes + 1 shared\n", name, s.Capacity, q.MaxMessage(), s.Lanes)
		return q.Close()
	case "stat":
		if err := wantArgs(0); err != nil {
			return err
		}
		q, err := mq.Open(name, nil)
		if err != nil {
			return err
		}
		defer q.Close()
		s := q.Stats()
		fmt.Fprintf(stdout, "capacity %d\nlanes %d\nused %d\nmax-message %d\ntakeovers %d\n", s.Capacity, s.Lanes, s.Used, q.MaxMessage(), s.Takeovers)
		return nil
	case "rm":
		if err := wantArgs(0); err != nil {
			return err
		}
		return mq.Remove(name)
	}
	return usageErr("unknown action %q (want send, recv, create, stat or rm)", action)
}

// mqRecv becomes the queue's consumer and prints count messages, one per
// line. The queue's own capacity is used, so recv works on any queue.
func mqRecv(ctx context.Context, name string, count int, stdout io.Writer) error {
	p, err := mq.Open(name, nil)
	if err != nil {
		return err
	}
	capacity := p.Stats().Capacity
	p.Close()
	q, err := mq.Create(name, capacity, nil)
	if err != nil {
		return err
	}
	defer q.Close()
	for range count {
		msg, err := q.Receive(ctx)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "%s\n", msg); err != nil {
			return err
		}
	}
	return nil
}

func mqIsHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// mqParseArgs parses flags that may come before, between or after
// the positional arguments, and returns the positional ones.
func mqParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usageErr("%v", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// mqParseSize reads a byte count with an optional K, M or G (binary) suffix.
func mqParseSize(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := 1
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || int64(n) > (1<<31)/int64(mult) {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return n * mult, nil
}
