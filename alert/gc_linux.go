//go:build linux

package alert

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/procwire/procwire/internal/proc"
	"github.com/procwire/procwire/shm"
	"github.com/procwire/procwire/shm/mq"
)

// collectGarbage removes what processes killed with SIGKILL can leave in
// /dev/shm when no member outlived them to prune it: inboxes whose owner is
// dead, and registries without a live member. It runs at every Join, so a
// host never accumulates them. Removing a registry takes its lock and sets
// its removed flag, exactly as the last member leaving does, so a process
// joining it at the same moment starts over with a fresh one.
func collectGarbage(ctx context.Context, log *slog.Logger) {
	ents, err := os.ReadDir(shm.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), "procwire.alert.")
		if !ok {
			continue
		}
		parts := strings.Split(name, ".")
		switch len(parts) {
		case 3: // inbox: group.pid.start
			pid, err1 := strconv.ParseInt(parts[1], 10, 32)
			start, err2 := strconv.ParseUint(parts[2], 10, 64)
			if err1 != nil || err2 != nil || proc.Alive(proc.ID{PID: int32(pid), Start: start}) {
				continue
			}
			if mq.Remove("alert."+name) == nil {
				log.Debug("alert: removed inbox of dead process", "segment", name)
			}
		case 1: // registry
			if checkGroup(name) != nil {
				continue
			}
			seg, err := shm.Attach(registryName(name), &shm.Options{Kind: shm.KindAlert, Version: regVersion})
			if err != nil {
				continue
			}
			r := newRegistry(name, seg)
			lctx, cancel := context.WithTimeout(ctx, time.Second)
			if r.lock(lctx) == nil {
				r.prune()
				if len(r.members()) == 0 && !r.removed() {
					r.markRemoved()
					log.Debug("alert: removed registry without live members", "group", name)
				}
				r.unlock()
			}
			cancel()
			seg.Close()
		}
	}
}
