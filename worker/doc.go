// Package worker runs a program as one master process and N worker
// processes, the way nginx's master and Node's cluster module do.
//
// The same binary plays both roles. main calls [Run]; in the master it
// starts the workers by re-executing the program, and in a worker it calls
// the function it is given:
//
//	func main() {
//		ctx := context.Background()
//		cfg := &worker.Config{
//			Workers:   4,
//			Listeners: []worker.ListenSpec{{Network: "tcp", Address: "127.0.0.1:8080"}},
//		}
//		err := worker.Run(ctx, cfg, func(ctx context.Context, w *worker.Worker) error {
//			srv := &http.Server{Handler: handler}
//			drained := make(chan struct{})
//			go func() {
//				defer close(drained)
//				<-ctx.Done()
//				srv.Shutdown(context.Background()) // bounded by StopTimeout
//			}()
//			if err := srv.Serve(w.Listener(0)); err != http.ErrServerClosed {
//				return err
//			}
//			<-drained
//			return nil
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//	}
//
// # Master
//
// The master opens every listener of [Config.Listeners] once and hands the
// same sockets to every worker, so N workers accept connections on one TCP
// port or Unix socket and the kernel spreads connections among them. While
// the master lives the sockets stay open, so a connection attempt is never
// refused for lack of a worker: it waits in the listen backlog until some
// worker accepts it.
//
// The master supervises its workers:
//
//   - A worker that exits or crashes is started again at once if it had run
//     for at least [Backoff].Reset, otherwise after a delay that doubles
//     from Backoff.Min to Backoff.Max, so a crash loop does not spin.
//   - SIGTERM, SIGINT or the end of ctx stop the master: every worker gets
//     SIGTERM (its context is cancelled), and a worker still running after
//     [Config.StopTimeout] is killed with SIGKILL. Run returns when all
//     workers have been reaped. A second SIGTERM or SIGINT kills the
//     remaining workers at once.
//   - SIGHUP replaces the workers one slot at a time: a new worker is
//     started, and only once it reports ready (see [Worker.Ready]) is the
//     old one sent SIGTERM and given StopTimeout to drain. The program is
//     re-executed from its path, so a reload also picks up a new binary.
//     If a new worker exits or is not ready within [Config.ReadyTimeout],
//     the reload stops there and the remaining old workers keep running.
//
// Workers run in their own process group, so a terminal's Ctrl-C reaches
// only the master, which then stops the workers in order.
//
// # Workers
//
// A worker's context is cancelled when it gets SIGTERM or SIGINT (cause
// [ErrShutdown]) or when its master dies (cause [ErrMasterGone], or
// ErrShutdown if the kernel's SIGTERM is seen first). Master
// death is noticed twice over: the kernel sends SIGTERM to the worker
// (PR_SET_PDEATHSIG, with the forking thread pinned for the life of the
// master) and a control socket shared only with the master reads end of
// file. A worker whose master is gone and whose function has not returned
// within StopTimeout exits with status 1, so no worker outlives its master.
//
// Every worker of one master has the same [Worker.GroupName], which stays the
// same across reloads. With [Config.Alerts] set, every worker is a member
// of the alert group of that name while its function runs
// ([Worker.Alerts]), so old and new workers reach each other during a
// reload, which ngx_lua_ipc's workers cannot.
//
// The package needs Linux; elsewhere [Run] returns an error wrapping
// [errors.ErrUnsupported].
package worker
