// Package alert sends named alerts between the processes of one host: the
// model of ngx_lua_ipc (ngx.ipc) for Go programs, without its faults.
//
// A process joins a named group with Join and becomes a member. Members
// Send an alert (a name and some bytes) to one member by pid, or Broadcast
// it to every member including themselves. Each member registers handlers
// by name with Handle or HandleMap (a nil handler deletes), plus an
// optional default handler for the names nobody handles. A handler gets an
// *Alert with the Name, the Data and the Sender's pid, and can answer with
// Reply.
//
// # Transport
//
// Every member owns an inbox: a shared-memory queue (shm/mq) named
// procwire.alert.<group>.<pid>.<start> in /dev/shm, drained by one receive
// goroutine. Each sending process gets a lane of its own in it (up to
// Config.Lanes of them; more share one under a lock), so a small alert
// costs one copy into the sender's lane and one store to publish it: no
// locked instruction on memory shared with other senders, and no system
// call while the receiver is awake; a sleeping receiver is woken by a
// futex. Each inbox message carries one alert, or, from SendMany, many
// small ones packed back to back, which shares the per-message and
// per-call costs among them: for small alerts SendMany is still the
// fastest way to send many alerts to one member. The group's membership lives in a
// registry segment, procwire.alert.<group>, guarded by a robust
// cross-process lock. Members watch each other with pidfds, so a member
// that dies is removed from the registry, and its inbox unlinked, as soon
// as it dies, by whichever member notices first. The byte layouts are in
// docs/alert.md.
//
// # Delivery rules
//
//   - Order is kept per sender→receiver pair: alerts that one goroutine
//     sends to one member, with Send or SendMany, are handled in the order
//     sent. There is no order across senders.
//   - Handlers of one member run one at a time on its receive goroutine,
//     like ngx.ipc's; a slow handler delays that member's later alerts and,
//     once its inbox is full, its senders.
//   - Alert.Data is valid only until the handler returns; copy it to keep it.
//     Every alert gets its own *Alert, which a handler may keep: its Name
//     and Sender stay valid, and its Reply fails with ErrNotInHandler
//     rather than answering a later alert. Alerts are 56 bytes, allocated
//     in slabs of 292 (16 KiB; one kept Alert keeps its slab alive). For
//     small alerts that allocation is most of the garbage collector's
//     work; Config.ReuseAlerts trades it for a stricter rule (the *Alert
//     itself is valid only until the handler returns) and takes a fifth to
//     a half off the receiver's CPU per alert.
//   - An alert too big for the destination's inbox (more than a quarter of
//     its InboxSize) is sent in chunks that the receiver reassembles, so alerts of
//     hundreds of megabytes (up to MaxData) arrive whole, through the same
//     bounded inbox. A half-received alert whose sender died, or that got no
//     chunk for 30 s, is dropped and counted in Stats().Dropped.
//   - Sending to this process's own pid goes through its own inbox like any
//     other: the handler runs later on the receive goroutine, never inside
//     Send. A handler that sends to its own full inbox gets ErrBackpressure
//     instead of waiting for itself, provided it passes the ctx it was
//     given (or one derived from it): that is how Send knows the caller
//     is the receive goroutine. With an unrelated context it waits like
//     any other sender, for ever, since only it could make room.
//   - A handler that panics is recovered, logged with its stack and
//     counted in Stats().Panics; the member keeps receiving.
//   - Alerts whose name has no handler are counted in Stats().Unmatched and
//     dropped, or passed to the default handler. Handlers given in
//     Config.Handlers are installed before the member becomes visible, so no
//     alert can arrive before them; they may therefore run before Join
//     returns.
//   - Nothing queues without bound: each inbox has a fixed size for each
//     sender (Config.InboxSize) and in all. When the destination's inbox is
//     full, Send waits for room until its context
//     ends (policy Block, the default) or returns ErrBackpressure at once
//     (policy Fail); either is counted in Stats().Rejected. A large alert's
//     first chunk follows the policy; its later chunks wait for room.
//   - Send returns nil once the alert is in the destination's inbox;
//     SendMany likewise returns only once every alert it counts as sent is
//     there. Nothing is held back in the sender's memory, so a sender that
//     crashes cannot lose an alert that a call reported as sent.
//   - A send to a member that has died returns an error wrapping
//     ErrNoMember, with ngx.ipc's text "no worker process with PID N",
//     also when the death races the send: after putting an alert in an
//     inbox, Send looks at a word in the destination's registry slot that
//     the kernel marks when the destination dies (a robust futex), before
//     the death is visible anywhere else. So a nil error means the
//     destination was alive, and still a member, after the alert was in
//     its inbox; a send that begins after the destination has died (for
//     example after its parent reaped it) always fails. What the caller
//     cannot know is whether a destination that dies after accepting an
//     alert handled it: if it dies before its handler runs, the alert is
//     lost with it, and if the death comes between the enqueue and the
//     check, Send reports ErrNoMember even though the handler may already
//     have run. Delivery is therefore at most once across a death; an
//     application that must not lose work has the receiver Reply and
//     resends when it gets ErrNoMember or no reply. A Send waiting for
//     room in a full inbox ends with ErrNoMember when its destination dies.
//   - Name and data limits and their error texts are ngx.ipc's: names up to
//     254 bytes ("alert name length cannot exceed 254, was N"), data up to
//     4294967040 bytes; both are checked before anything is allocated.
//
// # Waiting and CPU cost
//
// When its inbox is empty, the receive goroutine polls for Config.Spin
// (default 50µs), yielding the core between polls, before it sleeps on a
// futex. While alerts arrive more often than that, the receiver never
// sleeps and senders never make a system call; the price is up to one
// core busy for Spin after each burst: nothing for an idle member, about
// 5% of a core for one that gets an alert every millisecond, a whole core
// for one that gets them faster than every 50µs. On a machine with more
// busy threads than cores the spinning is paid for by the senders: with 5
// members exchanging 10 KB alerts on 2 cores, the receivers' yields and
// empty polls were about a fifth of all the members' CPU. Sleeping instead
// costs more (NoSpin used 30–50% more CPU per alert there, for the
// wake-ups). With Spin negative (NoSpin) an idle member uses no CPU at all,
// and each wake-up costs a futex system call on each side.
//
// Members must be processes of the same user (or of a group given by
// Config.Mode); the package is Linux-only.
package alert
