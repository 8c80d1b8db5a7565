package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/procwire/procwire/shm/dict"
)

const dictUsage = `[-size BYTES] NAME COMMAND [ARGS]

Commands:
  get KEY                      print the value (and its flags after a tab, if not 0)
  set [-ttl D] [-flags N] [-type string|number|bool] KEY VALUE
  incr [-init N] [-ttl D] KEY [DELTA]   print the new value (DELTA defaults to 1)
  del KEY
  keys [-max N]                print live keys, most recently written first (0 = all)
  ttl KEY                      print the time left (0s = never expires)
  stats                        print capacity, free space and counters
  check                        verify the whole structure

The dictionary must exist unless -size is given, which creates it with
that many bytes of shared memory if it does not.
`

func init() {
	register(command{
		name:    "dict",
		summary: "read and write a shared dictionary (ngx.shared.DICT)",
		run:     runDict,
	})
}

func runDict(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dict", dictUsage, stderr)
	size := fs.Int("size", 0, "create the dictionary with this capacity in bytes if it does not exist")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usageErr("need NAME and COMMAND")
	}
	name, verb, rest := fs.Arg(0), fs.Arg(1), fs.Args()[2:]
	var d *dict.Dict
	var err error
	if *size > 0 {
		d, err = dict.Open(name, *size, nil)
	} else {
		d, err = dict.Attach(name, nil)
	}
	if err != nil {
		return err
	}
	defer d.Close()
	switch verb {
	case "get":
		return dictGet(d, rest, stdout, stderr)
	case "set":
		return dictSet(d, rest, stdout, stderr)
	case "incr":
		return dictIncr(d, rest, stdout, stderr)
	case "del":
		if len(rest) != 1 {
			return usageErr("del needs KEY")
		}
		return d.Delete(rest[0])
	case "keys":
		return dictKeys(d, rest, stdout, stderr)
	case "ttl":
		if len(rest) != 1 {
			return usageErr("ttl needs KEY")
		}
		ttl, err := d.TTL(rest[0])
		if err != nil {
			return fmt.Errorf("%s: %w", rest[0], err)
		}
		fmt.Fprintln(stdout, ttl)
		return nil
	case "stats":
		st, err := d.Stats()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "capacity %d\nshards %d\nheap %d\nfree %d\nitems %d\nevictions %d\nrecoveries %d\nresets %d\ndropped %d\ndead-claims %d\n",
			st.Capacity, st.Shards, st.Heap, st.Free, st.Items, st.Evictions, st.Recoveries, st.Resets, st.Dropped, st.DeadClaims)
		return nil
	case "check":
		if err := d.Check(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "ok")
		return nil
	}
	return usageErr("unknown dict command %q", verb)
}

func dictGet(d *dict.Dict, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usageErr("get needs KEY")
	}
	b, _, flags, err := d.GetBytes(args[0], nil)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if flags != 0 {
		b = fmt.Appendf(b, "\t%d", flags)
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

func dictSet(d *dict.Dict, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dict set", dictUsage, stderr)
	ttl := fs.Duration("ttl", 0, "time to live (0 = never expires)")
	flags := fs.Uint("flags", 0, "user flags (uint32)")
	typ := fs.String("type", "string", "value type: string, number or bool")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErr("set needs KEY VALUE")
	}
	if *flags > 1<<32-1 {
		return usageErr("-flags %d does not fit in 32 bits", *flags)
	}
	var v dict.Value
	switch raw := fs.Arg(1); *typ {
	case "string":
		v = dict.String(raw)
	case "number":
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return usageErr("value %q is not a number", raw)
		}
		v = dict.Number(f)
	case "bool":
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return usageErr("value %q is not a boolean", raw)
		}
		v = dict.Bool(b)
	default:
		return usageErr("unknown -type %q (want string, number or bool)", *typ)
	}
	forcible, err := d.Set(fs.Arg(0), v, *ttl, uint32(*flags))
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	if forcible {
		fmt.Fprintln(stderr, "procwire dict: evicted other items to make room")
	}
	return nil
}

func dictIncr(d *dict.Dict, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dict incr", dictUsage, stderr)
	initS := fs.String("init", "", "create a missing key with this value before adding")
	ttl := fs.Duration("ttl", 0, "TTL of a key created by -init")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return usageErr("incr needs KEY [DELTA]")
	}
	delta := 1.0
	if fs.NArg() == 2 {
		var err error
		if delta, err = strconv.ParseFloat(fs.Arg(1), 64); err != nil {
			return usageErr("delta %q is not a number", fs.Arg(1))
		}
	}
	var init *float64
	if *initS != "" {
		f, err := strconv.ParseFloat(*initS, 64)
		if err != nil {
			return usageErr("-init %q is not a number", *initS)
		}
		init = &f
	}
	n, _, err := d.Incr(fs.Arg(0), delta, init, *ttl)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintln(stdout, dict.Number(n))
	return nil
}

func dictKeys(d *dict.Dict, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dict keys", dictUsage, stderr)
	max := fs.Int("max", 1024, "at most this many keys (0 = all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	keys, err := d.Keys(*max)
	if err != nil {
		return err
	}
	for _, k := range keys {
		fmt.Fprintln(stdout, k)
	}
	return nil
}
