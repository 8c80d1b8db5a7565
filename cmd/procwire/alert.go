package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/procwire/procwire/alert"
	"github.com/procwire/procwire/alert/bench"
)

func init() {
	register(command{
		name:    "alert",
		summary: "send, broadcast and watch named alerts of a process group",
		run:     runAlert,
	})
}

const alertUsage = `send|broadcast|listen|members|bench --group G [flags]

  send      --group G --pid N --name NAME [--data TEXT]   send one alert (data from stdin if --data is absent and stdin is not a terminal)
  broadcast --group G --name NAME [--data TEXT]           send to every member, this one included
  listen    --group G [--count N]                         join and print every alert: "PID NAME DATA"
  members   --group G                                     list the members without joining
  bench     --group G [--members N] [--size BYTES] [--duration D] [--batch N] [--reuse] [--rtt] [--spin D]
            all-to-all alerts/s between N member processes, or (--rtt) Send+Reply round trip`

func runAlert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "Usage: procwire alert %s\n", alertUsage)
		return usageErr("missing subcommand")
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "-help" || sub == "help" {
		fmt.Fprintf(stdout, "Usage: procwire alert %s\n", alertUsage)
		return flag.ErrHelp
	}
	fs := newFlags("alert "+sub, "--group G [flags]", stderr)
	group := fs.String("group", "", "alert group name (required)")
	switch sub {
	case "send":
		pid := fs.Int("pid", 0, "destination member's pid (required)")
		name := fs.String("name", "", "alert name (required)")
		data := fs.String("data", "", "alert data (default: read stdin when not a terminal)")
		if err := parseAlertFlags(fs, args, group); err != nil {
			return err
		}
		if *pid <= 0 || *name == "" {
			return usageErr("send needs --pid and --name")
		}
		payload, err := alertData(fs, *data)
		if err != nil {
			return err
		}
		return withGroup(ctx, *group, func(g *alert.Group) error { return g.Send(ctx, *pid, *name, payload) })
	case "broadcast":
		name := fs.String("name", "", "alert name (required)")
		data := fs.String("data", "", "alert data (default: read stdin when not a terminal)")
		if err := parseAlertFlags(fs, args, group); err != nil {
			return err
		}
		if *name == "" {
			return usageErr("broadcast needs --name")
		}
		payload, err := alertData(fs, *data)
		if err != nil {
			return err
		}
		return withGroup(ctx, *group, func(g *alert.Group) error { return g.Broadcast(ctx, *name, payload) })
	case "listen":
		count := fs.Int("count", 0, "exit after this many alerts (0: until interrupted)")
		if err := parseAlertFlags(fs, args, group); err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		seen := 0
		print := func(_ context.Context, a *alert.Alert) {
			fmt.Fprintf(stdout, "%d %s %s\n", a.Sender, a.Name, strconv.Quote(string(a.Data)))
			seen++
			if *count > 0 && seen >= *count {
				cancel()
			}
		}
		g, err := alert.Join(ctx, *group, &alert.Config{Default: print})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "listening as PID %d in group %s\n", g.PID(), *group)
		<-ctx.Done()
		return g.Close()
	case "members":
		if err := parseAlertFlags(fs, args, group); err != nil {
			return err
		}
		ms, err := alert.ListMembers(ctx, *group)
		if err != nil {
			return err
		}
		for _, m := range ms {
			fmt.Fprintf(stdout, "%d\tjoined %s\n", m.PID, m.Joined.Format(time.RFC3339Nano))
		}
		return nil
	case "bench":
		members := fs.Int("members", 5, "member processes")
		size := fs.Int("size", 10, "alert data bytes")
		duration := fs.Duration("duration", 3*time.Second, "measured time (after a 100ms warm-up)")
		rtt := fs.Bool("rtt", false, "measure Send+Reply round trip between 2 members instead")
		spin := fs.Duration("spin", 0, "receivers' spin before sleeping (0: default, negative: off)")
		batch := fs.Int("batch", 0, "alerts per call to each destination: 1 means one Send per alert, N>1 one SendMany of N (0: 256, fewer for large alerts: at most half an inbox lane per call)")
		reuse := fs.Bool("reuse", false, "members' handlers get one reused *Alert (alert.Config.ReuseAlerts)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *group == "" {
			*group = fmt.Sprintf("bench-%d", os.Getpid())
		}
		cfg := bench.Config{Group: *group, Members: *members, Size: *size, Duration: *duration, Spin: *spin, Batch: *batch, ReuseAlerts: *reuse}
		spawn := bench.SelfSpawn("alert", "bench-member")
		if *rtt {
			l, err := bench.RoundTrip(ctx, cfg, spawn)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "round trip, %d-byte alerts, spin %v: p50 %v  p99 %v  max %v  (%d samples over %v)\n",
				*size, *spin, l.P50, l.P99, l.Max, l.Samples, *duration)
			return nil
		}
		r, err := bench.AllToAll(ctx, cfg, spawn)
		if err != nil {
			return err
		}
		how := "one Send per alert"
		if b := cmp.Or(*batch, bench.BatchFor(*size)); b > 1 {
			how = fmt.Sprintf("SendMany of %d per destination", b)
		}
		if *reuse {
			how += ", reused Alerts"
		}
		fmt.Fprintf(stdout, "all-to-all, %d members, %d-byte alerts, %s: %.0f alerts/s delivered (%d in %v, %v of CPU per alert)\n",
			r.Members, r.Size, how, r.Rate(), r.Delivered, r.Elapsed, r.CPUPerAlert())
		return nil
	case "bench-member": // started by bench
		return bench.MemberFromEnv(ctx)
	default:
		return usageErr("unknown subcommand %q (want send, broadcast, listen, members or bench)", sub)
	}
}

func parseAlertFlags(fs *flag.FlagSet, args []string, group *string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *group == "" {
		return usageErr("--group is required")
	}
	return nil
}

// alertData is --data if given, else stdin when it is not a terminal.
func alertData(fs *flag.FlagSet, data string) ([]byte, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "data" })
	if given {
		return []byte(data), nil
	}
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice == 0 {
		return io.ReadAll(io.LimitReader(os.Stdin, alert.MaxData))
	}
	return nil, nil
}

func withGroup(ctx context.Context, group string, fn func(g *alert.Group) error) error {
	g, err := alert.Join(ctx, group, nil)
	if err != nil {
		return err
	}
	err = fn(g)
	if cerr := g.Close(); err == nil {
		err = cerr
	}
	return err
}
