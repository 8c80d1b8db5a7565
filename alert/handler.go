package alert

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"unsafe"
)

// HandlerFunc handles one alert. It runs on the member's receive goroutine,
// one alert at a time, so a handler that blocks delays the alerts behind it
// (and, once the inbox fills, the senders). ctx ends when the Group closes.
type HandlerFunc func(ctx context.Context, a *Alert)

// Alert is one received alert.
type Alert struct {
	// Name is the name the sender gave the alert.
	Name string
	// Data is the payload. It is valid only until the handler returns (for
	// small alerts it points into the shared inbox); copy it to keep it.
	Data []byte
	// Sender is the pid of the sending member.
	Sender int

	// from is shared by every alert of one sender, so that an Alert is 56
	// bytes: the receiver allocates one per alert, and for small alerts
	// those bytes set the pace of the garbage collector. Whether the
	// handler still runs is not stored here either (see handling).
	from *origin
}

// origin is a sender as the receiving member knows it: enough to reply
// to that very process, even if its pid is reused later.
type origin struct {
	g     *Group
	start uint64
}

// Message is an alert to send with SendMany.
type Message struct {
	Name string
	Data []byte
}

// Reply sends an alert back to the sender of a, like ngx.ipc.reply. It may
// only be called while the handler that received a runs (from that handler
// or a goroutine it waits for); afterwards it returns ErrNotInHandler. A
// reply to a sender that has left or died returns an error wrapping
// ErrNoMember, even if its pid has been reused since.
func (a *Alert) Reply(ctx context.Context, name string, data []byte) error {
	if a.from == nil || !a.from.g.handling(a) {
		return ErrNotInHandler
	}
	return a.from.g.send(ctx, a.Sender, a.from.start, name, data)
}

// alertID identifies the Alert whose handler runs. It is the Alert's
// address, held as an integer: the receive goroutine stores it twice per
// alert, and an integer store needs no write barrier. Comparing addresses
// is sound because a caller asking about an Alert holds it, so the
// garbage collector cannot have given its memory to another one.
func alertID(a *Alert) uintptr { return uintptr(unsafe.Pointer(a)) }

// handlerTable is immutable once published, so the receive goroutine reads
// it with a single atomic load per alert.
type handlerTable struct {
	byName map[string]handlerEntry
	def    HandlerFunc
}

type handlerEntry struct {
	name string // the map key, reused as Alert.Name to avoid a string allocation per alert
	fn   HandlerFunc
}

type handlers struct {
	mu  sync.Mutex // serializes writers; readers use tab
	tab atomic.Pointer[handlerTable]
}

func (h *handlers) load() *handlerTable {
	if t := h.tab.Load(); t != nil {
		return t
	}
	return &handlerTable{}
}

// update copies the current table, lets fn change the copy, and publishes it.
func (h *handlers) update(fn func(t *handlerTable)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.load()
	t := &handlerTable{byName: maps.Clone(old.byName), def: old.def}
	if t.byName == nil {
		t.byName = make(map[string]handlerEntry)
	}
	fn(t)
	h.tab.Store(t)
}

func setHandler(t *handlerTable, name string, fn HandlerFunc) {
	if fn == nil {
		delete(t.byName, name)
		return
	}
	t.byName[name] = handlerEntry{name: name, fn: fn}
}

// Handle registers fn for alerts named name, replacing any previous handler;
// a nil fn deletes it. It is safe to call at any time, from any goroutine,
// including from a handler.
func (g *Group) Handle(name string, fn HandlerFunc) {
	g.handlers.update(func(t *handlerTable) { setHandler(t, name, fn) })
}

// HandleMap registers every handler in m at once, as Handle does for each
// (nil values delete). Other handlers are kept.
func (g *Group) HandleMap(m map[string]HandlerFunc) {
	g.handlers.update(func(t *handlerTable) {
		for name, fn := range m {
			setHandler(t, name, fn)
		}
	})
}

// HandleDefault sets the handler for alerts whose name has no handler
// (ngx.ipc's default_handler); nil removes it. Such alerts are counted in
// Stats().Unmatched whether or not a default handler takes them.
func (g *Group) HandleDefault(fn HandlerFunc) {
	g.handlers.update(func(t *handlerTable) { t.def = fn })
}
