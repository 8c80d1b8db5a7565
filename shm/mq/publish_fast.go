//go:build amd64 && !race

package mq

// plainStores says that publishFast and releasePlain are plain stores: a
// producer may then skip the store-load fence of a send, if the consumer
// makes up for it (see producer.fenceFree).
const plainStores = true

// publishFast stores the header word that publishes a record on the
// single-send fast path. On amd64 a plain store is enough to publish:
// stores are not reordered with earlier stores, so the payload and
// terminator are visible first. It saves the XCHG an atomic store costs,
// on the path where every nanosecond shows. The store-load order the
// wake-up protocol needs comes from elsewhere: the consumer's membarrier
// or the producer's atomic unlock (see fastSend).
func publishFast(p *uint64, v uint64) { *p = v }

// releasePlain releases a sendLock with a plain store, a release store on
// amd64 (see sendLock.unlockFast).
func releasePlain(p *uint32) { *p = lockFree }
