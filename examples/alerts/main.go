// Command alerts is ngx_lua_ipc's README example done with procwire: an
// HTTP server with N worker processes that alert each other.
//
//	GET /send/{pid}/{data}   sends a "hello" alert with data to that worker
//	GET /broadcast/{data}    sends it to every worker, this one included
//	GET /pids                lists the workers' pids
//
// A worker that gets "hello" logs "sender X says Y" and replies "hello to
// you too. you said Y"; the "reply" handler logs what came back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"

	"github.com/procwire/procwire/alert"
	"github.com/procwire/procwire/worker"
)

func main() {
	// worker.Run handles SIGTERM, SIGINT and SIGHUP itself.
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "alerts:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("alerts", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "HTTP listen address")
	workers := fs.Int("workers", 4, "worker processes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The workers of one master form an alert group by themselves; the
	// handlers are installed before a worker becomes visible to the others.
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	cfg := &worker.Config{
		Workers:   *workers,
		Listeners: []worker.ListenSpec{{Network: "tcp", Address: *addr}},
		Alerts: &alert.Config{
			Logger: log,
			Handlers: map[string]alert.HandlerFunc{
				"hello": func(ctx context.Context, a *alert.Alert) {
					log.Info(fmt.Sprintf("sender %d says %s", a.Sender, a.Data), "worker", os.Getpid())
					if err := a.Reply(ctx, "reply", []byte("hello to you too. you said "+string(a.Data))); err != nil {
						log.Error("reply failed", "worker", os.Getpid(), "err", err)
					}
				},
				"reply": func(ctx context.Context, a *alert.Alert) {
					log.Info(fmt.Sprintf("reply from %d: %s", a.Sender, a.Data), "worker", os.Getpid())
				},
			},
		},
	}
	return worker.Run(ctx, cfg, serve)
}

// serve is one worker: it serves HTTP and sends alerts to the others.
func serve(ctx context.Context, w *worker.Worker) error {
	g := w.Alerts()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /send/{pid}/{data}", func(rw http.ResponseWriter, r *http.Request) {
		pid, err := strconv.Atoi(r.PathValue("pid"))
		if err != nil {
			http.Error(rw, "bad pid: "+r.PathValue("pid"), http.StatusBadRequest)
			return
		}
		if err := g.Send(r.Context(), pid, "hello", []byte(r.PathValue("data"))); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, alert.ErrNoMember) {
				status = http.StatusNotFound
			}
			http.Error(rw, err.Error(), status)
			return
		}
		fmt.Fprintf(rw, "worker %d sent hello to %d\n", w.PID(), pid)
	})
	mux.HandleFunc("GET /broadcast/{data}", func(rw http.ResponseWriter, r *http.Request) {
		if err := g.Broadcast(r.Context(), "hello", []byte(r.PathValue("data"))); err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(rw, "worker %d broadcast hello\n", w.PID())
	})
	mux.HandleFunc("GET /pids", func(rw http.ResponseWriter, r *http.Request) {
		for _, m := range g.Members() {
			fmt.Fprintln(rw, m.PID)
		}
	})

	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(w.Listener(0)); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
