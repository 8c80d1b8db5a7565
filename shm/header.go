package shm

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// Kind says what a segment holds; each kind has its own layout, versioned
// separately by Options.Version.
type Kind uint32

// The kinds of segment procwire makes.
const (
	KindRaw   Kind = 1 // bytes read and written by the user
	KindDict  Kind = 2 // shm/dict
	KindSem   Kind = 3 // shm/sem
	KindMQ    Kind = 4 // shm/mq
	KindAlert Kind = 5 // alert
)

// String returns the kind's lower-case name.
func (k Kind) String() string {
	switch k {
	case KindRaw:
		return "raw"
	case KindDict:
		return "dict"
	case KindSem:
		return "sem"
	case KindMQ:
		return "mq"
	case KindAlert:
		return "alert"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// Header layout, all little-endian; see docs/shm.md.
const (
	headerSize    = 128 // also the offset of the data area (64-byte aligned)
	layoutVersion = 1

	offMagic      = 0  // uint64, written last: 0 until the segment is ready
	offLayout     = 8  // uint32 layoutVersion
	offHeaderSize = 12 // uint32 headerSize
	offKind       = 16 // uint32 Kind
	offKindVer    = 20 // uint32 the kind's layout version
	offDataSize   = 24 // uint64 bytes in the data area
	offCreatorPID = 32 // int32
	offReserved   = 36 // uint32, zero
	offCreatorSt  = 40 // uint64 creator's start time (clock ticks since boot)
	offCreated    = 48 // int64 Unix nanoseconds
	offCRC        = 56 // uint32 CRC-32C of bytes [8, 56)
	offReserved2  = 60 // uint32, zero; bytes [64, 128) are zero too

	// maxDataSize bounds the data area so that sizes never overflow int on
	// 64-bit systems and a corrupt header cannot ask for an absurd mapping.
	maxDataSize = 1 << 40
)

// magic is "PRCWSHM\x01" read as a little-endian uint64.
const magic = 0x014d485357435250

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded segment header.
type header struct {
	kind       Kind
	version    uint32
	dataSize   int64
	creatorPID int32
	creatorSt  uint64
	created    time.Time
}

// encode writes h into b[:headerSize], magic included. The creator stores
// the magic separately, last, so it passes the bytes through putHeader.
func (h *header) encode(b []byte) {
	clear(b[:headerSize])
	le := binary.LittleEndian
	le.PutUint32(b[offLayout:], layoutVersion)
	le.PutUint32(b[offHeaderSize:], headerSize)
	le.PutUint32(b[offKind:], uint32(h.kind))
	le.PutUint32(b[offKindVer:], h.version)
	le.PutUint64(b[offDataSize:], uint64(h.dataSize))
	le.PutUint32(b[offCreatorPID:], uint32(h.creatorPID))
	le.PutUint64(b[offCreatorSt:], h.creatorSt)
	le.PutUint64(b[offCreated:], uint64(h.created.UnixNano()))
	le.PutUint32(b[offCRC:], crc32.Checksum(b[offLayout:offCRC], crcTable))
	le.PutUint64(b[offMagic:], magic)
}

// errNotReady is returned by parseHeader while the magic is still zero:
// a creator that does not publish by link(2) is still initializing.
var errNotReady = fmt.Errorf("%w: segment header not yet published", ErrIncompatible)

// parseHeader decodes and checks a segment header. fileSize is the size of
// the file it came from, or -1 if unknown. Any inconsistency is an error
// wrapping ErrIncompatible: a header is either fully valid or refused.
func parseHeader(b []byte, fileSize int64) (header, error) {
	if len(b) < headerSize || (fileSize >= 0 && fileSize < headerSize) {
		n := int64(len(b))
		if fileSize >= 0 && fileSize < n {
			n = fileSize
		}
		return header{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrIncompatible, n, headerSize)
	}
	le := binary.LittleEndian
	switch m := le.Uint64(b[offMagic:]); {
	case m == 0:
		return header{}, errNotReady
	case m != magic:
		return header{}, fmt.Errorf("%w: not a procwire segment (magic %#016x)", ErrIncompatible, m)
	}
	if v := le.Uint32(b[offLayout:]); v != layoutVersion {
		return header{}, fmt.Errorf("%w: segment layout version %d, this program knows %d", ErrIncompatible, v, layoutVersion)
	}
	if got, want := le.Uint32(b[offCRC:]), crc32.Checksum(b[offLayout:offCRC], crcTable); got != want {
		return header{}, fmt.Errorf("%w: header checksum %#08x, want %#08x (corrupt header)", ErrIncompatible, got, want)
	}
	if n := le.Uint32(b[offHeaderSize:]); n != headerSize {
		return header{}, fmt.Errorf("%w: header size %d, want %d", ErrIncompatible, n, headerSize)
	}
	if le.Uint32(b[offReserved:]) != 0 || le.Uint32(b[offReserved2:]) != 0 {
		return header{}, fmt.Errorf("%w: reserved header fields are not zero", ErrIncompatible)
	}
	for _, c := range b[64:headerSize] {
		if c != 0 {
			return header{}, fmt.Errorf("%w: reserved header bytes are not zero", ErrIncompatible)
		}
	}
	h := header{
		kind:       Kind(le.Uint32(b[offKind:])),
		version:    le.Uint32(b[offKindVer:]),
		creatorPID: int32(le.Uint32(b[offCreatorPID:])),
		creatorSt:  le.Uint64(b[offCreatorSt:]),
	}
	if h.kind == 0 || h.version == 0 {
		return header{}, fmt.Errorf("%w: kind %d version %d", ErrIncompatible, h.kind, h.version)
	}
	size := le.Uint64(b[offDataSize:])
	if size > maxDataSize {
		return header{}, fmt.Errorf("%w: data size %d exceeds the limit %d", ErrIncompatible, size, int64(maxDataSize))
	}
	h.dataSize = int64(size)
	if fileSize >= 0 && fileSize-headerSize < h.dataSize {
		return header{}, fmt.Errorf("%w: file is %d bytes, too short for %d data bytes (truncated?)", ErrIncompatible, fileSize, h.dataSize)
	}
	if h.creatorPID <= 0 {
		return header{}, fmt.Errorf("%w: creator pid %d", ErrIncompatible, h.creatorPID)
	}
	ns := le.Uint64(b[offCreated:])
	if ns > math.MaxInt64 {
		return header{}, fmt.Errorf("%w: creation time %d out of range", ErrIncompatible, ns)
	}
	h.created = time.Unix(0, int64(ns))
	return h, nil
}
