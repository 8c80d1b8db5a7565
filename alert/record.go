package alert

import (
	"encoding/binary"
	"fmt"
)

// An alert travels through the destination's inbox as one record, or, when
// it is larger than the inbox's biggest message, as a sequence of chunk
// records that the receiver reassembles. An inbox message holds either one
// chunk record or one or more whole records back to back (SendMany packs
// many small alerts into one message, so that their cost in the shared
// ring is paid once). Every record has the same 24-byte little-endian
// header (documented in docs/alert.md):
//
//	0   u8   kind: recWhole or recChunk
//	1   u8   name length n (<= MaxName)
//	2   u16  reserved, zero
//	4   u32  sender pid
//	8   u64  sender start time (proc.ID.Start)
//	16  u32  total data length of the alert
//	20  u32  offset of this chunk's data in the alert (0 for recWhole)
//	24  n    name
//	24+n     data (recWhole: all of it; recChunk: the bytes at offset)
const (
	recWhole   = 1
	recChunk   = 2
	headerSize = 24
)

// record is a decoded record. Name and Data alias the buffer it was decoded from.
type record struct {
	kind   uint8
	pid    uint32
	start  uint64
	total  uint32
	offset uint32
	name   []byte
	data   []byte
}

// recordSize is the encoded size of a record with a name of n bytes and a
// data part of d bytes.
func recordSize(n, d int) int { return headerSize + n + d }

// putHeader encodes the header of a record with a name of nameLen bytes
// into b[:headerSize]; the name and data follow it.
func putHeader(b []byte, kind uint8, nameLen int, pid uint32, start uint64, total, offset uint32) {
	_ = b[headerSize-1]
	b[0] = kind
	b[1] = uint8(nameLen)
	b[2], b[3] = 0, 0
	binary.LittleEndian.PutUint32(b[4:], pid)
	binary.LittleEndian.PutUint64(b[8:], start)
	binary.LittleEndian.PutUint32(b[16:], total)
	binary.LittleEndian.PutUint32(b[20:], offset)
}

// decodeRecord parses the record at the start of b into r and returns the
// bytes after it: more whole records, or nothing (a chunk record is always
// alone in its message). It never allocates; r's slices alias b. Every
// length is checked against b before use, so a corrupt or hostile record
// yields ErrMalformed, never a panic or a huge allocation.
func decodeRecord(b []byte, r *record) (rest []byte, err error) {
	nameEnd, end, err := parseRecord(b, r)
	if err != nil {
		return nil, err
	}
	r.name, r.data = b[headerSize:nameEnd], b[nameEnd:end]
	if r.kind == recChunk {
		return nil, nil
	}
	return b[end:], nil
}

// parseRecord is decodeRecord without the slices: it checks the record at
// the start of b and fills r's integer fields; the name is
// b[headerSize:nameEnd] and the data b[nameEnd:end], the last byte of a
// chunk record's message. The receive loop, which runs it once per alert,
// slices b itself: stores into its own r, on its stack, need none of the
// write barriers that storing slices through a pointer costs while the
// garbage collector marks.
func parseRecord(b []byte, r *record) (nameEnd, end int, err error) {
	if len(b) < headerSize {
		return 0, 0, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), headerSize)
	}
	r.kind = b[0]
	n := int(b[1])
	r.pid = binary.LittleEndian.Uint32(b[4:])
	r.start = binary.LittleEndian.Uint64(b[8:])
	r.total = binary.LittleEndian.Uint32(b[16:])
	r.offset = binary.LittleEndian.Uint32(b[20:])
	// In 64 bits: a 32-bit int would wrap negative for a total of 2 GiB
	// or more, and the length check below would pass.
	end64 := uint64(headerSize+n) + uint64(r.total)
	// The common case, one valid whole record, is tested in one branch;
	// malformed says what is wrong with anything else.
	if r.kind == recWhole && b[2]|b[3] == 0 && n <= MaxName && int64(r.total) <= MaxData && r.offset == 0 && uint64(len(b)) >= end64 {
		return headerSize + n, int(end64), nil
	}
	if r.kind == recChunk && b[2]|b[3] == 0 && n <= MaxName && int64(r.total) <= MaxData && len(b) > headerSize+n &&
		uint64(r.offset)+uint64(len(b)-headerSize-n) <= uint64(r.total) {
		return headerSize + n, len(b), nil
	}
	return 0, 0, malformed(b, r, n)
}

// malformed explains why the record header r, read from b, was refused.
func malformed(b []byte, r *record, n int) error {
	switch {
	case r.kind != recWhole && r.kind != recChunk:
		return fmt.Errorf("%w: unknown kind %d", ErrMalformed, r.kind)
	case b[2] != 0 || b[3] != 0:
		return fmt.Errorf("%w: reserved bytes not zero", ErrMalformed)
	case n > MaxName:
		return fmt.Errorf("%w: name length %d exceeds %d", ErrMalformed, n, MaxName)
	case int64(r.total) > MaxData:
		return fmt.Errorf("%w: data length %d exceeds %d", ErrMalformed, r.total, int64(MaxData))
	case len(b) < headerSize+n:
		return fmt.Errorf("%w: name of %d bytes overruns a %d-byte record", ErrMalformed, n, len(b))
	}
	data := len(b) - headerSize - n
	if r.kind == recWhole {
		return fmt.Errorf("%w: whole alert carries %d data bytes at offset %d, header says %d", ErrMalformed, data, r.offset, r.total)
	}
	return fmt.Errorf("%w: chunk of %d bytes at offset %d overruns an alert of %d bytes", ErrMalformed, data, r.offset, r.total)
}
