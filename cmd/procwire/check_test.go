package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(good, []byte("ipc {\n    listen p.sock;\n    socket_mode 0660;\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("ipc {\n    socket_mode 999;\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		out, errs string // substrings expected on stdout and stderr
	}{
		{"nginx style", []string{"-t", "-c", good}, 0,
			"procwire: the configuration file " + good + " syntax is ok\nprocwire: configuration file " + good + " test is successful\n", ""},
		{"verb", []string{"check", "-c", good}, 0, "test is successful", ""},
		{"embedded default", []string{"-t"}, 0, "configuration file (embedded default) test is successful", ""},
		{"bad value", []string{"-t", "-c", bad}, 1, "", bad + `:2:5: "socket_mode" must be an octal mode ≤ 0777, got "999"`},
		{"missing file", []string{"-t", "-c", filepath.Join(dir, "absent.conf")}, 1, "", "no such file or directory"},
		{"extra argument", []string{"check", "x"}, 2, "", `unexpected argument "x"`},
		{"help", []string{"check", "--help"}, 0, "", "Usage: procwire check [-t] [-c FILE]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tt.out)
			}
			if !strings.Contains(stderr.String(), tt.errs) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.errs)
			}
			if tt.code != 0 && stdout.Len() != 0 {
				t.Errorf("failure printed on stdout: %q", stdout.String())
			}
		})
	}
}
