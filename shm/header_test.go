package shm

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func validHeader() []byte {
	b := make([]byte, headerSize)
	h := header{kind: KindDict, version: 2, dataSize: 4096, creatorPID: 1234, creatorSt: 99, created: time.Unix(1700000000, 5)}
	h.encode(b)
	return b
}

func TestParseHeader(t *testing.T) {
	good := validHeader()
	h, err := parseHeader(good, headerSize+4096)
	if err != nil {
		t.Fatal(err)
	}
	if h.kind != KindDict || h.version != 2 || h.dataSize != 4096 || h.creatorPID != 1234 || h.creatorSt != 99 || h.created.UnixNano() != 1700000000_000000005 {
		t.Fatalf("parsed %+v", h)
	}
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for _, tc := range []struct {
		what     string
		b        []byte
		fileSize int64
	}{
		{"short buffer", good[:headerSize-1], -1},
		{"short file", good, headerSize - 1},
		{"file too small for the data", good, headerSize + 4095},
		{"zero magic", mod(func(b []byte) { b[0] = 0; clear(b[:8]) }), -1},
		{"wrong magic", mod(func(b []byte) { b[0] ^= 1 }), -1},
		{"layout version", mod(func(b []byte) { b[offLayout]++ }), -1},
		{"checksum", mod(func(b []byte) { b[offCRC]++ }), -1},
		{"field changed", mod(func(b []byte) { b[offDataSize]++ }), -1},
		{"reserved tail", mod(func(b []byte) { b[100] = 1 }), -1},
	} {
		if _, err := parseHeader(tc.b, tc.fileSize); !errors.Is(err, ErrIncompatible) {
			t.Errorf("%s: err = %v, want ErrIncompatible", tc.what, err)
		}
	}
}

// FuzzHeader feeds arbitrary bytes to the header parser: it must return an
// error wrapping ErrIncompatible or a header that encodes back to exactly
// the same bytes (so nothing was misread), and never panic.
func FuzzHeader(f *testing.F) {
	f.Add(validHeader(), int64(-1))
	f.Add(validHeader(), int64(headerSize))
	f.Add(make([]byte, headerSize), int64(headerSize))
	f.Add([]byte("PRCWSHM\x01"), int64(8))
	f.Add(bytes.Repeat([]byte{0xff}, headerSize), int64(1<<40))
	f.Fuzz(func(t *testing.T, b []byte, fileSize int64) {
		h, err := parseHeader(b, fileSize)
		if err != nil {
			if !errors.Is(err, ErrIncompatible) {
				t.Fatalf("error %v does not wrap ErrIncompatible", err)
			}
			return
		}
		if h.dataSize < 0 || h.dataSize > maxDataSize || (fileSize >= 0 && fileSize < headerSize+h.dataSize) {
			t.Fatalf("accepted data size %d for file size %d", h.dataSize, fileSize)
		}
		again := make([]byte, headerSize)
		h.encode(again)
		if !bytes.Equal(again, b[:headerSize]) {
			t.Fatalf("header %+v re-encodes differently:\n got %x\nfrom %x", h, again, b[:headerSize])
		}
	})
}
