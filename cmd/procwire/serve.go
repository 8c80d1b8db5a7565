package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/procwire/procwire/conf"
	"github.com/procwire/procwire/jsonipc"
)

func init() {
	register(command{
		name:    "serve",
		summary: "run the daemon (embedded default configuration unless -c is given)",
		run:     runServe,
	})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "[-c FILE] [--socket PATH] [--log-level LEVEL]", stderr)
	file := fs.String("c", "", "configuration `file` (default: the embedded default)")
	socket := fs.String("socket", "", "listen on this Unix socket `path`, overriding the configuration")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageErr("bad --log-level %q", *level)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	cfg := conf.Default()
	if *file != "" {
		var err error
		if cfg, err = conf.Load(*file); err != nil {
			return err
		}
	}
	path := cfg.IPC.Listen
	if *socket != "" {
		path = *socket
	}
	if path == "" {
		path = defaultSocket()
	}
	// The default path lives in a per-user directory that may not exist yet;
	// 0700 keeps other users out even if the socket mode were loosened.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating socket directory: %w", err)
	}

	srv := jsonipc.NewServer(&jsonipc.Config{
		SocketMode:     cfg.IPC.SocketMode,
		AllowUID:       cfg.IPC.AllowUID,
		AllowGID:       cfg.IPC.AllowGID,
		ExitTimeout:    cfg.IPC.ExitTimeout,
		SlowThreshold:  cfg.IPC.SlowThreshold,
		StatsInterval:  cfg.IPC.StatsInterval,
		MaxMessageSize: cfg.IPC.MaxMessageSize,
		MaxConnections: cfg.IPC.MaxConnections,
		IdleTimeout:    cfg.IPC.IdleTimeout,
		SendTimeout:    cmp.Or(cfg.IPC.SendTimeout, -1), // off in the file means never
		Logger:         log,
	})
	if err := srv.Listen(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "procwire: serving JSON IPC on %s (config: %s)\n", srv.Addr(), cfg.Source)
	fmt.Fprintf(stdout, "try, in another terminal:\n  go run ./cmd/procwire call --socket %s /ipcserver/test/echo '{\"hello\":\"world\"}'\n", srv.Addr())
	fmt.Fprintln(stdout, "stop with Ctrl-C (SIGINT) or SIGTERM")
	return srv.Serve(ctx)
}
