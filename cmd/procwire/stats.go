package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/procwire/procwire/jsonipc"
)

func init() {
	register(command{
		name:    "stats",
		summary: "print the JSON IPC server's statistics",
		run:     runStats,
	})
}

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stats", "[--socket PATH] [--json]", stderr)
	socket := fs.String("socket", defaultSocket(), "server socket `path` (env PROCWIRE_SOCKET)")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this `duration`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErr("unexpected arguments: %q", fs.Args())
	}
	raw, err := callServer(ctx, *socket, *timeout, "/ipcserver/stats", nil)
	if err != nil {
		return err
	}
	var st jsonipc.Stats
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("the server sent unexpected stats: %w", err)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		_, err := fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("socket", *socket)
	row("uptime", (time.Duration(st.Duration) * time.Millisecond).String())
	row("connections", st.Connections)
	row("max connections", st.MaxConnections)
	row("clients opened", st.ClientOpen)
	row("clients closed", st.ClientClose)
	row("handlers", st.Handlers)
	row("requests", st.Requests)
	row("in flight", st.InFlight)
	row("slow responses", st.SlowResponses)
	row("backpressure", st.StreamBackpressure)
	row("bytes in", st.BytesIn)
	row("bytes out", st.BytesOut)
	codes := make([]string, 0, len(st.Errors))
	for c := range st.Errors {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		row("errors "+c, st.Errors[c])
	}
	return tw.Flush()
}
