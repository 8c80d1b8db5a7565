//go:build linux

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchVerb runs the one part of `procwire bench` that needs no
// helper process (the test binary is not procwire, so it cannot re-run
// itself as one) and checks the flags' errors.
func TestBenchVerb(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--only", "sem", "--duration", "50ms"}, 0, "sem acquire+release pair"},
		{[]string{"bench", "--only", "sem,bogus"}, 2, `unknown --only part "bogus"`},
		{[]string{"bench", "--sizes", "1"}, 2, `bad --sizes entry "1"`},
		{[]string{"bench", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"bench", "helper", "bogus"}, 1, `unknown role "bogus"`},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, out.String()+errb.String(), tc.code, tc.want)
		}
	}
}
