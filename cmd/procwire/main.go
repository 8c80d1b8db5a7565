package main

// Each verb lives in its own file and registers itself in init with
// register, so that verbs can be added without touching this file.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one verb of the procwire binary.
type command struct {
	name    string // the verb, as typed
	summary string // one line for the top-level help
	// run executes the verb with the arguments after it. Output goes to
	// stdout/stderr; a returned error is printed and makes the exit status 1.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("procwire: verb registered twice: " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks errors caused by wrong arguments; they exit with status 2.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// `procwire -t -c FILE` is spelled like nginx's, so it is a flag, not a verb.
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" && args[0] != "-help" {
		args = append([]string{"check"}, args...)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		topUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "procwire: unknown command %q\n\n", args[0])
		topUsage(stderr)
		return 2
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "procwire %s: %v\n", c.name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "procwire %s: %v\n", c.name, err)
		return 1
	}
}

func topUsage(w io.Writer) {
	fmt.Fprintln(w, "procwire: fast interprocess communication for the processes of one host")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	fmt.Fprintln(w, "  procwire <command> [flags] [args]")
	fmt.Fprintln(w, "  procwire -t -c FILE        check a configuration file and exit")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		if n != "check" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'procwire <command> --help' for a command's flags.")
}

// newFlags returns a FlagSet that reports errors instead of exiting, with
// a usage line naming the verb.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("procwire "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: procwire %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}
