package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/procwire/procwire/jsonipc"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func itoa(i int) string { return strconv.Itoa(i) }

func TestStats(t *testing.T) {
	path := startIPC(t)
	runCLI("call", "--socket", path, "/nothing") // one no_handler_found

	code, out, errs := runCLI("stats", "--socket", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{`socket\s+` + regexp.QuoteMeta(path), `handlers\s+4`, `errors no_handler_found\s+1`, `connections\s+[12]`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Errorf("stats output lacks %s:\n%s", want, out)
		}
	}

	code, out, errs = runCLI("stats", "--socket", path, "--json")
	var st jsonipc.Stats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Handlers != 4 || st.Errors["no_handler_found"] != 1 {
		t.Fatalf("--json: exit %d, %q, %s", code, out, errs)
	}
	if code, _, errs := runCLI("stats", "--socket", path, "extra"); code != 2 || !strings.Contains(errs, "unexpected arguments") {
		t.Errorf("extra argument: exit %d, %s", code, errs)
	}
}
