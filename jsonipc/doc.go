// Package jsonipc serves and calls the pixl-ipc wire protocol: one JSON
// object per line over a Unix stream socket, requests routed to handlers
// by URI pattern. The Node and PHP clients of pixl-ipc work against
// Server unchanged; Client is the Go side.
//
// # Protocol
//
// A request is {"ipcReqID": id, "uri": "...", "data": any, ...}; its
// response is {"ipcReqID": id, "data": result}. The id comes back as
// the exact JSON text it was sent as (a falsy or missing id as null),
// and data is passed to handlers as raw JSON: the built-in echo returns
// it byte for byte. A missing uri is answered with a top-level
// {"code":"no_uri"}, an unknown one with
// {"data":{"code":"no_handler_found"}}, exactly as pixl-ipc does.
// Unlike pixl-ipc, bad input is answered rather than ignored: a line
// that is not a JSON object gets "bad_request" and a line longer than
// Config.MaxMessageSize gets "message_too_large", both with a null id,
// and the connection stays usable. docs/wire-protocol.md in the
// repository is the full specification.
//
// # Guarantees
//
//   - Handlers run concurrently, one goroutine per request, and
//     responses are written in completion order, so a slow handler never
//     holds up others on the same connection. Handlers registered with
//     HandleInline, and the built-ins that answer at once, run on the
//     connection's reader instead and keep request order.
//   - A panicking handler is answered with "handler_error" and the
//     server keeps serving.
//   - Each peer's pid, uid and gid come from the kernel (SO_PEERCRED);
//     Config.AllowUID and Config.AllowGID refuse the others.
//   - The socket file is created with Config.SocketMode (0600 by
//     default), a stale file left by a dead server is replaced, a live
//     server is never displaced (ErrInUse), and the file is removed at
//     shutdown.
//   - Shutdown stops accepting, lets in-flight handlers finish and their
//     responses be written, then half-closes every connection so that
//     blocking clients read a clean end of stream, bounded by
//     Config.ExitTimeout.
//   - Client calls fail at once with ErrDisconnected when the
//     connection is lost, with ErrTimeout after ClientConfig.RequestTimeout
//     and with ErrClosed after Close; server errors are *RemoteError.
//
// # Speed
//
// The request envelope is scanned without reflection and data is never
// decoded unless a handler asks (Request.Decode). Responses queued while
// a write is in progress go out together in the next write, so a busy
// connection costs one system call per batch rather than per response.
//
// The package needs Linux for SO_PEERCRED; elsewhere the server refuses
// every connection with an error saying so.
package jsonipc
