// Package nl speaks rtnetlink, the Linux kernel's routing socket protocol, to
// query and configure network links, addresses and routes, and to follow
// link changes as the kernel announces them.
//
// A Conn sends requests: links (with their kind and, for TUN/TAP devices,
// the driver's settings: type, PI, vnet header, persist, owner, group,
// queues), their up/down state, MTU, name and alias, deletion; addresses
// with peer and broadcast; routes, added and deleted one by one, looked up
// (RouteGet) or listed from every table (Routes). A LinkWatcher (WatchLinks)
// receives the RTNLGRP_LINK notifications: each link created, changed or
// deleted.
//
// Messages are built and parsed by hand on top of golang.org/x/sys/unix; the
// package deliberately depends on no netlink library, so that the few
// requests Tundra needs are small, auditable and tested byte for byte.
//
// # Structure
//
// Encoding and decoding (message.go, link.go, linkstats.go, addr.go,
// route.go, ack.go) is pure Go that compiles on every platform and is
// tested without privileges. The request/reply protocol (conn.go) runs on
// top of a small transport interface, and the LinkWatcher (watch.go) on an
// event source: the real AF_NETLINK sockets live in conn_linux.go and
// watch_linux.go, and on other systems Dial and WatchLinks return an *Error
// wrapping ErrNotSupported. Tests substitute in-process fakes for the
// sockets.
//
// # Protocol
//
// Every request carries its own sequence number. A reply is accepted only
// when it comes from the kernel (sender port id 0), is addressed to this
// socket's port id and carries the request's sequence number; anything else
// (a stale reply to an earlier request that timed out, or a datagram forged
// by another process) is skipped. Change requests always ask for an
// acknowledgement and wait for it, so a nil error means the kernel applied
// the change. The socket asks for extended acknowledgements, so errors carry
// the kernel's explanation (Error.Message) when it gives one.
//
// # Namespaces and threads
//
// A netlink socket belongs to the network namespace of the thread that
// created it, for its whole life. Dial therefore uses the namespace of the
// calling OS thread; to work in another namespace, call Dial from a
// goroutine locked to a thread (runtime.LockOSThread) that has joined it.
// The resulting Conn may then be used from any goroutine.
//
// # Notifications
//
// A LinkWatcher has its own socket, bound to the RTNLGRP_LINK multicast
// group; it never shares the request socket, whose replies would mix with
// notifications. Like replies, notifications are believed only from the
// kernel (sender port id 0). The kernel drops notifications when the
// socket's buffer is full and says so once (ENOBUFS): Next then returns
// ErrOverrun, and the caller re-reads the state with a dump. Short of an
// overrun, a watcher opened before a dump and read after it misses
// nothing: changes made during the dump arrive as events, possibly
// repeating what the dump saw.
//
// # Errors
//
// Every failure is reported as an *Error naming the operation. It unwraps to
// the kernel's errno, so errors.Is(err, unix.EEXIST) works, or to one of the
// sentinel errors of this package (ErrMalformed, ErrTruncated,
// ErrDumpInterrupted, ErrClosed, ErrOverrun, ErrNotSupported). ErrClosed
// also matches net.ErrClosed.
package nl
