//go:build linux

package mq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestSendParts(t *testing.T) {
	c := createQ(t, 4096, &Options{MaxMessage: 600})
	p, err := Open(c.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := ctxT(t)
	for _, tc := range []struct {
		name  string
		parts [][]byte
	}{
		{"none", nil},
		{"one", [][]byte{[]byte("whole")}},
		{"header+payload", [][]byte{[]byte("hdr:"), []byte("payload")}},
		{"empty parts", [][]byte{nil, []byte("a"), {}, []byte("bc"), nil}},
		{"odd sizes", [][]byte{bytes.Repeat([]byte{1}, 3), bytes.Repeat([]byte{2}, 13), bytes.Repeat([]byte{3}, 584)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := bytes.Join(tc.parts, nil)
			if err := p.SendParts(ctx, tc.parts...); err != nil {
				t.Fatal(err)
			}
			if err := p.TrySendParts(tc.parts...); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				got, err := c.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		})
	}
	// The limit applies to the total, not to each part.
	big := [][]byte{make([]byte, 300), make([]byte, 301)}
	if err := p.SendParts(ctx, big...); !errors.Is(err, ErrTooLarge) {
		t.Errorf("SendParts of 601 bytes: %v", err)
	}
	if err := p.TrySendParts(big...); !errors.Is(err, ErrTooLarge) {
		t.Errorf("TrySendParts of 601 bytes: %v", err)
	}
	// TrySendParts on a full queue fails with ErrFull; SendParts waits.
	var err2 error
	for range 100 {
		if err2 = p.TrySendParts(make([]byte, 200), make([]byte, 200)); err2 != nil {
			break
		}
	}
	if !errors.Is(err2, ErrFull) {
		t.Fatalf("TrySendParts on a full queue: %v", err2)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := p.SendParts(short, make([]byte, 200), make([]byte, 200)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SendParts on a full queue: %v", err)
	}
	p.Close()
	if err := p.SendParts(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("SendParts after Close: %v", err)
	}
	if err := p.TrySendParts([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("TrySendParts after Close: %v", err)
	}
}

func TestTryReceiveBatch(t *testing.T) {
	c := createQ(t, 64<<10, nil)
	p, err := Open(c.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.TryReceiveBatch(func([]byte) {}); !errors.Is(err, ErrNotConsumer) {
		t.Errorf("TryReceiveBatch by a producer: %v", err)
	}
	noMsg := func(msg []byte) { t.Errorf("unexpected message %q", msg) }
	if n, err := c.TryReceiveBatch(noMsg); n != 0 || err != nil {
		t.Fatalf("TryReceiveBatch on an empty queue: %d, %v", n, err)
	}
	ctx := ctxT(t)
	for i := range 10 {
		if err := p.Send(ctx, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	n, err := c.TryReceiveBatch(func(msg []byte) { got = append(got, string(msg)) })
	if err != nil || n != 10 || len(got) != 10 || got[0] != "m0" || got[9] != "m9" {
		t.Fatalf("TryReceiveBatch: %d, %v, %q", n, err, got)
	}
	if n, err := c.TryReceiveBatch(noMsg); n != 0 || err != nil {
		t.Fatalf("TryReceiveBatch once drained: %d, %v", n, err)
	}
	if s := c.Stats(); s.Received != 10 || s.Used != 0 {
		t.Errorf("stats after TryReceiveBatch: %+v", s)
	}
	c.Close()
	if _, err := c.TryReceiveBatch(noMsg); !errors.Is(err, ErrClosed) {
		t.Errorf("TryReceiveBatch after Close: %v", err)
	}
}

// TestSpin runs a producer and a consumer that sleeps at once (negative
// Spin) or spins long, and checks that every message arrives: the spin
// changes only when the consumer sleeps, never what it receives.
func TestSpin(t *testing.T) {
	for _, spin := range []time.Duration{-1, 0, time.Millisecond} {
		t.Run(spin.String(), func(t *testing.T) {
			c := createQ(t, 4096, &Options{Spin: spin})
			p, err := Open(c.Name(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx := ctxT(t)
			const n = 2000
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range uint32(n) {
					if i%64 == 0 {
						time.Sleep(100 * time.Microsecond) // let the consumer sleep
					}
					if err := p.Send(ctx, testMsg(2, i, 8+int(i%50))); err != nil {
						t.Error(err)
						return
					}
				}
			})
			for i := range uint32(n) {
				b, err := c.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if id, seq := checkMsg(t, b); id != 2 || seq != i {
					t.Fatalf("got %d/%d, want 2/%d", id, seq, i)
				}
			}
			wg.Wait()
		})
	}
}
