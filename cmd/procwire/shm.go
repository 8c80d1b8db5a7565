package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/procwire/procwire/shm"
)

func init() {
	register(command{
		name:    "shm",
		summary: "list or remove shared-memory segments (ls | rm NAME...)",
		run:     runShm,
	})
}

func runShm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("shm", "ls | rm NAME...", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return usageErr("missing subcommand: ls or rm")
	}
	switch rest[0] {
	case "ls":
		if len(rest) > 1 {
			return usageErr("ls takes no arguments")
		}
		infos, err := shm.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tSIZE\tHELD\tCREATOR\tCREATED")
		for _, in := range infos {
			if in.Err != nil {
				fmt.Fprintf(tw, "%s\t?\t\t\t\t\t%v\n", in.Name, in.Err)
				continue
			}
			// SIZE is what the segment maps; HELD what it costs in memory,
			// less for a sparse segment (an mq queue's unused lanes).
			fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\t%d\t%s\n", in.Name, in.Kind, in.Version, in.Size, in.Held, in.CreatorPID, in.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	case "rm":
		if len(rest) < 2 {
			return usageErr("rm needs at least one segment name")
		}
		for _, name := range rest[1:] {
			if err := shm.Remove(name); err != nil {
				return err
			}
		}
		return nil
	default:
		return usageErr("unknown subcommand %q: want ls or rm", rest[0])
	}
}
