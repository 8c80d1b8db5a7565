//go:build linux && amd64

package dict

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm"
)

// userfaultfd(2), just enough to stop a goroutine at its first access to
// a chosen page and let it go on later: minor faults on shared memory
// (a page zapped by MADV_DONTNEED from one mapping of a memfd faults in
// that mapping only) and missing faults on an anonymous page.
const (
	uffdAPI              = 0xAA
	uffdioAPI            = 0xC018AA3F
	uffdioRegister       = 0xC020AA00
	uffdioZeropage       = 0xC020AA04
	uffdioContinue       = 0xC020AA07
	uffdRegisterMissing  = 1 << 0
	uffdRegisterMinor    = 1 << 2
	uffdFeatureMinorShm  = 1 << 10
	uffdEventPagefault   = 0x12
	uffdPagefaultFlagMin = 1 << 2
)

type uffd struct{ fd int }

func newUffd(t *testing.T) *uffd {
	t.Helper()
	// UFFD_USER_MODE_ONLY (1): every fault here is a user-mode access,
	// and it lets unprivileged processes use userfaultfd.
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|1, 0, 0)
	if errno != 0 {
		t.Skipf("userfaultfd: %v", errno)
	}
	u := &uffd{fd: int(fd)}
	api := [3]uint64{uffdAPI, uffdFeatureMinorShm, 0}
	if err := u.ioctl(uffdioAPI, unsafe.Pointer(&api)); err != nil {
		unix.Close(u.fd)
		t.Skipf("userfaultfd API with minor faults on shmem: %v", err)
	}
	return u
}

