package main

import (
	"context"
	"fmt"
	"io"

	"github.com/procwire/procwire/conf"
)

func init() {
	register(command{
		name:    "check",
		summary: "check a configuration file",
		run:     runCheck,
	})
}

// runCheck is `procwire check [-t] [-c FILE]`, which `procwire -t -c FILE`
// turns into, as nginx -t checks nginx's configuration.
func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "[-t] [-c FILE]", stderr)
	fs.Bool("t", false, "test the configuration and exit (accepted as in nginx -t; checking is all this command does)")
	file := fs.String("c", "", "configuration `file` (default: the embedded default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	cfg := conf.Default()
	if *file != "" {
		var err error
		if cfg, err = conf.Load(*file); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "procwire: the configuration file %s syntax is ok\n", cfg.Source)
	fmt.Fprintf(stdout, "procwire: configuration file %s test is successful\n", cfg.Source)
	return nil
}
