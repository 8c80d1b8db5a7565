package sem

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm"
)

// FuzzLayout runs the semaphore operations on an arbitrary data area (with
// a free mutex, which a dead holder would leave after recovery): a corrupt
// segment must not make them panic, and the count must stay in range.
func FuzzLayout(f *testing.F) {
	f.Add(make([]byte, 128), 0, false)
	f.Add([]byte{5, 0, 0, 0}, 3, true)
	f.Add([]byte{0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 1, false)
	f.Fuzz(func(t *testing.T, data []byte, ops int, undo bool) {
		var l layout
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&l)), unsafe.Sizeof(l))
		copy(raw, data)
		clear(l.mu[:])
		s := &Sem{name: "fuzz", l: &l, mu: shm.MutexAt(l.mu[:]), self: proc.Self(), slot: -1, sleeper: make(chan struct{}, 1)}
		if undo {
			if s.register() != nil {
				return // table full of live-looking entries
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		for i := range ops % 8 {
			switch i % 4 {
			case 0:
				s.TryAcquire()
			case 1:
				s.Release()
			case 2:
				s.Acquire(ctx)
			case 3:
				s.repair()
			}
			if v := s.Value(); v < 0 || v > MaxValue {
				t.Fatalf("value %d out of range", v)
			}
		}
	})
}
