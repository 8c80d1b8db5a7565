package dict

import (
	"errors"
	"testing"
	"time"
)

// TestIncrNegativeInitTTL checks the error of a negative init TTL: that of
// resty.core's incr, which tests it before asking for init.
func TestIncrNegativeInitTTL(t *testing.T) {
	d, _, _ := newMemDict(t, 64<<10)
	for _, init := range []*float64{ptr(0.0), nil} {
		_, _, err := d.Incr("k", 1, init, -time.Second)
		if !errors.Is(err, ErrBadInitTTL) || err.Error() != `bad "init_ttl" argument` {
			t.Errorf("Incr(init %v, init TTL -1s) = %v, want ErrBadInitTTL", init, err)
		}
	}
	if _, err := d.TTL("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TTL(k) = %v: the failed Incr created it", err)
	}
}
