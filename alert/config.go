package alert

import (
	"log/slog"
	"os"
	"time"

	"github.com/procwire/procwire/shm/mq"
)

// FullPolicy says what Send does when the destination's inbox is full.
type FullPolicy int

const (
	// Block makes Send wait for room until its context ends or the
	// destination dies. It is the default.
	Block FullPolicy = iota
	// Fail makes Send return ErrBackpressure at once.
	Fail
)

// Defaults used for zero Config fields.
const (
	DefaultInboxSize = 1 << 20
	DefaultLanes     = 16
	DefaultSpin      = 50 * time.Microsecond
	// MinInboxSize is the smallest accepted inbox: it must hold a few
	// records with a maximal name.
	MinInboxSize = 16 << 10
)

// Config tunes a member. A nil *Config, and every zero field, means the default.
type Config struct {
	// InboxSize is the byte capacity of this member's inbox for each
	// sender (default 1 MiB): every sending process gets a lane of its
	// own of that size (see Lanes), so a slow receiver holds at most that
	// much from any one sender. Alerts bigger than a quarter of it are
	// sent in chunks and reassembled.
	InboxSize int
	// Lanes is how many sending processes get a lane of their own in this
	// member's inbox (default 16, at most MaxLanes); any more share one
	// further lane, taking turns under a lock (a lane whose sender has
	// gone is reused by the next). A lane of its own spares a sender the
	// shared lane's lock. The inbox is a sparse /dev/shm segment: a lane's
	// InboxSize bytes are reserved when its first sender uses it, so a
	// member costs InboxSize per process that has sent to it (at most
	// (Lanes+1) × InboxSize, 17 MiB with the defaults).
	Lanes int
	// Spin is how long the receive goroutine polls an empty inbox before it
	// sleeps on a futex (default 50µs). Spinning keeps one core busy while
	// alerts trickle in, in exchange for a wake-up latency of well under a
	// microsecond; a negative value (or NoSpin) disables it: the receiver
	// then always sleeps, costing no CPU when idle but a futex wake (a few
	// µs) per idle-to-busy transition.
	Spin time.Duration
	// FullPolicy is what Send does when a destination's inbox is full.
	FullPolicy FullPolicy
	// Logger receives handler panics and dropped-record reports; nil means slog.Default().
	Logger *slog.Logger
	// Mode is the file mode of the inbox and registry segments (default 0600).
	Mode os.FileMode
	// Handlers and Default are installed before this process becomes
	// visible to others, so that no alert can arrive before its handler.
	Handlers map[string]HandlerFunc
	Default  HandlerFunc
	// ReuseAlerts makes the receive goroutine hand every handler the same
	// *Alert, refilled for each alert, instead of a new one per alert.
	// That allocation is, for small alerts, most of what the garbage
	// collector has to do and can halve the receive rate. The price is a
	// rule for handlers: the *Alert, like its Data, must not be used after
	// the handler returns (copy Name, Sender and Data instead, and reply
	// before returning). A Reply through a kept *Alert fails with
	// ErrNotInHandler only until the next alert's handler starts; after
	// that it would answer the next alert's sender. Alerts reassembled
	// from chunks always get an Alert of their own.
	ReuseAlerts bool
}

// MaxMembers is the largest number of members a group can have.
const MaxMembers = 1024

// MaxLanes is the largest Config.Lanes.
const MaxLanes = mq.MaxLanes

// NoSpin is a Config.Spin value that turns spinning off.
const NoSpin time.Duration = -1

func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.InboxSize == 0 {
		out.InboxSize = DefaultInboxSize
	}
	if out.Lanes == 0 {
		out.Lanes = DefaultLanes
	}
	if out.Spin == 0 {
		out.Spin = DefaultSpin
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Mode == 0 {
		out.Mode = 0o600
	}
	return out
}

// Stats counts what a member has done since it joined.
type Stats struct {
	Sent      uint64 // alerts accepted into a destination's inbox (a broadcast counts once per member)
	Delivered uint64 // alerts handed to a handler (named or default), counted when the batch of inbox messages they came in is done
	Unmatched uint64 // alerts whose name had no handler (also counted in Delivered if the default handler took them)
	Panics    uint64 // handler calls that panicked (recovered and logged)
	Rejected  uint64 // sends refused because the destination was full (ErrBackpressure) or ctx ended while waiting for room
	Dropped   uint64 // received records discarded: malformed, or chunks of a large alert whose sender died or stalled
}

// Member describes one member of a group.
type Member struct {
	PID    int
	Joined time.Time
	Self   bool // this process
}
