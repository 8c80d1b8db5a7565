package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/procwire/procwire/worker"
)

// A web server of four worker processes sharing one port. The same main
// runs as the master and, re-executed by it, as each worker. SIGHUP to the
// master replaces the workers one by one without refusing a connection;
// SIGTERM or Ctrl-C stops them all.
func ExampleRun() {
	cfg := &worker.Config{
		Workers:   4,
		Listeners: []worker.ListenSpec{{Network: "tcp", Address: "127.0.0.1:8080"}},
	}
	err := worker.Run(context.Background(), cfg, func(ctx context.Context, w *worker.Worker) error {
		srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(rw, "hello from worker %d (pid %d, generation %d)\n", w.Index(), w.PID(), w.Generation())
		})}
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			<-ctx.Done() // SIGTERM from the master, or the master died
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(shutdown) // finish the requests in flight
		}()
		if err := srv.Serve(w.Listener(0)); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		<-drained
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A program can do master-only set-up, such as creating a queue the
// workers will open, before it calls Run.
func ExampleIsWorker() {
	if !worker.IsWorker() {
		fmt.Println("master: set up shared resources, then Run starts the workers")
	}
	// Output: master: set up shared resources, then Run starts the workers
}
