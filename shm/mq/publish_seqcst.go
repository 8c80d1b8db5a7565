//go:build !amd64 || race

package mq

import "sync/atomic"

// plainStores says that publishFast and releasePlain are plain stores;
// here they are not.
const plainStores = false

// publishFast stores the header word that publishes a record on the
// single-send fast path. Elsewhere than amd64 a plain store may become
// visible before the payload's, so it is a sequentially consistent store,
// as on the other paths. Race builds use it too: the race detector would
// rightly flag a plain store read atomically (the unit tests run rings in
// ordinary memory, which it watches).
func publishFast(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

// releasePlain releases a sendLock with a sequentially consistent store,
// for the same reasons.
func releasePlain(p *uint32) { atomic.StoreUint32(p, lockFree) }
