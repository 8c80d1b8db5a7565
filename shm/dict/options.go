package dict

import (
	"log/slog"
	"os"
)

// Options configure Open. The zero value (or nil) is useful.
type Options struct {
	// Mode is the file mode of a newly created dictionary; 0 means 0600.
	Mode os.FileMode
	// Logger receives recoveries after a process died holding the lock;
	// nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) logger() *slog.Logger {
	if o == nil || o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}
