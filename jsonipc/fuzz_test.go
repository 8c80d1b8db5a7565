package jsonipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

var envelopeSeeds = []string{
	`{"ipcReqID":"rq1","uri":"/ipcserver/test/echo","data":{"a":[1,2,{"b":null}]},"pid":1,"userAgent":"x"}`,
	`{"uri":"\/a\u00e9","ipcReqID":12345678901234567890,"data":[]}`,
	` {"ipcReqID":0,"uri":0,"data":-0.0e+5} `,
	`{"dup":1,"dup":2,"ipcReqID":"a","ipcReqID":"b"}`,
	`{"ipc\u0052eqID":true,"code":"x","message":"m"}`,
	`{"a":"\ud800","b":"\x","c":1.}`,
	`[1,2]`, `"s"`, `null`, `{}`, `{"a":1}{}`, `{"a":1} x`, `{"a"}`, `{"a":tru}`,
	"{\"a\":\"\xff\xfe\"}", "{\"a\":\"\x01\"}", `{"a":01}`, `{"a":1e}`, `{"a":-}`, `{"a":[1,]}`,
}

// FuzzEnvelope checks the hand-rolled scanner against encoding/json: the
// same lines are valid, and the members it finds are the bytes that
// decoding into map[string]json.RawMessage finds.
func FuzzEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var e envelope
		err := parseEnvelope(line, &e)
		valid := json.Valid(line)
		var se *syntaxError
		switch {
		case !valid:
			if !errors.As(err, &se) {
				t.Fatalf("encoding/json rejects %q, scanner said %v", line, err)
			}
			return
		case errors.Is(err, errNotObject):
			if t := bytes.TrimLeft(line, " \t\r\n"); len(t) > 0 && t[0] == '{' {
				panic("object reported as non-object")
			}
			return
		case err != nil:
			t.Fatalf("encoding/json accepts %q, scanner said %v", line, err)
		}
		if validJSON(line) != valid {
			t.Fatalf("validJSON(%q) disagrees", line)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("valid object %q did not decode: %v", line, err)
		}
		for _, f := range []struct {
			key string
			got []byte
		}{{"ipcReqID", e.id}, {"uri", e.uri}, {"data", e.data}, {"code", e.code}, {"message", e.message}} {
			want, ok := m[f.key]
			if ok != (f.got != nil) || !bytes.Equal(want, f.got) {
				t.Fatalf("%q: member %s = %q, encoding/json says %q (present %v)", line, f.key, f.got, want, ok)
			}
		}
		if e.uri != nil && e.uri[0] == '"' {
			s, err := uriString(e.uri)
			var want string
			json.Unmarshal(e.uri, &want)
			if err != nil || s != want {
				t.Fatalf("uri %q: got %q, %v; want %q", e.uri, s, err, want)
			}
		}
	})
}

// chunkReader returns its data in pieces of the given sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.sizes) > 0 {
		n = int(r.sizes[r.i%len(r.sizes)]) + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// FuzzLineReader checks the framer against bytes.Split for any stream
// and any way of cutting it into reads: complete lines come out whole,
// lines over the limit are reported once, an unterminated tail is dropped.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), []byte{0, 1, 2}, uint8(2))
	f.Add([]byte("{\"x\":1}\r\n{\"y\":2}\n"), []byte{200}, uint8(10))
	f.Add(bytes.Repeat([]byte("x"), 4000), []byte{255}, uint8(100))
	f.Fuzz(func(t *testing.T, data, sizes []byte, max uint8) {
		// Lines are at most 255 bytes here; longer streams add nothing
		// but make minimizing an input take minutes.
		if len(data) > 4096 {
			data = data[:4096]
		}
		lr := newLineReader(&chunkReader{data: data, sizes: sizes}, int(max))
		parts := bytes.Split(data, []byte("\n"))
		parts = parts[:len(parts)-1] // the unterminated tail (maybe empty)
		for i, want := range parts {
			line, tooLarge, err := lr.next()
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if len(want) > int(max) {
				if !tooLarge {
					t.Fatalf("line %d (%d bytes > %d) not reported too large", i, len(want), max)
				}
				continue
			}
			if tooLarge || !bytes.Equal(line, want) {
				t.Fatalf("line %d: got %q (tooLarge %v), want %q", i, line, tooLarge, want)
			}
		}
		line, tooLarge, err := lr.next()
		// A too-long unterminated tail may still be reported as too large.
		if tooLarge {
			line, tooLarge, err = lr.next()
		}
		if err != io.EOF || line != nil || tooLarge {
			t.Fatalf("end: %q %v %v", line, tooLarge, err)
		}
		if lr.nread != int64(len(data)) {
			t.Fatalf("read %d of %d bytes", lr.nread, len(data))
		}
	})
}
