package dict

import (
	"log/slog"
	"os"
)

// Options configure Open. The zero value (or nil) is useful.
type Options struct {
	// Mode is the file mode of a newly created dictionary; 0 means 0600.
	Mode os.FileMode
	// Shards is the number of independently locked parts the dictionary
	// is split into (by key hash) when it is created: a power of two up to
	// 16. Processes working on keys of different shards do not contend,
	// but LRU order and eviction are per shard and an item must fit in
	// one shard. 0 means one shard per 4 MiB of capacity (at most 16), so
	// dictionaries under 8 MiB have exactly one. Attaching ignores it.
	Shards int
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

func (o *Options) shards(capacity int) int {
	if o == nil || o.Shards == 0 {
		return defaultShards(capacity)
	}
	return o.Shards
}
