// Package dict is a dictionary in shared memory that many processes use at
// once, with the semantics of OpenResty's ngx.shared.DICT (lua_shared_dict):
// string, number and boolean values with a uint32 of user flags and a TTL
// in milliseconds; add, replace, incr, lists, get_stale, safe_set,
// flush_expired; least-recently-used eviction when memory runs short.
//
// A Dict lives in a shm segment (/dev/shm/procwire.NAME) of a fixed
// capacity. Every process that opens the same name sees the same items:
//
//	d, err := dict.Open("cache", 16<<20, nil)
//	...
//	forcible, err := d.Set("user:42", dict.String("alice"), time.Minute, 0)
//	v, flags, err := d.Get("user:42")
//
// # Guarantees
//
// Each method is atomic: it runs under a cross-process lock (shm.Mutex),
// except that on amd64 Get and GetBytes first try to read the item without
// it, and return what they read only if the item provably stayed the same
// live item throughout (else they take the lock): reads then write no
// shared memory, so processes reading the same shard do not pass its lock
// between their cores. Likewise a Set without a TTL over an item whose
// place fits the new value claims that item with an atomic
// compare-and-swap of its state instead of taking the lock (each process
// that opens the dictionary gets one of 7 claim slots; later ones always
// lock); every locked operation waits for such a claim to end before it
// touches the item. Atomicity does not extend across calls. A large dictionary is split by
// key hash into shards (Options.Shards; by default one per 4 MiB, at most
// 16), each with its own lock, so that processes working on different keys
// run in parallel; LRU order and eviction are then per shard, and an item
// must fit in one shard. Dictionaries under 8 MiB have one shard by
// default: one LRU list and one lock, as in OpenResty.
//
// A process killed at any instant, even holding the lock, does not wedge or
// corrupt the dictionary. A lock is recovered from a dead holder within
// a bounded time, and the next holder rebuilds the shard's index, LRU list
// and free lists from its heap, which every update keeps readable: an item
// is written completely before one store makes it part of the dictionary;
// a replaced value is written beside the old one or, when it fits the old
// one's place, journalled before it overwrites it in place (recovery, or
// for a claimed item the next operation that needs it, finishes the
// overwrite from the journal); and Incr and Expire change
// their 8-byte field with one store. So an
// operation cut short either happened or did not; a half-written item is
// discarded. Rebuilds are counted (Stats.Recoveries) and logged. Only if
// the heap itself is unreadable (which no crash produces) is the shard
// emptied, counted in Stats.Resets and logged as an error. After a rebuild
// the LRU order is the order of last writes. Check verifies everything.
//
// Open refuses a segment that is not a dictionary of this layout version
// (docs/dict.md specifies the layout byte by byte).
//
// # Differences from OpenResty
//
// Where OpenResty's behaviour is a bug, this package fixes it:
//
//   - TTL and Expire treat an expired item that has not been reclaimed yet
//     as missing (ErrNotFound); OpenResty's ttl reports a negative TTL and
//     its expire revives the item.
//   - A positive TTL under a millisecond expires after one millisecond;
//     OpenResty truncates it to 0, which means "never".
//   - FreeSpace counts every free chunk, not only whole free pages.
//   - Freed memory coalesces (a buddy allocator), so a dictionary that held
//     small items can hold large ones again once they are gone.
//   - When memory is so fragmented that evicting the 30 least recently used
//     items does not make room (OpenResty then fails with "no memory"), a
//     store also evicts the items around the least recently used one, in the
//     aligned region it needs, and succeeds.
//
// In Go terms: a missing key is ErrNotFound (where ngx.shared.DICT returns
// nil without an error, a binding maps ErrNotFound back to nil), LPop and
// RPop of a missing key return ErrNotFound, and Keys(0) returns every key
// (get_keys defaults to 1024; a binding passes that).
//
// Values are copied in and out; GetBytes appends into a caller's buffer
// and does not allocate. Expired items are reclaimed lazily: each store
// frees up to two expired items from the LRU tail, and FlushExpired frees
// them all. When a store lacks memory it evicts up to 30 items from the
// LRU tail, unexpired ones too, and reports forcible; SafeSet, SafeAdd and
// the list pushes never evict.
//
// Eviction is least recently used first, approximated the CLOCK way: a
// write of a new key puts its item at the head of the LRU list, a write
// over an existing item leaves it in its place, marked referenced, and a
// read only marks the item referenced (OpenResty moves it to the head, which makes every read
// write to four items), and eviction gives a referenced tail item a second
// pass at the head instead of evicting it. Items never read go in the
// order they were written; items read since they were last at the head
// outlive them.
//
// The layout is little-endian with 32-bit offsets: capacity is limited to
// MaxCapacity (4 GiB), keys to MaxKeyLen (65535) bytes. Dictionaries need
// Linux (shared memory and futexes); elsewhere Open returns an error.
package dict
