package mq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/procwire/procwire/shm"
)

// fuzzLanes is the lane count of the fuzzed layouts: enough for the
// shared lane, dedicated lanes and a free one.
const fuzzLanes = 2

// FuzzLayout feeds arbitrary bytes to the queue as its shared memory. A
// corrupt header, lane table, cursors or record must be refused by
// checkLayout or reported as ErrCorrupt by a producer or the consumer,
// within bounded work: never a panic, a hang or a misread message.
func FuzzLayout(f *testing.F) {
	// Seeds: a fresh queue, one holding messages in several lanes and
	// across a wrap, and damaged copies of it.
	m := newMemLanes(f, MinCapacity, 0, fuzzLanes)
	f.Add(bytes.Clone(m.data))
	c := m.queue(1, true)
	p := m.queue(2, false)
	for i := range 6 {
		p.TrySend(bytes.Repeat([]byte{byte(i)}, i*40))
	}
	c.TryReceiveBatch(func([]byte) {})
	for i := range 5 {
		p.TrySendParts([]byte("part"), bytes.Repeat([]byte{byte(i)}, 100))
		c.TrySend([]byte("from the consumer's lane"))
	}
	full := bytes.Clone(m.data)
	f.Add(full)
	lane1 := headerSize + laneSize
	rec1 := ringsAt(fuzzLanes) + MinCapacity
	for _, mod := range []struct {
		off int
		val uint64
	}{
		{offLanes, 0}, {offLanes, MaxLanes + 1}, {offCap, 1000}, {offMaxMsg, MinCapacity},
		{offHigh, fuzzLanes + 2}, {lane1 + lnTail, 1 << 40}, {lane1 + lnHead, 12}, {lane1 + lnOwner, 99 << ownerStartBits},
		{lane1 + lnRing, 2}, {lane1 + lnRing, 0}, {lane1 + lnFast, 2}, {lane1 + lnFast, 1},
	} {
		bad := bytes.Clone(full)
		binary.NativeEndian.PutUint32(bad[mod.off:], uint32(mod.val))
		if mod.off == lane1+lnTail {
			binary.NativeEndian.PutUint64(bad[mod.off:], uint64(mod.val))
		}
		f.Add(bad)
	}
	// Record headers: too long, beyond the tail, a wrap marker at the
	// ring's start.
	for _, h := range []uint64{5000, MinCapacity / 2, wrapMark, wrapMark | 1} {
		bad := bytes.Clone(full)
		binary.NativeEndian.PutUint64(bad[rec1:], h)
		f.Add(bad)
	}
	f.Add(full[:headerSize])
	f.Add([]byte("PWMQ"))

	f.Fuzz(func(t *testing.T, in []byte) {
		mr := newMemLanes(t, MinCapacity, 0, fuzzLanes)
		data := mr.data
		clear(data)
		copy(data, in)
		// The shared lane's lock is package shm's (and fuzzed there): a
		// lock word naming a live process, such as pid 1, would rightly
		// make a producer wait for it forever.
		if len(data) >= headerSize+lnLock+shm.MutexSize {
			clear(data[headerSize+lnLock : headerSize+lnLock+shm.MutexSize])
		}
		mr.plat.dead = func(int32) bool { return true }
		r, err := newRing(data, mr.plat, ident{pid: 1, start: 7}, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("refusal not ErrCorrupt: %v", err)
			}
			return
		}
		q := newQueue(r, "fuzz", true, r.maxMsg, -1, nil)
		defer q.Close()
		// A producer on a damaged queue may fail (the message limit in the
		// header may be tiny), but must return.
		okErr := func(what string, err error) {
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFull) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: %v", what, err)
			}
		}
		okErr("TrySend", q.TrySend([]byte("probe")))
		okErr("TrySendParts", q.TrySendParts([]byte("pro"), []byte("be")))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = q.SendBatch(ctx, [][]byte{[]byte("a"), []byte("b")})
		okErr("SendBatch", err)
		// The consumer delivers at most every 8-byte word of every lane.
		for range (r.nlanes*int(r.size))/recAlign + 2 {
			n, err := q.TryReceiveBatch(func(msg []byte) {
				if len(msg) > r.maxMsg {
					t.Fatalf("delivered %d bytes, limit %d", len(msg), r.maxMsg)
				}
			})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("TryReceiveBatch: %v", err)
				}
				return
			}
			if n == 0 {
				return // drained
			}
		}
		t.Fatal("the consumer kept finding messages")
	})
}
