package mq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// FuzzLayout feeds arbitrary bytes to the queue as its shared memory. A
// corrupt queue must be refused by checkLayout or reported by the
// consumer as ErrCorrupt within bounded work, never panic or loop.
func FuzzLayout(f *testing.F) {
	// Seeds: a fresh queue, one holding a few messages, one with a torn
	// record, and damaged copies of them.
	m := newMemRing(f, MinCapacity, 0)
	f.Add(bytes.Clone(m.data))
	q := m.queue(2, false)
	for i := range 5 {
		q.TrySend(bytes.Repeat([]byte{byte(i)}, i*40))
	}
	full := bytes.Clone(m.data)
	f.Add(full)
	m.queue(9, false).r.reserve(30)
	f.Add(bytes.Clone(m.data))
	bad := bytes.Clone(full)
	binary.NativeEndian.PutUint64(bad[headerSize:], headerWord(2, stCommitted, 5000))
	f.Add(bad)
	bad = bytes.Clone(full)
	binary.NativeEndian.PutUint64(bad[headerSize:], headerWord(0, stSkip, 3))
	f.Add(bad)
	f.Add(full[:headerSize])
	f.Add([]byte("PWMQ"))

	f.Fuzz(func(t *testing.T, in []byte) {
		mr := newMemRing(t, MinCapacity, 0)
		data := mr.data
		clear(data)
		copy(data, in)
		mr.plat.dead = func(int32) bool { return true }
		r, err := newRing(data, mr.plat, ident{pid: 1, start: 7}, time.Nanosecond)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("refusal not ErrCorrupt: %v", err)
			}
			return
		}
		r.attach()
		// A producer on a damaged ring may fail, but must return.
		r.put([]byte("probe"))
		r.putBatch([][]byte{[]byte("a"), []byte("b")})
		delivered := 0
		for range 4 * MinCapacity / recAlign {
			n, err := r.poll(func(msg []byte) {
				if len(msg) > r.maxMsg {
					t.Fatalf("delivered %d bytes, limit %d", len(msg), r.maxMsg)
				}
				delivered++
			}, 1<<30)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("poll: %v", err)
				}
				return
			}
			if n > 0 {
				r.publish()
				continue
			}
			// Nothing ready: treat whatever blocks as torn, at once.
			r.stuck = false
			if _, _, err := r.prepareWait(time.Now()); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("prepareWait: %v", err)
				}
				return
			}
			_, sleep, err := r.prepareWait(time.Now().Add(time.Hour))
			if err != nil {
				return
			}
			if sleep && r.rpos == *r.tail {
				return // drained
			}
		}
	})
}
