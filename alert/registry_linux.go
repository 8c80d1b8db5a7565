//go:build linux

package alert

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/futex"
	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm"
	"github.com/procwire/procwire/shm/mq"
)

// The group registry is one shared-memory segment, procwire.alert.<group>
// (kind shm.KindAlert, version 1). Its data area:
//
//	0    shm.Mutex (64 bytes) guarding everything below
//	64   u32 generation, bumped (and futex-woken) on every membership change
//	68   u32 removed: 1 once the last member unlinked the segment
//	128  MaxMembers slots of 32 bytes:
//	     0 u32 pid (0 = free) | 4 u32 inbox max message | 8 u64 start time | 16 i64 joined (Unix ns)
//	     24 u32 life word (see lifeline; 0 = none) | 28 reserved
const (
	regVersion    = 1
	regGenOff     = 64
	regRemovedOff = 68
	regSlotsOff   = 128
	slotSize      = 32
	slotLifeOff   = 24
	regSize       = regSlotsOff + MaxMembers*slotSize
)

type slot struct {
	id     proc.ID
	maxMsg int
	joined time.Time
	index  int // in the slot table
}

type registry struct {
	group string
	name  string
	seg   *shm.Segment
	data  []byte
	mu    *shm.Mutex
	gen   *uint32
}

func registryName(group string) string { return "alert." + group }

func inboxName(group string, id proc.ID) string {
	return fmt.Sprintf("alert.%s.%d.%d", group, id.PID, id.Start)
}

// openRegistry attaches to (or creates) the group's registry and returns it
// locked. A registry that its last member unlinked while we attached is
// closed and opened afresh, so a joiner never ends up alone in a dead segment.
func openRegistry(ctx context.Context, group string, mode os.FileMode) (*registry, error) {
	for {
		seg, err := shm.Open(registryName(group), regSize, &shm.Options{Mode: mode, Kind: shm.KindAlert, Version: regVersion})
		if err != nil {
			return nil, fmt.Errorf("alert: open registry of group %q: %w", group, err)
		}
		r := newRegistry(group, seg)
		if err := r.lock(ctx); err != nil {
			seg.Close()
			return nil, err
		}
		if !r.removed() {
			return r, nil
		}
		r.mu.Unlock()
		seg.Close()
	}
}

func newRegistry(group string, seg *shm.Segment) *registry {
	d := seg.Data()
	return &registry{
		group: group,
		name:  registryName(group),
		seg:   seg,
		data:  d,
		mu:    shm.MutexAt(d[:shm.MutexSize]),
		gen:   (*uint32)(unsafe.Pointer(&d[regGenOff])),
	}
}

// lock takes the registry lock. If the previous holder died holding it, the
// slot table may be half-written, so dead or torn entries are pruned.
func (r *registry) lock(ctx context.Context) error {
	recovered, err := r.mu.Lock(ctx)
	if err != nil {
		return fmt.Errorf("alert: lock registry %s: %w", r.name, err)
	}
	if recovered {
		r.prune()
	}
	return nil
}

func (r *registry) unlock() { r.mu.Unlock() }

func (r *registry) slotBytes(i int) []byte {
	off := regSlotsOff + i*slotSize
	return r.data[off : off+slotSize]
}

func (r *registry) readSlot(i int) (slot, bool) {
	b := r.slotBytes(i)
	pid := binary.LittleEndian.Uint32(b[0:])
	if pid == 0 {
		return slot{}, false
	}
	return slot{
		id:     proc.ID{PID: int32(pid), Start: binary.LittleEndian.Uint64(b[8:])},
		maxMsg: int(binary.LittleEndian.Uint32(b[4:])),
		joined: time.Unix(0, int64(binary.LittleEndian.Uint64(b[16:]))),
		index:  i,
	}, true
}

