package jsonipc

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Handler answers requests whose uri matched its pattern.
//
// ServeIPC returns the response data, which is JSON-encoded into the
// response's "data" member. A nil result, or a nil json.RawMessage such
// as the Data of a request sent without data, gives a response without
// "data" (as pixl-ipc's callback() does). A [json.RawMessage] result is written
// as it is, after a validity check, without re-encoding. A non-nil error
// answers with a top-level "code" and "message": a *[RemoteError] keeps
// its code, any other error is sent as code "handler_error". A panic is
// recovered and answered as "handler_error"; the server keeps serving.
//
// Handlers run concurrently, each request in its own goroutine, and
// responses are written in completion order. ctx is cancelled when a
// shutdown gives up waiting after Config.ExitTimeout or the connection
// breaks; a client that only ends its sending side still gets what the
// handler returns, so handlers are not cancelled for that. The Request and the
// bytes it refers to must not be used after ServeIPC returns.
type Handler interface {
	ServeIPC(ctx context.Context, req *Request) (any, error)
}

// HandlerFunc adapts an ordinary function to a Handler.
type HandlerFunc func(ctx context.Context, req *Request) (any, error)

// ServeIPC calls f(ctx, req).
func (f HandlerFunc) ServeIPC(ctx context.Context, req *Request) (any, error) { return f(ctx, req) }

// Request is one request message as the server received it.
type Request struct {
	// ID is the raw JSON text of ipcReqID, echoed verbatim in the
	// response; nil when the id is absent or falsy (answered as null).
	ID json.RawMessage
	// URI is the uri member, unquoted.
	URI string
	// Data is the raw JSON text of the data member; nil when absent.
	// It is never decoded unless the handler asks, see Decode.
	Data json.RawMessage
	// Message is the whole request line, for members beyond the
	// protocol's own (pixl-ipc hands handlers the whole object).
	Message json.RawMessage
	// Peer identifies the process at the other end of the connection, as
	// the kernel reported it when the connection was accepted.
	Peer Peer

	conn  *Conn
	buf   *[]byte
	start time.Time
}

// Decode unmarshals Data into v. Missing data decodes as JSON null,
// which leaves v unchanged.
func (r *Request) Decode(v any) error {
	data := []byte(r.Data)
	if data == nil {
		data = []byte("null")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("jsonipc: decoding data of %s: %w", r.URI, err)
	}
	return nil
}

// Conn returns the connection the request arrived on, to push messages
// to that client.
func (r *Request) Conn() *Conn { return r.conn }

// Peer is the identity of a connected process, from SO_PEERCRED.
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

// String formats the peer for logs.
func (p Peer) String() string {
	return "pid=" + strconv.Itoa(int(p.PID)) + " uid=" + strconv.FormatUint(uint64(p.UID), 10) + " gid=" + strconv.FormatUint(uint64(p.GID), 10)
}

// RemoteError is an error carried on the wire as a "code" and a
// "message". A handler returns one to answer with its own code; Client
// returns one when the server answered with an error.
type RemoteError struct {
	Code    string
	Message string
}

// Error formats the code and message.
func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "jsonipc: remote error " + e.Code
	}
	return "jsonipc: remote error " + e.Code + ": " + e.Message
}

// Error codes the server sends.
const (
	CodeNoURI              = "no_uri"               // request without a usable uri (top level)
	CodeNoHandler          = "no_handler_found"     // no pattern matched (inside data, as pixl-ipc)
	CodeBadRequest         = "bad_request"          // invalid JSON or not an object (id null)
	CodeMessageTooLarge    = "message_too_large"    // a line over MaxMessageSize (id null)
	CodeHandlerError       = "handler_error"        // the handler failed or panicked
	CodeTooManyConnections = "too_many_connections" // MaxConnections reached; the connection is closed
	CodePermissionDenied   = "permission_denied"    // peer outside AllowUID/AllowGID; the connection is closed
)

// trusted marks raw JSON the server produced or already validated, so
// the response is built without checking it again.
type trusted []byte

// echo is the built-in /ipcserver/test/echo: data comes back byte for
// byte. Conn.run recognises it and copies the bytes straight into the
// response.
type echo struct{}

func (echo) ServeIPC(_ context.Context, req *Request) (any, error) {
	if req.Data == nil {
		return nil, nil
	}
	return trusted(req.Data), nil
}

// delayOf returns data.delay when it is truthy. pixl-ipc crashes on
// missing data; here any unusable value means no delay.
func delayOf(data []byte) []byte {
	var m map[string]json.RawMessage
	if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &m) != nil || !truthy(m["delay"]) {
		return nil
	}
	return m["delay"]
}

func noDelay(req *Request) bool { return delayOf(req.Data) == nil }

func delayHandler(ctx context.Context, req *Request) (any, error) {
	delay := delayOf(req.Data)
	if delay == nil {
		return trusted(`{"delay":0}`), nil
	}
	text := string(delay)
	if delay[0] == '"' {
		text, _ = strconv.Unquote(text) // {"delay":"20"} waits 20 ms, as in Node
	}
	ms, err := strconv.ParseFloat(text, 64)
	if err != nil || ms < 1 {
		ms = 1 // Node's setTimeout waits about 1 ms for odd values
	}
	t := time.NewTimer(time.Duration(ms * float64(time.Millisecond)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]byte, 0, len(delay)+10)
	out = append(out, `{"delay":`...)
	out = append(out, delay...)
	return trusted(append(out, '}')), nil
}
