package conf

import (
	_ "embed"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Config is the daemon's configuration.
type Config struct {
	IPC IPC
	// Source names where the configuration came from: the file name given
	// to Load or LoadBytes, or EmbeddedSource.
	Source string
}

// IPC configures the JSON IPC server (the ipc { } block).
type IPC struct {
	// Listen is the Unix socket path. Empty means DefaultSocketPath().
	// A relative path in a file is made absolute against the directory of
	// that file.
	Listen string
	// SocketMode is the socket file's mode. Default 0600.
	SocketMode os.FileMode
	// AllowUID and AllowGID restrict which peers may connect, checked
	// with SO_PEERCRED. Empty means no restriction.
	AllowUID []uint32
	AllowGID []uint32
	// ExitTimeout bounds a graceful shutdown. Default 2s.
	ExitTimeout time.Duration
	// SlowThreshold: requests slower than this are counted as slow.
	// Default 20ms; 0 (off) disables it.
	SlowThreshold time.Duration
	// StatsInterval: how often stats are logged. Default 1m; 0 (off)
	// disables it.
	StatsInterval time.Duration
	// MaxMessageSize is the longest message line accepted. Default 64m.
	MaxMessageSize int64
	// MaxConnections caps simultaneous clients. Default 10000.
	MaxConnections int
	// IdleTimeout closes connections idle that long. Default 0 (off).
	IdleTimeout time.Duration
	// SendTimeout closes a connection whose client has read none of its
	// pending responses for that long. Default 60s; 0 (off) disables it.
	SendTimeout time.Duration
}

// EmbeddedSource is the Source of the configuration Default returns.
const EmbeddedSource = "(embedded default)"

//go:embed default.conf
var defaultConf string

// mainBlock is the top level of a daemon configuration file.
var mainBlock = &block{name: "main", rules: map[string]rule{
	"ipc": {args: exactly(0), body: bodyBlock, inner: ipcBlock, set: into(func(c *Config) *IPC { return &c.IPC })},
}}

var ipcBlock = &block{name: "ipc", rules: map[string]rule{
	"listen":           {args: exactly(1), set: value(func(c *IPC) *string { return &c.Listen }, pathArg)},
	"socket_mode":      {args: exactly(1), set: value(func(c *IPC) *os.FileMode { return &c.SocketMode }, modeArg)},
	"allow_uid":        {args: atLeast(1), multi: true, set: list(func(c *IPC) *[]uint32 { return &c.AllowUID }, idArg)},
	"allow_gid":        {args: atLeast(1), multi: true, set: list(func(c *IPC) *[]uint32 { return &c.AllowGID }, idArg)},
	"exit_timeout":     {args: exactly(1), set: value(func(c *IPC) *time.Duration { return &c.ExitTimeout }, durationArg)},
	"slow_threshold":   {args: exactly(1), set: value(func(c *IPC) *time.Duration { return &c.SlowThreshold }, durationOrOffArg)},
	"stats_interval":   {args: exactly(1), set: value(func(c *IPC) *time.Duration { return &c.StatsInterval }, durationOrOffArg)},
	"max_message_size": {args: exactly(1), set: value(func(c *IPC) *int64 { return &c.MaxMessageSize }, sizeArg)},
	"max_connections":  {args: exactly(1), set: value(func(c *IPC) *int { return &c.MaxConnections }, countArg)},
	"idle_timeout":     {args: exactly(1), set: value(func(c *IPC) *time.Duration { return &c.IdleTimeout }, durationOrOffArg)},
	"send_timeout":     {args: exactly(1), set: value(func(c *IPC) *time.Duration { return &c.SendTimeout }, durationOrOffArg)},
}}

// defaults returns the configuration a file starts from; directives
// override it. default.conf spells out the same values (a test checks).
func defaults() *Config {
	return &Config{IPC: IPC{
		SocketMode:     0o600,
		ExitTimeout:    2 * time.Second,
		SlowThreshold:  20 * time.Millisecond,
		StatsInterval:  time.Minute,
		MaxMessageSize: 64 << 20,
		MaxConnections: 10000,
		SendTimeout:    60 * time.Second,
	}}
}

// Load reads and checks the configuration file at path. Settings the file
// does not give keep their defaults.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadBytes(path, src)
}

// LoadBytes checks configuration text; filename is used as by [Parse].
func LoadBytes(filename string, src []byte) (*Config, error) {
	ds, err := Parse(filename, src)
	if err != nil {
		return nil, err
	}
	cfg := defaults()
	cfg.Source = filename
	if err := decode(mainBlock, mainBlock, cfg, ds); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Default returns the embedded default configuration, a new copy on each
// call. Its text, with a comment on every directive, is in default.conf.
func Default() *Config {
	cfg, err := LoadBytes(EmbeddedSource, []byte(defaultConf))
	if err != nil {
		panic("conf: the embedded default.conf is invalid: " + err.Error()) // a test guards this
	}
	return cfg
}

// DefaultSocketPath returns where the daemon listens when nothing says
// otherwise: $XDG_RUNTIME_DIR/procwire/procwire.sock if XDG_RUNTIME_DIR is
// set to an absolute path, else /tmp/procwire-<uid>/procwire.sock. Both are
// per user, so users do not share or squat each other's socket.
func DefaultSocketPath() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "procwire", "procwire.sock")
	}
	// Literally /tmp, not os.TempDir(): clients with another TMPDIR must
	// still find the server.
	return filepath.Join("/tmp", "procwire-"+strconv.Itoa(os.Getuid()), "procwire.sock")
}
