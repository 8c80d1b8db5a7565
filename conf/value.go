package conf

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// ParseSize parses a size in bytes: a decimal number optionally followed
// by k, m or g (any case) for KiB, MiB or GiB, as in nginx: "123", "8k",
// "10m", "1g". Errors wrap strconv.ErrSyntax for a malformed size and
// strconv.ErrRange for one too large for an int64.
func ParseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			num, mult = s[:len(s)-1], 1<<10
		case 'm', 'M':
			num, mult = s[:len(s)-1], 1<<20
		case 'g', 'G':
			num, mult = s[:len(s)-1], 1<<30
		}
	}
	n, err := parseDigits(num)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: %w", s, strconv.ErrRange)
	}
	return n * mult, nil
}

// parseDigits parses a non-empty run of ASCII digits. Unlike
// strconv.ParseInt it refuses signs and underscores.
func parseDigits(s string) (int64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, strconv.ErrRange
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// durationUnits lists the units of ParseDuration, largest first; within a
// value they must appear in this order, each at most once.
var durationUnits = [...]struct {
	name string
	d    time.Duration
}{
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
	{"ms", time.Millisecond},
}

// unitAt returns the index in durationUnits of the unit s starts with, or
// -1. "ms" wins over "m".
func unitAt(s string) int {
	if strings.HasPrefix(s, "ms") {
		return len(durationUnits) - 1
	}
	for i, u := range durationUnits {
		if strings.HasPrefix(s, u.name) {
			return i
		}
	}
	return -1
}

// ParseDuration parses an nginx-style time: a number of seconds ("30"),
// or numbers each followed by a unit, ms, s, m, h or d, largest unit first
// ("500ms", "2s", "1m30s", "1d12h"). Unlike time.ParseDuration, a bare
// number means seconds and fractions are not allowed. "off" is not a
// duration here; the directives that accept it handle it themselves.
// Errors wrap strconv.ErrSyntax or, past about 292 years,
// strconv.ErrRange.
func ParseDuration(s string) (time.Duration, error) {
	if n, err := parseDigits(s); err == nil {
		if n > int64(math.MaxInt64/time.Second) {
			return 0, fmt.Errorf("duration %q: %w", s, strconv.ErrRange)
		}
		return time.Duration(n) * time.Second, nil
	}
	rest := s
	var total time.Duration
	last := -1
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		n, err := parseDigits(rest[:i])
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		rest = rest[i:]
		unit := unitAt(rest)
		if unit < 0 {
			return 0, fmt.Errorf("duration %q: %w", s, strconv.ErrSyntax)
		}
		if unit <= last {
			return 0, fmt.Errorf("duration %q: units must go from largest to smallest, each once: %w", s, strconv.ErrSyntax)
		}
		last = unit
		u := durationUnits[unit]
		rest = rest[len(u.name):]
		if n > int64(math.MaxInt64/u.d) || total > math.MaxInt64-time.Duration(n)*u.d {
			return 0, fmt.Errorf("duration %q: %w", s, strconv.ErrRange)
		}
		total += time.Duration(n) * u.d
	}
	if last < 0 {
		return 0, fmt.Errorf("duration %q: %w", s, strconv.ErrSyntax)
	}
	return total, nil
}

// ParseMode parses a file mode written in octal, such as "0600" or "660".
// It allows permission bits only: errors wrap strconv.ErrRange above 0777
// and strconv.ErrSyntax for anything not octal.
func ParseMode(s string) (os.FileMode, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("mode %q: %w", s, strconv.ErrSyntax)
	}
	var m uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '7' {
			return 0, fmt.Errorf("mode %q: %w", s, strconv.ErrSyntax)
		}
		m = m*8 + uint32(c-'0')
	}
	if m > 0o777 {
		return 0, fmt.Errorf("mode %q: %w", s, strconv.ErrRange)
	}
	return os.FileMode(m), nil
}

// ParseBool parses "on" or "off", nginx's booleans; anything else is an
// error wrapping strconv.ErrSyntax.
func ParseBool(s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("boolean %q: %w", s, strconv.ErrSyntax)
}