func (u *uffd) ioctl(req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(u.fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

func (u *uffd) register(t *testing.T, b []byte, mode uint64) {
	t.Helper()
	reg := [4]uint64{uint64(uintptr(unsafe.Pointer(&b[0]))), uint64(len(b)), mode, 0}
	if err := u.ioctl(uffdioRegister, unsafe.Pointer(&reg)); err != nil {
		t.Skipf("userfaultfd register (mode %d): %v", mode, err)
	}
}

// await returns the address of the next page fault.
func (u *uffd) await(t *testing.T) (addr uintptr, minor bool) {
	t.Helper()
	var msg [32]byte
	for {
		n, err := unix.Read(u.fd, msg[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != len(msg) {
			t.Fatalf("read userfaultfd: %d, %v", n, err)
		}
		if msg[0] != uffdEventPagefault {
			continue
		}
		flags := *(*uint64)(unsafe.Pointer(&msg[8]))
		return uintptr(*(*uint64)(unsafe.Pointer(&msg[16]))), flags&uffdPagefaultFlagMin != 0
	}
}

// cont maps page p of a shmem mapping again (after a minor fault).
func (u *uffd) cont(t *testing.T, p []byte) {
	t.Helper()
	arg := [4]uint64{uint64(uintptr(unsafe.Pointer(&p[0]))), uint64(len(p)), 0, 0}
	if err := u.ioctl(uffdioContinue, unsafe.Pointer(&arg)); err != nil {
		t.Fatalf("UFFDIO_CONTINUE: %v", err)
	}
}

// zero maps a zero page at anonymous page p (after a missing fault).
func (u *uffd) zero(t *testing.T, p []byte) {
	t.Helper()
	arg := [4]uint64{uint64(uintptr(unsafe.Pointer(&p[0]))), uint64(len(p)), 0, 0}
	if err := u.ioctl(uffdioZeropage, unsafe.Pointer(&arg)); err != nil {
		t.Fatalf("UFFDIO_ZEROPAGE: %v", err)
	}
}

func addrOf(b []byte, off int) uintptr { return uintptr(unsafe.Pointer(&b[off])) }

const (
	page    = 4096
	rigSlot = 1 // the claimer's claim slot
)

// stealRig is a dictionary seen through two mappings of one memfd: dd
// (locked operations) and dc (claims by slot rigSlot with identity
// owner), over which userfaultfd stops goroutines at chosen pages (see
// TestClaimStolenByDelete). Key k holds oldV in shard 1 at item o, never
// read; its LRU predecessor's header is on page pageD of dd's view.
// pageC of dc's view holds the claimer's journal value from its 64th
// byte; pageO is o's page in dc's view; dc's lock word of shard 1 is
// read from lockWordPage, which is missing until zeroed.
type stealRig struct {
	t                                 *testing.T
	u                                 *uffd
	dd, dc                            *Dict
	sh                                *table // shard 1 seen by dd
	k                                 string
	oldV, newV                        Value
	o                                 uint32
	pageC, pageD, pageO, lockWordPage []byte
}

func newStealRig(t *testing.T, owner proc.ID) *stealRig {
	t.Helper()
	if os.Getpagesize() != 4096 {
		t.Skip("page size")
	}
	procs := runtime.GOMAXPROCS(8) // faulted goroutines keep their P
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	// Two shards; shard 1 starts so that the value of journal slot 1 of
	// shard 1 crosses a page boundary 64 bytes in: the claimer then
	// touches the page after it first when it copies its new value into
	// the entry, after its lookup and before its CAS. Shards of about
	// 1 MiB put the bucket array and the heap on other pages.
	size := 2816 + page*256
	capacity := regionHdrSize + 2*size
	mfd, err := unix.MemfdCreate("claimsteal", unix.MFD_CLOEXEC)
	if err != nil {
		t.Skipf("memfd: %v", err)
	}
	t.Cleanup(func() { unix.Close(mfd) })
	mapLen := (capacity + page - 1) &^ (page - 1)
	if err := unix.Ftruncate(mfd, int64(mapLen)); err != nil {
		t.Fatal(err)
	}
	var maps [][]byte
	mapping := func() []byte {
		b, err := unix.Mmap(mfd, 0, mapLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Munmap(b) })
		maps = append(maps, b)
		return b[:capacity]
	}
	viewD, viewC := mapping(), mapping()
	if err := initRegion(viewD, 2); err != nil {
		t.Fatal(err)
	}
	lockAt := func(b []byte) locker { return shm.MutexAt(b) }
	opts := &Options{Logger: discardLogger()}
	dd, err := newDict("deleter", viewD, lockAt, opts)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := newDict("claimer", viewC, lockAt, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(dd.shards) != 2 || len(dd.shards[1].data) != size {
		t.Fatalf("shards: %d of %d bytes", len(dd.shards), len(dd.shards[1].data))
	}
	shardOff := regionHdrSize + size // shard 1 in the region
	valueAt := shardOff + offJournal + rigSlot*journalSlotSize + jValue
	if (valueAt+64)%page != 0 {
		t.Fatalf("journal value at %d: no page boundary 64 bytes in", valueAt)
	}
	lockWordPage, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(lockWordPage) })
	for i := range dd.shards {
		dd.shards[i].word = (*uint64)(unsafe.Pointer(&dd.shards[i].data[offMutex]))
		dc.shards[i].word = (*uint64)(unsafe.Pointer(&dc.shards[i].data[offMutex]))
	}
	dc.shards[1].word = (*uint64)(unsafe.Pointer(&lockWordPage[0]))
	dc.claim = claimer{j: rigSlot, pid: uint32(owner.PID), start: owner.Start}

	// Keys of shard 1 whose buckets are on pages neither goroutine is
	// stopped at.
	pageOf := func(off uint32) int { return (shardOff + int(off)) / page }
	sh := &dd.shards[1]
	key := func(prefix string) string {
		for i := 0; ; i++ {
			k := fmt.Sprintf("%s%d", prefix, i)
			h := hashKey(k)
			if shardOf(h)&1 == 1 && pageOf(sh.bucket(h)) != (valueAt+64)/page && pageOf(sh.bucket(h)) != pageOf(offMutex) {
				return k
			}
		}
	}
	k, p := key("k"), key("p")
	oldV, newV := String(strings.Repeat("o", 100)), String(strings.Repeat("n", 100))
	if _, err := dd.Set(k, oldV, 0, 0); err != nil {
		t.Fatal(err)
	}
	// p, written after k, is k's LRU predecessor: the Delete's lruUnlink
	// writes p's header first after its last settle of k's item.
	if _, err := dd.Set(p, String(strings.Repeat("p", 3000)), 0, 0); err != nil {
		t.Fatal(err)
	}
	o := sh.find(k, hashKey(k))
	po := sh.find(p, hashKey(p))
	if sh.u32(o+chPrev) != po || pageOf(po) == pageOf(o) || pageOf(po) == pageOf(sh.bucket(hashKey(k))) ||
		pageOf(po) == pageOf(offMutex) || pageOf(po) == (valueAt+64)/page {
		t.Fatalf("layout: item %d (page %d), predecessor %d (page %d)", o, pageOf(o), po, pageOf(po))
	}

	// Map every page in both views now: a page first touched later would
	// fault too.
	for _, m := range maps {
		for i := 0; i < len(m); i += page {
			atomic.AddUint32((*uint32)(unsafe.Pointer(&m[i])), 0)
		}
	}
	u := newUffd(t)
	t.Cleanup(func() { unix.Close(u.fd) })
	u.register(t, maps[0], uffdRegisterMinor)
	u.register(t, maps[1], uffdRegisterMinor)
	u.register(t, lockWordPage, uffdRegisterMissing)
	pageC := viewC[(valueAt+64)/page*page:][:page]
	pageD := viewD[pageOf(po)*page:][:page]
	pageO := viewC[pageOf(o)*page:][:page]
	r := &stealRig{t: t, u: u, dd: dd, dc: dc, sh: sh, k: k, oldV: oldV, newV: newV, o: o,
		pageC: pageC, pageD: pageD, pageO: pageO, lockWordPage: lockWordPage}
	return r
}

func (r *stealRig) zap(b []byte) {
	if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
		r.t.Fatal(err)
	}
}

// expect waits for the next fault, which must be on page want.
func (r *stealRig) expect(what string, want []byte) {
	r.t.Helper()
	addr, _ := r.u.await(r.t)
	if addr&^(page-1) != addrOf(want, 0) {
		r.t.Fatalf("%s: fault at %#x, want page %#x", what, addr, addrOf(want, 0))
	}
}

// TestClaimStolenByDelete shows a claimed overwrite (setClaimed) writing
// into a chunk that a Delete freed under it.
//
// The interleaving, which a claimer descheduled for a moment right after
// its CAS can hit in a real run:
//
//  1. the claimer looks the key up (item o, state 3) and is about to CAS;
//  2. a Delete takes the lock, settles o (not claimed: state 3), unlinks it
//     from its chain and is between release's settle and free;
//  3. the claimer's CAS succeeds (3 -> 4+j): nothing in the Delete will
//     look at the state again;
//  4. the Delete frees o (state 1, merged with its free buddies) and
//     unlocks;
//  5. the claimer now reads the lock word: 0. The shard's seq did not
//     change (a delete does not raise it), o's sequence number is still S
//     (free does not write it) and its expiry 0, so the claim goes on and
//     applyJournal stores state 3 into the free chunk.
//
// Dekker's argument of docs/dict.md §5b only says the claimer sees the
// lock if it is still held when the claimer looks, so the claimer must
// also check that its claim state is still on the item (it used not to).
//
// The test makes the interleaving deterministic with userfaultfd: the
// claimer and the deleter use two mappings of one memfd, and each is
// stopped at its first access to a page zapped from its own mapping; the
// claimer's lock-word pointer points into an anonymous page that is
// missing until the Delete is over.
func TestClaimStolenByDelete(t *testing.T) {
	r := newStealRig(t, proc.Self())
	u, dd, dc, sh, k, newV, o := r.u, r.dd, r.dc, r.sh, r.k, r.newV, r.o
	pageC, pageD, lockWordPage := r.pageC, r.pageD, r.lockWordPage
	zap, expect := r.zap, r.expect
	const j = rigSlot
	// 1. The claimer looks k up and stops writing its entry's value.
	zap(pageC)
	setErr := make(chan error, 1)
	go func() {
		_, err := dc.Set(k, newV, 0, 0)
		setErr <- err
	}()
	expect("claimer before its CAS", pageC)

	// 2. The Delete stops after its last settle of the item.
	zap(pageD)
	deleted := make(chan error, 1)
	go func() { deleted <- dd.Delete(k) }()
	expect("deleter after settling the item", pageD)
	if st := sh.state(o); st != stateLive {
		t.Fatalf("item state %d while the Delete holds it settled", st)
	}

	// 3. The claimer CASes and stops reading the lock word.
	u.cont(t, pageC)
	expect("claimer after its CAS", lockWordPage)
	if st := sh.state(o); st != stateRewrite+j {
		t.Fatalf("item state %d after the claimer's CAS, want %d", st, stateRewrite+j)
	}

	// 4. The Delete frees the item and unlocks.
	u.cont(t, pageD)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if w := *sh.word; w != 0 {
		t.Fatalf("lock word %#x after the Delete", w)
	}

	// 5. The claimer reads the lock word: 0, as it now is.
	u.zero(t, lockWordPage)
	if err := <-setErr; err != nil {
		t.Fatal(err)
	}

	// Buggy: the freed chunk is live again (state 3) but in no chain and
	// still on a free list. (Fixed, the claim backs off and the Set takes
	// the lock, which may well reuse the chunk.)
	if err := dd.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestDeadClaimOnReusedChunk shows the claim of a claimer killed right
// after its CAS being finished (endClaim) into another key's item.
//
//  1. the claimer looks k up (item o, sequence number S, shard seq H),
//     writes its entry (new sequence number max(H, S)+1 = H+1), checks
//     that the shard's seq is still H, and is about to CAS;
//  2. k is deleted and another key y of the same class is stored: its
//     item lands at o and is numbered H+1, as the first item written
//     since H;
//  3. the claimer's CAS succeeds on y's item (same class, type, flags and
//     reference byte as k's had), and the claimer is killed;
//  4. the next locked operation on y finds a dead claim whose entry names
//     o and whose new sequence number is y's: endClaim takes it for a
//     claim that had already stored its sequence number and copies k's
//     new value into y.
//
// A live claimer would have seen the shard's seq change and backed off.
func TestDeadClaimOnReusedChunk(t *testing.T) {
	r := newStealRig(t, deadID())
	// 1. The claimer stops at its CAS, its checks before the CAS done.
	r.zap(r.pageC)
	setErr := make(chan error, 1)
	go func() {
		_, err := r.dc.Set(r.k, r.newV, 0, 0)
		setErr <- err
	}()
	r.expect("claimer writing its entry", r.pageC)
	r.zap(r.pageO)
	r.u.cont(r.t, r.pageC)
	r.expect("claimer at its CAS", r.pageO)

	// 2. k is deleted and y's item takes its chunk.
	if err := r.dd.Delete(r.k); err != nil {
		t.Fatal(err)
	}
	y, yV := "", String(strings.Repeat("y", 100))
	for i := 0; y == ""; i++ {
		if c := fmt.Sprintf("y%d", i); shardOf(hashKey(c))&1 == 1 {
			y = c
		}
	}
	if _, err := r.dd.Set(y, yV, 0, 0); err != nil {
		t.Fatal(err)
	}
	if o := r.sh.find(y, hashKey(y)); o != r.o {
		t.Fatalf("layout: y's item at %d, k's was at %d", o, r.o)
	}

	// 3. The claimer's CAS; it stops reading the lock word, and is taken
	// for dead from now on (its entry names deadID()).
	r.u.cont(r.t, r.pageO)
	r.expect("claimer after its CAS", r.lockWordPage)
	if st := r.sh.state(r.o); st != stateRewrite+rigSlot {
		t.Fatalf("y's item has state %d after the claimer's CAS, want %d", st, stateRewrite+rigSlot)
	}

	// 4. A Get of y finishes the dead claim.
	v, _, err := r.dd.Get(y)
	if err != nil || v != yV {
		s, _ := v.Str()
		t.Errorf("Get(%q) = %.20q..., %v; want %.20q...", y, s, err, strings.Repeat("y", 100))
	}

	// Let the claimer go on: it sees the shard's seq changed, and stores k
	// under the lock.
	r.u.zero(r.t, r.lockWordPage)
	if err := <-setErr; err != nil {
		t.Fatal(err)
	}
	if err := r.dd.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}
