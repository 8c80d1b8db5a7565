package alert

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func encode(kind uint8, pid uint32, start uint64, total, offset uint32, name string, data []byte) []byte {
	b := make([]byte, recordSize(len(name), len(data)))
	putHeader(b, kind, len(name), pid, start, total, offset)
	n := copy(b[headerSize:], name)
	copy(b[headerSize+n:], data)
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name          string
		kind          uint8
		total, offset uint32
		alert         string
		data          []byte
	}{
		{"empty", recWhole, 0, 0, "", nil},
		{"small", recWhole, 5, 0, "hello", []byte("world")},
		{"max name", recWhole, 3, 0, strings.Repeat("n", MaxName), []byte("abc")},
		{"first chunk", recChunk, 100, 0, "big", bytes.Repeat([]byte{7}, 40)},
		{"last chunk", recChunk, 100, 60, "big", bytes.Repeat([]byte{9}, 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encode(tt.kind, 4242, 987654321, tt.total, tt.offset, tt.alert, tt.data)
			var r record
			rest, err := decodeRecord(b, &r)
			if err != nil {
				t.Fatal(err)
			}
			if r.kind != tt.kind || r.pid != 4242 || r.start != 987654321 || r.total != tt.total || r.offset != tt.offset ||
				string(r.name) != tt.alert || !bytes.Equal(r.data, tt.data) {
				t.Fatalf("decoded %+v", r)
			}
			if len(rest) != 0 {
				t.Fatalf("%d bytes left over", len(rest))
			}
		})
	}
}

func TestRecordMalformed(t *testing.T) {
	good := encode(recWhole, 1, 2, 3, 0, "n", []byte("abc"))
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", good[:headerSize-1]},
		{"unknown kind", func() []byte { b := bytes.Clone(good); b[0] = 9; return b }()},
		{"reserved set", func() []byte { b := bytes.Clone(good); b[3] = 1; return b }()},
		{"name overruns", func() []byte { b := bytes.Clone(good); b[1] = 200; return b }()},
		{"name too long", func() []byte { b := bytes.Clone(good); b[1] = 255; return b }()},
		{"data shorter than header says", good[:len(good)-1]},
		{"whole with offset", encode(recWhole, 1, 2, 3, 1, "n", []byte("abc"))},
		{"chunk past end", encode(recChunk, 1, 2, 10, 8, "n", []byte("abc"))},
		{"empty chunk", encode(recChunk, 1, 2, 10, 0, "n", nil)},
		{"total above MaxData", encode(recChunk, 1, 2, 0xFFFFFFFF, 0, "n", []byte("a"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeRecord(tt.b, new(record)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestCheckAlert(t *testing.T) {
	tests := []struct {
		name    string
		alert   string
		dataLen int
		want    error
		text    string
	}{
		{"ok", "x", 10, nil, ""},
		{"254-byte name", strings.Repeat("a", 254), 0, nil, ""},
		{"255-byte name", strings.Repeat("a", 255), 0, ErrNameTooLong, "alert name length cannot exceed 254, was 255"},
	}
	if max := uint64(MaxData); max < math.MaxInt { // lengths an int holds
		tests = append(tests, []struct {
			name    string
			alert   string
			dataLen int
			want    error
			text    string
		}{
			{"max data", "x", int(max), nil, ""},
			{"data one over", "x", int(max + 1), ErrDataTooLong, "alert data length cannot exceed 4294967040, was 4294967041"},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAlert(tt.alert, tt.dataLen)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err != nil && err.Error() != tt.text {
				t.Fatalf("text %q, want %q", err.Error(), tt.text)
			}
		})
	}
}

func TestCheckGroup(t *testing.T) {
	for _, ok := range []string{"g", "web-workers_2", strings.Repeat("a", MaxGroupName)} {
		if err := checkGroup(ok); err != nil {
			t.Errorf("checkGroup(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a/b", "a b", strings.Repeat("a", MaxGroupName+1)} {
		if err := checkGroup(bad); !errors.Is(err, ErrInvalidGroup) {
			t.Errorf("checkGroup(%q) = %v, want ErrInvalidGroup", bad, err)
		}
	}
}

func TestNoMemberText(t *testing.T) {
	err := noMember(1234)
	if err.Error() != "no worker process with PID 1234" || !errors.Is(err, ErrNoMember) {
		t.Fatalf("got %v", err)
	}
}

// TestRecordPacked decodes several whole records from one inbox message,
// as SendMany packs them, and rejects a truncated last one.
func TestRecordPacked(t *testing.T) {
	var msg []byte
	want := []string{"", "a", "hello", strings.Repeat("z", 300)}
	for i, d := range want {
		msg = append(msg, encode(recWhole, uint32(i), 9, uint32(len(d)), 0, "n", []byte(d))...)
	}
	var got []string
	for b := msg; len(b) > 0; {
		var r record
		rest, err := decodeRecord(b, &r)
		if err != nil {
			t.Fatal(err)
		}
		if int(r.pid) != len(got) {
			t.Fatalf("record %d has pid %d", len(got), r.pid)
		}
		got = append(got, string(r.data))
		b = rest
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	rest, err := decodeRecord(msg[:len(msg)-1], new(record))
	for err == nil && len(rest) > 0 {
		rest, err = decodeRecord(rest, new(record))
	}
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated pack: got %v, want ErrMalformed", err)
	}
}

// FuzzRecord checks that the decoder never panics, never returns slices
// outside its input, and that what it accepts re-encodes to the same bytes.
func FuzzRecord(f *testing.F) {
	f.Add(encode(recWhole, 1, 2, 5, 0, "hello", []byte("world")))
	f.Add(encode(recChunk, 7, 8, 1000, 10, "big", []byte("part")))
	f.Add(encode(recWhole, 1, 2, 0, 0, "", nil))
	f.Add([]byte{1, 255, 0, 0})
	f.Add(append(encode(recWhole, 1, 2, 1, 0, "a", []byte("x")), encode(recWhole, 1, 2, 2, 0, "b", []byte("yz"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		rest, err := decodeRecord(b, &r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if r.kind == recChunk && rest != nil {
			t.Fatalf("chunk record followed by %d bytes", len(rest))
		}
		again := encode(r.kind, r.pid, r.start, r.total, r.offset, string(r.name), r.data)
		if !bytes.Equal(again, b[:len(b)-len(rest)]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}
