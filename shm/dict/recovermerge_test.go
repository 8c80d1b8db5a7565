package dict

import (
	"strings"
	"testing"
)

// TestRecoverMergesFreeBuddies kills a holder (simulated) after it split
// the only large chunk to allocate a small item and before it committed
// it. The rebuild frees the half-written chunk, and must merge it with
// its free buddies as free does: otherwise the memory stays split, and
// even an empty dictionary cannot store an item of the largest class.
func TestRecoverMergesFreeBuddies(t *testing.T) {
	d, mu, _ := newMemDict(t, MinCapacity)
	tb := &d.shards[0]
	big := classSize(tb.maxClass)
	// Take every free chunk but those of the largest class, so that the
	// small item below splits one of those.
	var keys []string
	for c := uint8(0); c < tb.maxClass; c++ {
		for tb.u32(offFreeLists+4*uint32(c)) != 0 {
			k := string(rune('a'+len(keys)%26)) + strings.Repeat("k", len(keys)/26)
			vlen := classSize(c) - align8(chKey+uint32(len(k)))
			if err := d.SafeSet(k, String(strings.Repeat("v", int(vlen))), 0, 0); err != nil {
				t.Fatalf("SafeSet(%s, %d bytes): %v", k, vlen, err)
			}
			keys = append(keys, k)
		}
	}
	o, _ := tb.newItem("new", 1, true)
	if o == 0 || tb.u8(o+chClass) != 0 {
		t.Fatalf("half-written item at %d", o)
	}
	tb.writeItem(o, "new", hashKey("new"), TypeString, 1, 0, 0)
	// killed before the commit
	mu.failNext()
	for _, k := range keys {
		if err := d.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := d.Stats(); st.Recoveries != 1 || st.Items != 0 {
		t.Fatalf("stats after the crash: %+v", st)
	}
	vlen := big - align8(chKey+1)
	if err := d.SafeSet("B", String(strings.Repeat("v", int(vlen))), 0, 0); err != nil {
		t.Errorf("SafeSet of a %d-byte item in an empty dictionary with %d bytes free: %v", big, d.FreeSpace(), err)
	}
}
