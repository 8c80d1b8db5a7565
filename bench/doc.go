// Package bench measures procwire the way its users see it: across
// process boundaries, over real sockets and real shared memory, for a
// stated duration after a warm-up, reporting rates and latency
// percentiles in one table. `procwire bench` is its command-line face.
//
// Go benchmarks (`go test -bench`) in each package measure the pieces;
// this package measures the whole path a client takes, so that the
// numbers can be set beside those of the systems procwire replaces.
package bench
