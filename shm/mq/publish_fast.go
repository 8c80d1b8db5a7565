//go:build amd64 && !race

package mq

// publishFast stores the header word that publishes a record on the
// single-send fast path. On amd64 a plain store is enough: stores are not
// reordered with earlier stores (so the payload and terminator are visible
// first), and the store-load order the wake-up protocol needs comes from
// the producer's unlock, a LOCK-prefixed read-modify-write that fastSend
// performs before it looks at the wake flag. That saves the XCHG an
// atomic store costs, on the path where every nanosecond shows.
func publishFast(p *uint64, v uint64) { *p = v }
