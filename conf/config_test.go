package conf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	cfg := Default()
	want := defaults()
	want.Source = EmbeddedSource
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Default() = %+v\nwant %+v (default.conf and defaults() disagree)", cfg, want)
	}
	if cfg.IPC.SocketMode != 0o600 || cfg.IPC.Listen != "" {
		t.Errorf("default socket: mode %v, listen %q", cfg.IPC.SocketMode, cfg.IPC.Listen)
	}
	// Each call is a fresh copy.
	cfg.IPC.AllowUID = append(cfg.IPC.AllowUID, 1)
	if len(Default().IPC.AllowUID) != 0 {
		t.Error("Default() shares state between calls")
	}
	// Every ipc directive is documented in default.conf, set or commented out.
	for name := range ipcBlock.rules {
		if !strings.Contains(defaultConf, "    "+name+" ") && !strings.Contains(defaultConf, "#"+name+" ") {
			t.Errorf("default.conf does not mention %q", name)
		}
	}
}

func TestLoadEmpty(t *testing.T) {
	cfg, err := LoadBytes("empty.conf", []byte("# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Source = "empty.conf"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v, want the defaults", cfg)
	}
}

func TestLoadIPC(t *testing.T) {
	src := `
ipc {
    listen /run/procwire/p.sock;
    socket_mode 0660;
    allow_uid 1000 1001;
    allow_uid 0;
    allow_gid 50;
    exit_timeout 5s;
    slow_threshold 1m30s;
    stats_interval off;
    max_message_size 8k;
    max_connections 3;
    idle_timeout 1h;
    send_timeout 90s;
}
`
	cfg, err := LoadBytes("/etc/procwire.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := IPC{
		Listen:         "/run/procwire/p.sock",
		SocketMode:     0o660,
		AllowUID:       []uint32{1000, 1001, 0},
		AllowGID:       []uint32{50},
		ExitTimeout:    5 * time.Second,
		SlowThreshold:  90 * time.Second,
		StatsInterval:  0,
		MaxMessageSize: 8 << 10,
		MaxConnections: 3,
		IdleTimeout:    time.Hour,
		SendTimeout:    90 * time.Second,
	}
	if !reflect.DeepEqual(cfg.IPC, want) {
		t.Errorf("got  %+v\nwant %+v", cfg.IPC, want)
	}
	if cfg.Source != "/etc/procwire.conf" {
		t.Errorf("Source = %q", cfg.Source)
	}
}

