package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/procwire/procwire/conf"
	"github.com/procwire/procwire/jsonipc"
)

func init() {
	register(command{
		name:    "call",
		summary: "send one request to the JSON IPC server and print the response data",
		run:     runCall,
	})
}

// defaultSocket is where `procwire serve` listens unless told otherwise:
// $PROCWIRE_SOCKET, else $XDG_RUNTIME_DIR/procwire/procwire.sock, else
// /tmp/procwire-<uid>/procwire.sock (conf.DefaultSocketPath). serve and the
// client verbs share it so that they find each other with no flags.
func defaultSocket() string {
	if p := os.Getenv("PROCWIRE_SOCKET"); p != "" {
		return p
	}
	return conf.DefaultSocketPath()
}

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("call", "[--socket PATH] [--timeout D] [--compact] URI [JSON]", stderr)
	socket := fs.String("socket", defaultSocket(), "server socket `path` (env PROCWIRE_SOCKET)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this `duration`")
	compact := fs.Bool("compact", false, "print the response on one line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return usageErr("want a URI and optionally one JSON argument, got %d arguments", fs.NArg())
	}
	uri := fs.Arg(0)
	var data json.RawMessage
	if fs.NArg() == 2 {
		data = json.RawMessage(fs.Arg(1))
		if !json.Valid(data) {
			var v any
			err := json.Unmarshal(data, &v)
			return usageErr("the JSON argument is not valid JSON: %v", err)
		}
		var buf bytes.Buffer
		json.Compact(&buf, data) // the wire needs one line
		data = buf.Bytes()
	}
	out, err := callServer(ctx, *socket, *timeout, uri, data)
	if err != nil {
		return err
	}
	if out == nil {
		return nil // the handler answered without data
	}
	var buf bytes.Buffer
	if *compact {
		buf.Write(out)
	} else if err := json.Indent(&buf, out, "", "  "); err != nil {
		return fmt.Errorf("the server sent invalid JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err = stdout.Write(buf.Bytes())
	return err
}

// callServer makes one call and turns failures into messages a person
// can act on.
func callServer(ctx context.Context, socket string, timeout time.Duration, uri string, data json.RawMessage) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := jsonipc.Dial(ctx, socket, &jsonipc.ClientConfig{
		RequestTimeout: timeout,
		UserAgent:      "procwire-cli",
		CodeToErr:      true,
	})
	if err != nil {
		return nil, dialError(socket, err)
	}
	defer c.Close()
	out, err := c.CallRaw(ctx, uri, data)
	var re *jsonipc.RemoteError
	switch {
	case errors.As(err, &re):
		return nil, fmt.Errorf("server answered %s: %s", re.Code, re.Message)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jsonipc.ErrTimeout):
		return nil, fmt.Errorf("no answer from %s for %s within %v", socket, uri, timeout)
	case err != nil:
		return nil, err
	}
	return out, nil
}

func dialError(socket string, err error) error {
	hint := " (is `procwire serve` running?)"
	var why string
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "connection refused"
	case errors.Is(err, syscall.ENOENT):
		why = "no such socket"
	case errors.Is(err, syscall.EACCES):
		why, hint = "permission denied", " (check the socket's mode and owner)"
	default:
		return fmt.Errorf("no procwire server at %s: %w", socket, err)
	}
	return fmt.Errorf("no procwire server at %s: %s%s", socket, why, hint)
}
