//go:build !amd64

package dict

// peekReads is false where the hardware may reorder loads or stores: every
// read takes the lock (see peek).
const peekReads = false
