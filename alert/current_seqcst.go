//go:build !amd64 || race

package alert

import "sync/atomic"

// storeCurrent records whose handler runs (see Group.current). Elsewhere
// than amd64 a plain store could become visible before the handler's own
// writes, so it is an atomic store; race builds use it too, since the race
// detector rightly flags a plain store read atomically.
func storeCurrent(p *uintptr, v uintptr) { atomic.StoreUintptr(p, v) }

func loadCurrent(p *uintptr) uintptr { return atomic.LoadUintptr(p) }
