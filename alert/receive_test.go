//go:build linux

package alert

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/procwire/procwire/internal/proc"
)

// FuzzHandleMessage feeds arbitrary inbox messages to the receive path
// itself, which slices records on its own rather than through
// decodeRecord (see parseRecord). It must never panic, and its handlers
// must see exactly the alerts that decodeRecord finds in the message, in
// order, up to the first malformed record, which is counted as dropped.
func FuzzHandleMessage(f *testing.F) {
	f.Add(encode(recWhole, 1, 2, 5, 0, "hello", []byte("world")))
	f.Add(append(encode(recWhole, 1, 2, 1, 0, "a", []byte("x")), encode(recWhole, 3, 4, 2, 0, "b", []byte("yz"))...))
	f.Add(append(encode(recWhole, 1, 2, 1, 0, "a", []byte("x")), 1, 255, 0, 0))
	f.Add(encode(recChunk, 7, 8, 4, 0, "big", []byte("part")))
	f.Add(encode(recChunk, 7, 8, 1000, 0, "big", []byte("part")))
	f.Add([]byte{})

	type seen struct {
		name   string
		data   []byte
		sender int
	}
	var got []seen
	g := join(f, testGroup(f), &Config{
		Logger: slog.New(slog.DiscardHandler),
		Default: func(ctx context.Context, a *Alert) {
			got = append(got, seen{a.Name, bytes.Clone(a.Data), a.Sender})
		},
	})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, msg []byte) {
		// What the handlers should see, by the reference decoder.
		var want []seen
		dropped := uint64(0)
		for rest := msg; ; {
			var r record
			next, err := decodeRecord(rest, &r)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				dropped++
				break
			}
			if r.kind == recChunk && r.offset == 0 && r.total > 1<<20 {
				// A first chunk makes the receiver allocate the whole
				// alert (up to 4 GiB), by design: not for a fuzzer.
				t.Skip("first chunk of a large alert")
			}
			switch {
			case r.kind == recWhole || (r.offset == 0 && len(r.data) == int(r.total)):
				want = append(want, seen{string(r.name), r.data, int(int32(r.pid))})
			case r.offset != 0:
				dropped++ // a later chunk of an alert whose start this message lacks
			}
			if len(next) == 0 {
				break
			}
			rest = next
		}

		got = got[:0]
		before := g.Stats().Dropped
		partials := make(map[proc.ID]*partial)
		n := g.handleMessage(ctx, msg, partials)
		if n != len(got) {
			t.Errorf("handleMessage reported %d alerts delivered, handlers saw %d", n, len(got))
		}
		if len(got) != len(want) {
			t.Fatalf("handlers saw %d alerts, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].name != want[i].name || !bytes.Equal(got[i].data, want[i].data) || got[i].sender != want[i].sender {
				t.Errorf("alert %d: got %q %x from %d, want %q %x from %d",
					i, got[i].name, got[i].data, got[i].sender, want[i].name, want[i].data, want[i].sender)
			}
		}
		if d := g.Stats().Dropped - before; d != dropped {
			t.Errorf("%d records counted dropped, want %d", d, dropped)
		}
	})
}
