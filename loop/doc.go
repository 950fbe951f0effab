// Package loop is an event loop built on raw system calls: epoll on Linux,
// kqueue on macOS, one loop per OS thread, with no Go netpoller anywhere on
// the I/O path. A high-throughput application links it in, registers its
// non-blocking descriptors (TUN devices, UDP sockets, eventfds) and gets their
// readiness as callbacks on the loop's own thread.
//
// # Threads and callbacks
//
// New starts the loop on a goroutine locked to its own OS thread. Every
// callback the package makes (readiness handlers, timers, functions given to
// Post and Do) runs on that goroutine, never on another one, so handlers need
// no locks for state only they touch. Each exported method says whether it is
// loop-only (callable from a callback; elsewhere it returns ErrNotOwner) or
// safe from any goroutine (forwarded to the loop and waited for when called
// from elsewhere, run inline when called on the loop).
//
// # Syscall policy
//
// Calls that cannot block — non-blocking read, write, readv and writev on
// descriptors opened with O_NONBLOCK, epoll_ctl, and epoll_wait with a zero
// timeout — are made with RawSyscall on Linux: they skip the runtime's
// entersyscall/exitsyscall bookkeeping, which costs more than the call itself
// on the per-packet path. Any wait that can sleep goes through the ordinary
// Syscall path, so the Go scheduler can hand this thread's P to other
// goroutines while the loop sleeps. On Linux the loop makes a raw
// zero-timeout epoll wait only when it must not sleep (it has requeued
// work); otherwise it goes straight to the blocking wait, which returns at
// once when something is already ready. (A zero-timeout pass before every
// blocking wait found nothing whenever the loop had drained its descriptors,
// the usual case below saturation, and cost one system call per wakeup.)
// On macOS every call goes through libc, the only system call interface
// Apple supports, with the same policy of non-blocking descriptors; its
// kqueue backend still makes a zero-timeout pass before every blocking wait.
//
// # Backends
//
// A loop waits with epoll on Linux and kqueue on macOS. On Linux,
// New(WithBackend(BackendURing)) runs it on io_uring instead (opt-in; it
// is not faster everywhere, see docs/benchmarks.md): each registration is
// a multishot poll request (IORING_OP_POLL_ADD with IORING_POLL_ADD_MULTI,
// edge-triggered like the epoll registration), wakeups from other
// goroutines are an eventfd polled the same way, and timers are the
// timeout of the waiting io_uring_enter. Completions already in the shared
// ring are reaped without a system call; a wait enters the kernel only
// when there are none, submitting what is queued (requests the kernel
// ended, e.g. on a completion-queue overflow, are re-armed) in the same
// call. The rings are mapped with mmap, outside the Go heap, and every
// request is submitted from the loop's thread. Close and Unregister cancel
// the requests at once (a request holds a reference to its file), and
// Close waits for their last completions before the ring goes. The API,
// callbacks, budgets, timers, Post/Do, Handoff and Cancel/Notify are the
// same on both.
//
// On io_uring a PacketFD does its I/O through the ring too (Linux 6.12 and
// later, the first without known bugs of multishot reads; before that, or
// where the kernel refuses to register its buffers, read(2) and write(2)
// after poll readiness). Reads are
// one multishot read request per PacketFD (IORING_OP_READ_MULTISHOT) into
// 256 buffers of PacketConfig.MaxPacket bytes lent to the kernel through a
// provided-buffer ring; the kernel reads each packet as it arrives, the
// loop's wait collects the completions with the others, and RecvBatch
// copies the packets out and gives the buffers back: packets cost no read
// call and no trailing EAGAIN. A packet therefore becomes readable in the
// loop round after it arrived, not in the callback that is running when
// it does: a RecvBatch finds it once the loop has waited again, and the
// readiness callback says so. When every buffer holds a packet nobody has
// read the request ends (ENOBUFS) and the next packets wait in the
// device's queue, as they would for a reader that stopped reading; it is
// armed again when RecvBatch gives buffers back. A read of 0 bytes (end
// of file, an empty datagram) is handed out once as a packet of 0 bytes,
// then reads return ErrWouldBlock until the descriptor has more: read(2)
// would go on returning 0. Packets read into the buffers go with the
// PacketFD through a Handoff, and Close, Handoff and a loop's Close cancel
// the read and wait for its last completion before the buffers are
// unmapped; should the kernel not end the read within a second, the
// buffers are left mapped for good and the packets in them dropped (Close
// returns an error wrapping EBUSY). SendBatch hands its packets to the
// kernel as linked writes (IOSQE_IO_LINK, RWF_NOWAIT) with one
// io_uring_enter that waits for them: a packet refused ends the batch as
// write(2) would, and no write outlives the call. A UDPConn receives the
// same way (Linux 6.0 and later; before that, recvmmsg after poll
// readiness): one multishot recvmsg request (IORING_OP_RECVMSG with
// IORING_RECV_MULTISHOT) into 256 buffers of its own, each datagram
// landing with its sender's address and, with GRO, its segment size;
// RecvBatch copies them out, splitting GRO trains as recvmmsg's, at no
// system call per datagram. Where io_uring is unavailable (a kernel
// before 5.13, kernel.io_uring_disabled, EPERM or ENOSYS from a seccomp
// filter) New falls back to epoll: Loop.Backend says which backend runs
// and URingUnavailable says why. Under BackendAuto the environment variable
// TUNDRA_LOOP_BACKEND=uring (or epoll) chooses on Linux; the test suite
// runs once on each.
//
// # Fairness
//
// Registrations are edge-triggered. A handler is expected to drain its
// descriptor until EAGAIN, but each registration has a budget of work per
// loop round; a handler that spends it calls Handle.Requeue and is called
// again in the next round, after every other ready registration has had its
// turn, so one busy device cannot starve the others. PacketFD does this on
// its own: past its budget it reports ErrWouldBlock and requeues itself.
//
// # Ownership
//
// A descriptor attached to a loop (Register, AttachPacketFD) is owned by it:
// when the loop closes, it closes what it owns. Only the owning loop's thread
// may do I/O on a PacketFD. The check costs no system call: the loop records
// the identity of its goroutine once, and each I/O call compares the caller's
// goroutine with it (a single load of the runtime's per-thread g pointer on
// amd64 and arm64).
//
// # Codecs
//
// A PacketFD's Framer adds a header per packet. A Framer that is also a
// Codec (the virtio-net header of a TUN device with offloads, vnet.Codec)
// turns one read into several packets and several packets into one write;
// the PacketFD drives it, counts packets rather than reads in Stats, and
// hands out what a read brought beyond the caller's buffers on the next
// RecvBatch, having the callback run again for it. UDP GRO's kept
// segments follow the same rule.
//
// # UDP
//
// On Linux, AttachUDP puts a UDP socket on a loop as a UDPConn, with the
// buffer contract of devices (packet i at bufs[i][offset:], headroom before
// it): many datagrams per recvmmsg and sendmmsg, runs of equal-size
// datagrams sent as one UDP_SEGMENT message, and with UDP_GRO coalesced
// arrivals read as one message and handed out one datagram per buffer.
package loop
