// Command mq-cluster is node_ipc's cluster example done with procwire: the
// master creates a message queue in shared memory and prints what it
// receives, three workers publish "msg from worker[pid]" every two
// seconds, and a worker that dies is started again.
//
//	go run ./examples/mq-cluster
//	go run ./examples/mq-cluster -interval 200ms -workers 5
//
// Stop it with Ctrl-C or SIGTERM; the master then stops the workers and
// removes the queue.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/procwire/procwire/shm/mq"
	"github.com/procwire/procwire/worker"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mq-cluster:", err)
		os.Exit(1)
	}
}

// run is main with its arguments and output made explicit for the test.
// The master and the workers run it with the same arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mq-cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	interval := fs.Duration("interval", 2*time.Second, "time between two messages of a worker")
	workers := fs.Int("workers", 3, "number of worker processes")
	queue := fs.String("queue", fmt.Sprintf("mq-cluster-%d", os.Getuid()), "name of the queue")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval <= 0 {
		return fmt.Errorf("-interval must be positive, was %v", *interval)
	}
	cfg := &worker.Config{
		Workers: *workers,
		Logger:  slog.New(slog.NewTextHandler(stderr, nil)),
		Backoff: worker.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second},
	}
	if worker.IsWorker() {
		return worker.Run(ctx, cfg, func(ctx context.Context, w *worker.Worker) error {
			return publish(ctx, *queue, *interval, w.PID())
		})
	}

	// The master: make the queue before the first worker opens it.
	q, err := mq.Create(*queue, 1<<20, nil)
	if err != nil {
		return err
	}
	defer mq.Remove(*queue)
	defer q.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	show := func(msg []byte) { fmt.Fprintf(stdout, "master received: %s\n", msg) }
	listened := make(chan error, 1)
	go func() {
		err := q.Listen(ctx, show)
		cancel() // if the queue failed, stop the workers too
		listened <- err
	}()
	err = worker.Run(ctx, cfg, nil)
	cancel()
	if lerr := <-listened; !errors.Is(lerr, context.Canceled) {
		err = errors.Join(err, lerr)
	}
	// The workers are gone; print what they sent last before the queue is
	// removed.
	drain, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer stop()
	for {
		if _, derr := q.ReceiveBatch(drain, show); derr != nil {
			break
		}
	}
	return err
}

// publish sends "msg from worker[pid]" every interval until ctx ends.
func publish(ctx context.Context, queue string, interval time.Duration, pid int) error {
	q, err := mq.Open(queue, nil)
	if err != nil {
		return err
	}
	defer q.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := q.Send(ctx, fmt.Appendf(nil, "msg from worker[%d]", pid)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