func TestLoadOffAndZero(t *testing.T) {
	cfg, err := LoadBytes("x.conf", []byte("ipc { slow_threshold off; stats_interval 0; idle_timeout off; send_timeout off; }"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IPC.SlowThreshold != 0 || cfg.IPC.StatsInterval != 0 || cfg.IPC.IdleTimeout != 0 || cfg.IPC.SendTimeout != 0 {
		t.Errorf("off/0 not disabled: %+v", cfg.IPC)
	}
	// What is not mentioned keeps its default.
	if cfg.IPC.ExitTimeout != 2*time.Second || cfg.IPC.MaxMessageSize != 64<<20 {
		t.Errorf("defaults lost: %+v", cfg.IPC)
	}
}

func TestListenRelative(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.conf":         "ipc { include ipc/*.conf; }",
		"ipc/listen.conf":   "listen ../run/p.sock;",
		"direct/local.conf": "ipc { listen p.sock; }",
	})
	cfg, err := Load(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Relative to the file that says it (ipc/), not the main file.
	if want := filepath.Join(dir, "run/p.sock"); cfg.IPC.Listen != want {
		t.Errorf("Listen = %q, want %q", cfg.IPC.Listen, want)
	}
	cfg, err = Load(filepath.Join(dir, "direct/local.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "direct/p.sock"); cfg.IPC.Listen != want {
		t.Errorf("Listen = %q, want %q", cfg.IPC.Listen, want)
	}

	// A relative config file name still gives an absolute socket path.
	t.Chdir(dir)
	cfg, err = Load("direct/local.conf")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "direct/p.sock"); cfg.IPC.Listen != want {
		t.Errorf("Listen = %q, want %q", cfg.IPC.Listen, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", "ipc {\n    listen x\n}", `e.conf:3:1: unexpected "}", expecting ";"`},
		{"unknown top level", "ipx { }", `e.conf:1:1: unknown directive "ipx" (did you mean "ipc"?)`},
		{"unknown far from anything", "stream { }", `e.conf:1:1: unknown directive "stream"`},
		{"unknown in block", "ipc {\n  lisen x;\n}", `e.conf:2:3: unknown directive "lisen" (did you mean "listen"?)`},
		{"unknown in block, two edits", "ipc { max_conections 1; }", `e.conf:1:7: unknown directive "max_conections" (did you mean "max_connections"?)`},
		{"unknown short name", "ipc { a 1; }", `e.conf:1:7: unknown directive "a"`},
		{"ipc directive at top level", "\n listen /x;", `e.conf:2:2: "listen" directive is not allowed at the top level; it belongs in ipc { }`},
		{"ipc inside ipc", "ipc { ipc { } }", `e.conf:1:7: "ipc" directive is not allowed in ipc { }; it belongs at the top level`},
		{"duplicate block", "ipc { }\nipc { }", `e.conf:2:1: "ipc" directive is duplicate (first at 1:1)`},
		{"duplicate directive", "ipc {\n listen a;\n listen b;\n}", `e.conf:3:2: "listen" directive is duplicate (first at 2:2)`},
		{"ipc with args", "ipc unix { }", `e.conf:1:1: "ipc" directive takes no arguments, got 1`},
		{"ipc without block", "ipc;", `e.conf:1:1: "ipc" directive needs a block: ipc { ... }`},
		{"listen with block", "ipc { listen x { } }", `e.conf:1:7: "listen" directive takes no block, expecting ";"`},
		{"listen without args", "ipc { listen; }", `e.conf:1:7: "listen" directive takes exactly 1 argument, got 0`},
		{"listen two args", "ipc { listen a b; }", `e.conf:1:7: "listen" directive takes exactly 1 argument, got 2`},
		{"listen empty", `ipc { listen ""; }`, `e.conf:1:7: "listen" must be a path, got ""`},
		{"allow_uid no args", "ipc { allow_uid; }", `e.conf:1:7: "allow_uid" directive takes at least 1 argument, got 0`},
		{"allow_uid name", "ipc { allow_uid 1000 www; }", `e.conf:1:7: "allow_uid" must be a numeric id (0 to 4294967294), got "www"`},
		{"allow_uid negative", "ipc { allow_uid -1; }", `e.conf:1:7: "allow_uid" must be a numeric id (0 to 4294967294), got "-1"`},
		{"allow_uid plus", "ipc { allow_uid +1; }", `e.conf:1:7: "allow_uid" must be a numeric id (0 to 4294967294), got "+1"`},
		{"allow_gid overflow", "ipc { allow_gid 4294967296; }", `e.conf:1:7: "allow_gid" must be a numeric id (0 to 4294967294), got "4294967296" (out of range)`},
		{"allow_gid nobody sentinel", "ipc { allow_gid 4294967295; }", `e.conf:1:7: "allow_gid" must be a numeric id (0 to 4294967294), got "4294967295"`},
		{"socket_mode not octal", "ipc { socket_mode 999; }", `e.conf:1:7: "socket_mode" must be an octal mode ≤ 0777, got "999"`},
		{"socket_mode too big", "ipc { socket_mode 1777; }", `e.conf:1:7: "socket_mode" must be an octal mode ≤ 0777, got "1777" (out of range)`},
		{"socket_mode zero", "ipc { socket_mode 0000; }", `e.conf:1:7: "socket_mode" must be an octal mode > 0, got "0000"`},
		{"exit_timeout off", "ipc { exit_timeout off; }", `e.conf:1:7: "exit_timeout" must be a time > 0 such as 500ms, 2s or 1m, got "off"`},
		{"exit_timeout zero", "ipc { exit_timeout 0s; }", `e.conf:1:7: "exit_timeout" must be a time > 0 such as 500ms, 2s or 1m, got "0s"`},
		{"slow_threshold bad", "ipc { slow_threshold 20 ms; }", `e.conf:1:7: "slow_threshold" directive takes exactly 1 argument, got 2`},
		{"slow_threshold unit", "ipc { slow_threshold 20us; }", `e.conf:1:7: "slow_threshold" must be a time such as 500ms, 2s or 1m, or off, got "20us"`},
		{"stats_interval overflow", "ipc { stats_interval 999999999999h; }", `e.conf:1:7: "stats_interval" must be a time such as 500ms, 2s or 1m, or off, got "999999999999h" (out of range)`},
		{"idle_timeout bad", "ipc { idle_timeout forever; }", `e.conf:1:7: "idle_timeout" must be a time such as 500ms, 2s or 1m, or off, got "forever"`},
		{"max_message_size bad", "ipc { max_message_size 64mb; }", `e.conf:1:7: "max_message_size" must be a size > 0 such as 8k, 10m or 1g, got "64mb"`},
		{"max_message_size zero", "ipc { max_message_size 0; }", `e.conf:1:7: "max_message_size" must be a size > 0 such as 8k, 10m or 1g, got "0"`},
		{"max_message_size overflow", "ipc { max_message_size 9999999999999g; }", `e.conf:1:7: "max_message_size" must be a size > 0 such as 8k, 10m or 1g, got "9999999999999g" (out of range)`},
		{"max_connections zero", "ipc { max_connections 0; }", `e.conf:1:7: "max_connections" must be a whole number > 0, got "0"`},
		{"max_connections text", "ipc { max_connections many; }", `e.conf:1:7: "max_connections" must be a whole number > 0, got "many"`},
		{"max_connections overflow", "ipc { max_connections 99999999999999999999; }", `e.conf:1:7: "max_connections" must be a whole number > 0, got "99999999999999999999" (out of range)`},
		{"lua block at top level", "content_by_lua_block { }", `e.conf:1:1: unknown directive "content_by_lua_block"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadBytes("e.conf", []byte(tt.src))
			if err == nil {
				t.Fatalf("LoadBytes(%q) = %+v, want error", tt.src, cfg)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("LoadBytes(%q) error\n got %s\nwant %s", tt.src, got, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Pos.File != "e.conf" || ce.Pos.Line < 1 || ce.Pos.Col < 1 {
				t.Errorf("error %#v lacks a position", err)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "absent.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(absent) = %v, want ErrNotExist", err)
	}
	dir := writeFiles(t, map[string]string{
		"main.conf":  "ipc {\n  include extra.conf;\n}",
		"extra.conf": "\n\n  socket_mode 8;",
	})
	_, err := Load(filepath.Join(dir, "main.conf"))
	if want := filepath.Join(dir, "extra.conf") + `:3:3: "socket_mode" must be an octal mode ≤ 0777, got "8"`; err == nil || err.Error() != want {
		t.Errorf("error in included file:\n got %v\nwant %s", err, want)
	}
}

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got, want := DefaultSocketPath(), "/run/user/1000/procwire/procwire.sock"; got != want {
		t.Errorf("with XDG_RUNTIME_DIR: %q, want %q", got, want)
	}
	uid := os.Getuid()
	for _, v := range []string{"", "relative/dir"} {
		t.Setenv("XDG_RUNTIME_DIR", v)
		want := filepath.Join("/tmp", "procwire-"+strconv.Itoa(uid), "procwire.sock")
		if got := DefaultSocketPath(); got != want {
			t.Errorf("XDG_RUNTIME_DIR=%q: %q, want %q", v, got, want)
		}
	}
}