// slotWords returns pointers to slot i's pid, start time and life word,
// which senders load without the lock (see Group.departed).
func (r *registry) slotWords(i int) (pid *uint32, start *uint64, life *uint32) {
	b := r.slotBytes(i)
	return (*uint32)(unsafe.Pointer(&b[0])), (*uint64)(unsafe.Pointer(&b[8])), (*uint32)(unsafe.Pointer(&b[slotLifeOff]))
}

// slotJoined returns a pointer to slot i's joined time (see Group.departed).
func (r *registry) slotJoined(i int) *int64 {
	return (*int64)(unsafe.Pointer(&r.slotBytes(i)[16]))
}

// members returns the live-looking slots. The caller holds the lock.
func (r *registry) members() []slot {
	var out []slot
	for i := range MaxMembers {
		if s, ok := r.readSlot(i); ok {
			out = append(out, s)
		}
	}
	return out
}

// add writes s into a free slot, with l (if not nil) armed on its life
// word. The pid is written last so that a holder dying half-way leaves a
// free slot, not a torn member; the start time and life word before it, so
// that a sender that sees a new life word also sees the new start time
// (see Group.departed).
func (r *registry) add(s slot, l *lifeline) error {
	for i := range MaxMembers {
		b := r.slotBytes(i)
		if binary.LittleEndian.Uint32(b[0:]) != 0 {
			continue
		}
		pid, start, life := r.slotWords(i)
		binary.LittleEndian.PutUint32(b[4:], uint32(s.maxMsg))
		// Atomic: senders compare it with the joined time they know, to
		// tell a member that left and joined again (same id) from the one
		// they opened the inbox of (see Group.departed).
		atomic.StoreInt64(r.slotJoined(i), s.joined.UnixNano())
		atomic.StoreUint64(start, s.id.Start)
		var tid uint32
		if l != nil {
			l.arm(life)
			tid = l.tid
		}
		atomic.StoreUint32(life, tid)
		atomic.StoreUint32(pid, uint32(s.id.PID))
		r.bump()
		return nil
	}
	return fmt.Errorf("%w: %d members", ErrGroupFull, MaxMembers)
}

// remove clears id's slot and reports whether the group is now empty.
func (r *registry) remove(id proc.ID) (empty bool) {
	empty = true
	for i := range MaxMembers {
		s, ok := r.readSlot(i)
		if !ok {
			continue
		}
		if s.id == id {
			r.clear(i)
			continue
		}
		empty = false
	}
	return empty
}

func (r *registry) clear(i int) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.slotBytes(i)[0])), 0)
	r.bump()
}

// prune removes members whose process is gone (safe against pid reuse),
// or whose life word says their lifeline thread died (the process exec'd
// another program, which keeps its pid but not its membership), and
// unlinks their inboxes. The caller holds the lock. It returns how many it
// removed.
func (r *registry) prune() int {
	n := 0
	for i := range MaxMembers {
		s, ok := r.readSlot(i)
		if !ok {
			continue
		}
		if _, _, life := r.slotWords(i); atomic.LoadUint32(life)&ownerDied == 0 && proc.Alive(s.id) {
			continue
		}
		// The inbox goes first: if this process dies in between, the slot
		// is still there for the next pruner, rather than an inbox that
		// no slot names any more. Best effort: it is garbage either way.
		_ = mq.Remove(inboxName(r.group, s.id))
		r.clear(i)
		n++
	}
	return n
}

// bump publishes a membership change and wakes every member's watcher.
func (r *registry) bump() {
	atomic.AddUint32(r.gen, 1)
	_, _ = futex.Wake(r.gen, 1<<30)
}

func (r *registry) generation() uint32 { return atomic.LoadUint32(r.gen) }

// markRemoved unlinks the registry; the caller holds the lock and has just
// removed the last member. Joiners that already attached see the flag and
// start over with a fresh segment.
func (r *registry) markRemoved() {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.data[regRemovedOff])), 1)
	_ = shm.Remove(r.name)
	r.bump()
}

func (r *registry) removed() bool {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[regRemovedOff]))) != 0
}

func (r *registry) close() error { return r.seg.Close() }
