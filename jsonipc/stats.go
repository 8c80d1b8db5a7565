package jsonipc

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a server's counters. The first nine fields are
// pixl-ipc's getStats; unlike pixl-ipc, counters are totals since the
// server started (rates are differences between snapshots), and
// MaxConnections is the peak number of simultaneous connections.
type Stats struct {
	Connections        int64             `json:"connections"`        // open now
	Handlers           int               `json:"handlers"`           // registered, built-ins included
	Requests           uint64            `json:"requests"`           // non-blank lines received
	ClientOpen         uint64            `json:"clientOpen"`         // connections accepted
	ClientClose        uint64            `json:"clientClose"`        // connections ended
	MaxConnections     int64             `json:"maxConnections"`     // peak of Connections
	Duration           int64             `json:"duration"`           // milliseconds since the server started
	SlowResponses      uint64            `json:"slowResponses"`      // handlers slower than SlowThreshold
	StreamBackpressure uint64            `json:"streamBackpressure"` // pauses in reading a client that left over 1 MiB of responses unread
	SendTimeouts       uint64            `json:"sendTimeouts"`       // connections closed because the client read nothing for SendTimeout
	InFlight           int64             `json:"inFlight"`           // handlers running now
	BytesIn            uint64            `json:"bytesIn"`            // bytes read from clients
	BytesOut           uint64            `json:"bytesOut"`           // bytes written to clients
	Errors             map[string]uint64 `json:"errors"`             // error responses and refusals, by code
}

type counters struct {
	connections    atomic.Int64
	maxConnections atomic.Int64
	inFlight       atomic.Int64
	requests       atomic.Uint64
	clientOpen     atomic.Uint64
	clientClose    atomic.Uint64
	slow           atomic.Uint64
	backpressure   atomic.Uint64
	sendTimeouts   atomic.Uint64
	bytesIn        atomic.Uint64
	bytesOut       atomic.Uint64

	mu     sync.Mutex // errors are rare; a map under a lock is enough
	errors map[string]uint64
}

func (c *counters) error(code string) {
	c.mu.Lock()
	if c.errors == nil {
		c.errors = make(map[string]uint64)
	}
	c.errors[code]++
	c.mu.Unlock()
}

// Stats returns the server's counters now.
func (s *Server) Stats() Stats {
	st := &s.st
	st.mu.Lock()
	errs := maps.Clone(st.errors)
	st.mu.Unlock()
	if errs == nil {
		errs = map[string]uint64{}
	}
	return Stats{
		Connections:        st.connections.Load(),
		Handlers:           len(*s.routes.Load()),
		Requests:           st.requests.Load(),
		ClientOpen:         st.clientOpen.Load(),
		ClientClose:        st.clientClose.Load(),
		MaxConnections:     st.maxConnections.Load(),
		Duration:           time.Since(s.start).Milliseconds(),
		SlowResponses:      st.slow.Load(),
		StreamBackpressure: st.backpressure.Load(),
		SendTimeouts:       st.sendTimeouts.Load(),
		InFlight:           st.inFlight.Load(),
		BytesIn:            st.bytesIn.Load(),
		BytesOut:           st.bytesOut.Load(),
		Errors:             errs,
	}
}

// logStats logs the counters every StatsInterval until shutdown.
func (s *Server) logStats() {
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			st := s.Stats()
			s.log.Info("jsonipc: stats",
				slog.Int64("connections", st.Connections),
				slog.Uint64("requests", st.Requests),
				slog.Int64("inFlight", st.InFlight),
				slog.Uint64("clientOpen", st.ClientOpen),
				slog.Uint64("clientClose", st.ClientClose),
				slog.Int64("maxConnections", st.MaxConnections),
				slog.Uint64("slowResponses", st.SlowResponses),
				slog.Uint64("streamBackpressure", st.StreamBackpressure),
				slog.Uint64("sendTimeouts", st.SendTimeouts),
				slog.Uint64("bytesIn", st.BytesIn),
				slog.Uint64("bytesOut", st.BytesOut),
				slog.Any("errors", st.Errors))
		case <-s.done:
			return
		}
	}
}
