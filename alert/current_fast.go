//go:build amd64 && !race

package alert

import "sync/atomic"

// storeCurrent records whose handler runs (see Group.current). On amd64 a
// plain store is enough: stores become visible in program order, so
// whoever sees anything a handler did after it returned also sees that it
// returned, and Reply loads the word atomically. An atomic store would be
// an XCHG, which waits for every store before it to drain, and this runs
// twice per alert.
func storeCurrent(p *uintptr, v uintptr) { *p = v }

func loadCurrent(p *uintptr) uintptr { return atomic.LoadUintptr(p) }
