package conf

import (
	"errors"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{"0", 0, nil},
		{"123", 123, nil},
		{"8k", 8 << 10, nil},
		{"8K", 8 << 10, nil},
		{"10m", 10 << 20, nil},
		{"10M", 10 << 20, nil},
		{"1g", 1 << 30, nil},
		{"1G", 1 << 30, nil},
		{"007", 7, nil},
		{"9223372036854775807", 1<<63 - 1, nil},
		{"8589934591g", 8589934591 << 30, nil},
		{"9223372036854775808", 0, strconv.ErrRange},
		{"8589934592g", 0, strconv.ErrRange},
		{"9007199254740992k", 0, strconv.ErrRange},
		{"", 0, strconv.ErrSyntax},
		{"k", 0, strconv.ErrSyntax},
		{"-1", 0, strconv.ErrSyntax},
		{"+1", 0, strconv.ErrSyntax},
		{"1.5m", 0, strconv.ErrSyntax},
		{"1kb", 0, strconv.ErrSyntax},
		{"1t", 0, strconv.ErrSyntax},
		{"1 k", 0, strconv.ErrSyntax},
		{"1_000", 0, strconv.ErrSyntax},
		{"0x10", 0, strconv.ErrSyntax},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  error
	}{
		{"0", 0, nil},
		{"30", 30 * time.Second, nil},
		{"500ms", 500 * time.Millisecond, nil},
		{"2s", 2 * time.Second, nil},
		{"1m", time.Minute, nil},
		{"1h", time.Hour, nil},
		{"1d", 24 * time.Hour, nil},
		{"1m30s", 90 * time.Second, nil},
		{"1d2h3m4s5ms", 24*time.Hour + 2*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond, nil},
		{"1h500ms", time.Hour + 500*time.Millisecond, nil},
		{"0s", 0, nil},
		{"9223372036", 9223372036 * time.Second, nil},
		{"9223372037", 0, strconv.ErrRange},
		{"106752d", 0, strconv.ErrRange},
		{"106751d23h47m16s854ms", 106751*24*time.Hour + 23*time.Hour + 47*time.Minute + 16*time.Second + 854*time.Millisecond, nil},
		{"106751d23h47m16s855ms", 0, strconv.ErrRange},
		{"99999999999999999999s", 0, strconv.ErrRange},
		{"", 0, strconv.ErrSyntax},
		{"off", 0, strconv.ErrSyntax},
		{"s", 0, strconv.ErrSyntax},
		{"1", time.Second, nil},
		{"1m30", 0, strconv.ErrSyntax},
		{"30s1m", 0, strconv.ErrSyntax},
		{"1s1s", 0, strconv.ErrSyntax},
		{"1ms1s", 0, strconv.ErrSyntax},
		{"1.5s", 0, strconv.ErrSyntax},
		{"-1s", 0, strconv.ErrSyntax},
		{"1us", 0, strconv.ErrSyntax},
		{"1w", 0, strconv.ErrSyntax},
		{"1S", 0, strconv.ErrSyntax},
		{"1m 30s", 0, strconv.ErrSyntax},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want os.FileMode
		err  error
	}{
		{"0600", 0o600, nil},
		{"600", 0o600, nil},
		{"0660", 0o660, nil},
		{"0", 0, nil},
		{"777", 0o777, nil},
		{"00777", 0o777, nil},
		{"1000", 0, strconv.ErrRange},
		{"4755", 0, strconv.ErrRange},
		{"999", 0, strconv.ErrSyntax},
		{"0o600", 0, strconv.ErrSyntax},
		{"", 0, strconv.ErrSyntax},
		{"-600", 0, strconv.ErrSyntax},
		{"000000600", 0, strconv.ErrSyntax},
		{"rw", 0, strconv.ErrSyntax},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"on": true, "off": false} {
		if got, err := ParseBool(in); got != want || err != nil {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "On", "true", "1", "yes", "of"} {
		if _, err := ParseBool(in); !errors.Is(err, strconv.ErrSyntax) {
			t.Errorf("ParseBool(%q) error = %v, want ErrSyntax", in, err)
		}
	}
}
