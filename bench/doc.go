// Package bench measures procwire the way its users see it: across
// process boundaries, over real sockets and real shared memory, for a
// stated duration after a warm-up, reporting rates and latency
// percentiles in one table. `procwire bench` is its command-line face.
//
// Go benchmarks (`go test -bench`) in each package measure the pieces;
// this package measures the whole path a client takes, so that the
// numbers can be set beside those of the systems procwire replaces:
// JSONIPC (pixl-ipc's echo table), Dict (OpenResty's lua_shared_dict:
// Get and Set, and two processes at once), MQ (node_ipc's queues, with
// producers in processes of their own), Sem, and Alerts (ngx_lua_ipc's
// all-to-all and round trip, through alert/bench). The rows that need a
// second process re-run the program through a Command, which must lead
// it to Helper.
package bench
