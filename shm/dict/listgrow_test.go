package dict

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestListGrowsPastSlack pushes onto one list until memory runs out. A
// list grows by copying into a larger chunk while the old one still
// holds it; when no chunk has room for twice its elements, a chunk that
// just holds them must do, or the list stops at a sixth of the memory
// with most of it free.
func TestListGrowsPastSlack(t *testing.T) {
	const capacity = 1 << 20
	d, _, _ := newMemDict(t, capacity)
	pad := strings.Repeat("e", 1000)
	n := 0
	for ; ; n++ {
		l, err := d.RPush("l", String(fmt.Sprint(pad, n)))
		if errors.Is(err, ErrNoMemory) {
			break
		}
		if err != nil || l != n+1 {
			t.Fatalf("RPush #%d = %d, %v", n, l, err)
		}
	}
	if n*1000 < capacity/4 {
		t.Errorf("the list stopped at %d elements of 1000 bytes in %d bytes, with %d free", n, capacity, d.FreeSpace())
	}
	for i := 0; i < n; i++ {
		if v, err := d.LPop("l"); err != nil || v != String(fmt.Sprint(pad, i)) {
			t.Fatalf("LPop #%d = %.20v..., %v", i, v, err)
		}
	}
	if _, err := d.LLen("l"); err != nil {
		t.Fatal(err)
	}
}
