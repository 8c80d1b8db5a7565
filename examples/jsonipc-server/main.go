// Command jsonipc-server is pixl-ipc's README server in Go: it serves
// /myapi/test on a Unix socket until SIGINT or SIGTERM, then shuts down
// gracefully.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/procwire/procwire/jsonipc"
)

func main() {
	socket := flag.String("socket", "/var/tmp/my_ipc_server.sock", "Unix socket `path` to listen on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv := jsonipc.NewServer(&jsonipc.Config{SocketMode: 0o600})
	// pixl-ipc: addURIHandler(/^\/myapi\/test/, 'Test', (req, cb) => cb({...})).
	// A string pattern is anchored at both ends, so ".*" keeps it a prefix match.
	if err := srv.Handle("/myapi/test.*", jsonipc.HandlerFunc(func(ctx context.Context, req *jsonipc.Request) (any, error) {
		slog.Info("request", "uri", req.URI, "data", string(req.Data), "peer", req.Peer.String())
		return map[string]string{"hello": "thanks for your message"}, nil
	})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s; try: procwire call --socket %s /myapi/test '{\"welcome\":42}'\n", *socket, *socket)
	if err := srv.ListenAndServe(ctx, *socket); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("stopped")
}
