package dict

import "math/bits"

// hashKey is the index hash. It is part of the shared-memory layout: every
// process must compute the same value for the same key, so it has a fixed
// seed (hash/maphash is seeded per process and cannot be used). It reads
// eight bytes at a time and finishes with a 64-bit avalanche (the murmur3
// finalizer), which is plenty for a chained table.
func hashKey(s string) uint64 {
	const (
		seed = 0x9e3779b97f4a7c15
		k1   = 0x87c37b91114253d5
		k2   = 0x4cf5ad432745937f
	)
	h := uint64(seed) ^ uint64(len(s))*k1
	for len(s) >= 8 {
		v := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h ^= bits.RotateLeft64(v*k1, 31) * k2
		h = bits.RotateLeft64(h, 27)*5 + 0x52dce729
		s = s[8:]
	}
	var v uint64
	for i := len(s) - 1; i >= 0; i-- {
		v = v<<8 | uint64(s[i])
	}
	h ^= bits.RotateLeft64(v*k2, 33) * k1
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
