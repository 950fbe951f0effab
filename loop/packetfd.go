package loop

import (
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ReadyFunc is a PacketFD's readiness callback (Tundra's
// {:"$socket", dev, :select, handle}). It runs on the owning loop's thread,
// once per arming: an I/O call that returns ErrWouldBlock arms it, and it is
// disarmed when it runs.
type ReadyFunc func(p *PacketFD, ev Events)

// PacketConfig describes a packet descriptor to attach to a loop.
type PacketConfig struct {
	// Framer adds and strips a per-packet header; nil for none. One that
	// is also a Codec splits reads and merges writes too.
	Framer Framer
	// OnReady is the readiness callback. Required.
	OnReady ReadyFunc
	// Close releases the descriptor (and whatever it belongs to) when the
	// PacketFD is closed or its loop closes. Nil closes the fd with close(2).
	Close func() error
	// Budget is the number of packets the PacketFD reads per loop round
	// before it yields to other registrations; 0 takes the loop's default.
	Budget int
	// MaxPacket is the longest packet the descriptor delivers, framing
	// header not included; 0 means 65535. It sizes the buffers reads land
	// in on a loop that runs on io_uring (BackendURing), which the loop
	// owns and copies packets out of: 256 of them per PacketFD, mapped
	// outside the Go heap and touched only as far as packets fill them.
	// A longer packet is cut, as a read into a buffer that short would
	// cut it. Unused on epoll and kqueue, where packets are read straight
	// into the caller's buffers.
	MaxPacket int
}

// MaxSendParts is the most slices Send takes for one packet: enough for a
// GSO super-packet of 128 segments, written without copying payloads, and
// its headers.
const MaxSendParts = 129

// maxHeader bounds Framer.HeaderLen (the virtio-net header with its
// extensions is the largest in use, 12 bytes).
const maxHeader = 64

// PacketFD is a non-blocking packet descriptor (a TUN queue, a datagram
// socket) owned by a loop. Only the owning loop's thread may do I/O on it;
// from anywhere else the I/O methods return ErrNotOwner, a check that costs
// no system call.
//
// Buffers passed to its methods belong to the caller again when the call
// returns: nothing is retained.
type PacketFD struct {
	fd      int
	framer  Framer
	codec   Codec // framer, when it is a Codec
	hdrLen  int
	closeFn func() error
	budget  int
	// maxPacket sizes ring's buffers (PacketConfig.MaxPacket).
	maxPacket int

	owner atomic.Pointer[Loop] // nil until attached, while handed off, and once closed
	// mu orders the control transitions (attach, handoff, close). It is
	// never held over I/O, nor while waiting for a loop.
	mu sync.Mutex
	// inTransit: on its way to a loop (Attach or Handoff in flight); a
	// Close meanwhile sets closeReq and the arrival closes.
	inTransit bool
	closeReq  bool
	closed    atomic.Bool
	closeErr  error

	// Owner-thread state.
	h       Handle
	onReady ReadyFunc
	armed   Events
	// outOn: the registration asks for Writable readiness. With
	// lazyWriteInterest it is asked for only once a write found the
	// descriptor full, and dropped at the next Writable event.
	outOn bool
	round uint64
	used  int
	iov   [MaxSendParts + 1]unix.Iovec
	// kept: the codec keeps packets of a read for the next RecvBatch.
	kept bool
	// deferred is an error a codec RecvBatch met after it had packets to
	// return: the next call returns it, so that packets and an error
	// never come back together.
	deferred error
	rhdr     [maxHeader]byte
	shdr     [maxHeader]byte
	// one holds a single packet as sendParts' parts, so that resending a
	// refused merged write packet by packet allocates nothing.
	one [1][]byte
	// ringState: the io_uring backend's buffers and writes (Linux).
	ringState
	// pollIn is Readable when readiness tells of packets to read, 0 when
	// the ring's read does.
	pollIn Events
}

// NewPacketFD wraps the non-blocking descriptor fd for a loop, without
// attaching it: its I/O returns ErrNotOwner until Attach. Closing it before
// it is attached closes the descriptor. Safe from any goroutine.
func NewPacketFD(fd int, cfg PacketConfig) (*PacketFD, error) {
	if cfg.OnReady == nil {
		return nil, &OpError{Op: "attach: nil OnReady", Fd: fd, Err: errInvalid}
	}
	if fd < 0 {
		return nil, &OpError{Op: "attach", Fd: fd, Err: errBadFD}
	}
	if cfg.MaxPacket < 0 || cfg.MaxPacket > 1<<20 {
		return nil, &OpError{Op: "attach: max packet " + itoa(cfg.MaxPacket) + " outside 0..1048576", Fd: fd, Err: errInvalid}
	}
	p := &PacketFD{fd: fd, framer: cfg.Framer, closeFn: cfg.Close, budget: cfg.Budget, onReady: cfg.OnReady, maxPacket: cfg.MaxPacket}
	if p.framer != nil {
		p.hdrLen = p.framer.HeaderLen()
		if p.hdrLen < 0 || p.hdrLen > maxHeader {
			return nil, &OpError{Op: "attach: framer header length " + itoa(p.hdrLen) + " outside 0.." + itoa(maxHeader), Fd: fd, Err: errInvalid}
		}
		p.codec, _ = p.framer.(Codec)
	}
	return p, nil
}

// AttachPacketFD is NewPacketFD followed by Attach. On error the descriptor
// is untouched and remains the caller's. Safe from any goroutine.
func (l *Loop) AttachPacketFD(fd int, cfg PacketConfig) (*PacketFD, error) {
	p, err := NewPacketFD(fd, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Attach(l); err != nil {
		return nil, err
	}
	return p, nil
}

// Attach gives the PacketFD to l, which owns it from then on. Readable is
// armed at once: OnReady runs as soon as a packet is waiting. A PacketFD is
// attached once; Handoff moves it. On error it stays unattached and the
// descriptor is not closed. Safe from any goroutine.
func (p *PacketFD) Attach(l *Loop) error {
	p.mu.Lock()
	switch {
	case p.closed.Load():
		p.mu.Unlock()
		return ErrClosed
	case p.inTransit || p.owner.Load() != nil:
		p.mu.Unlock()
		return &OpError{Op: "attach: already attached (use Handoff)", Fd: p.fd, Err: errInvalid}
	}
	p.inTransit = true
	p.mu.Unlock()
	if p.budget <= 0 {
		p.budget = l.cfg.budget
	}
	var err error
	derr := l.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.inTransit = false
		if p.closeReq {
			p.finish()
			err = ErrClosed
			return
		}
		err = p.attach(l)
	})
	if derr != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.inTransit { // the function never ran
			p.inTransit = false
			if p.closeReq {
				p.finish()
			}
		}
		return derr
	}
	return err
}

// attach registers p on l and makes l its owner. Loop-only (on l).
func (p *PacketFD) attach(l *Loop) error {
	// On io_uring a multishot read tells of packets (as it reads them);
	// the poll request is left Hangup, Error and Writable.
	p.pollIn = Readable
	if p.readsByRing(l) {
		p.pollIn = 0
	}
	interest := p.pollIn | Writable
	if lazyWriteInterest && p.armed&Writable == 0 {
		interest = p.pollIn // a Writable armed before a handoff keeps it
	}
	h, err := l.register(p.fd, Registration{
		Events:  interest,
		Handler: p.dispatch,
		Budget:  p.budget,
		OnClose: p.closeOnLoopExit,
	})
	if err != nil {
		return err
	}
	p.h = h
	if p.pollIn == 0 && p.attachRing(l) != nil {
		// No ring (the kernel refused to register one: locked memory
		// at its limit, say): readiness and read(2), as before 6.12.
		p.pollIn = Readable
		interest |= Readable
		l.st.syscalls.add(1)
		if err := l.p.mod(p.fd, h.token(), interest); err != nil {
			_ = l.unregister(h)
			return err
		}
	}
	p.outOn = interest&Writable != 0
	// Adding an edge-triggered descriptor reports the readiness it already
	// has, so arming is enough: no packet that is already queued is missed.
	p.armed |= Readable
	p.round, p.used = 0, 0
	p.owner.Store(l)
	return nil
}

// dispatch receives the registration's readiness and delivers what was
// armed. Loop-only.
func (p *PacketFD) dispatch(ev Events) {
	if lazyWriteInterest && p.outOn && ev&Writable != 0 {
		// The one Writable event that was asked for: delivered now if
		// armed, and asked for again by the next write that fills up.
		p.writeInterest(false)
	}
	if p.armed == 0 {
		return
	}
	deliver := ev & (p.armed | Hangup | Error)
	if deliver == 0 {
		return
	}
	if deliver&(Hangup|Error) != 0 {
		p.armed = 0 // the next I/O call reports the condition and re-arms
	} else {
		p.armed &^= deliver
	}
	p.onReady(p, deliver)
}

// owned returns the owning loop if the caller runs on it.
func (p *PacketFD) owned() (*Loop, error) {
	l := p.owner.Load()
	if l == nil || curg() != l.g {
		if p.closed.Load() {
			return nil, ErrClosed
		}
		return nil, ErrNotOwner
	}
	return l, nil
}

// allowance is what is left of the read budget in this round.
func (p *PacketFD) allowance(l *Loop) int {
	if p.round != l.round {
		p.round, p.used = l.round, 0
	}
	return p.budget - p.used
}

// yield arms Readable and requeues the registration: the budget is spent,
// the descriptor may still hold packets.
func (p *PacketFD) yield(l *Loop) {
	p.armed |= Readable
	p.h.Requeue(Readable)
	l.st.wouldBlocks.add(1)
}

// Fd returns the descriptor. Safe from any goroutine; the PacketFD still
// owns it.
func (p *PacketFD) Fd() int { return p.fd }

// Loop returns the owning loop, or nil while the PacketFD is being handed
// off or after it is closed. Safe from any goroutine.
func (p *PacketFD) Loop() *Loop { return p.owner.Load() }

// HeaderLen is the framing header's length: the headroom RecvBatch and
// SendBatch need in front of each packet at least.
func (p *PacketFD) HeaderLen() int { return p.hdrLen }

// Recv reads one packet into b and returns its length (the framing header,
// if any, is stripped). With a Codec it is one read as it is, a
// super-packet whole (pass-through), counted as Codec.Count says; the
// packets a Codec keeps are RecvBatch's. b should hold the largest packet
// (the MTU): the kernel truncates a longer one. An empty b is refused (an OpError
// wrapping unix.EINVAL, nothing read or counted): a read of 0 bytes takes no
// packet. When no packet is waiting, or the budget for this round is spent,
// it returns ErrWouldBlock and arms the readiness callback. Loop-only.
func (p *PacketFD) Recv(b []byte) (int, error) {
	l, err := p.owned()
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		// read(2) of 0 bytes returns 0 without taking a packet: it would
		// be reported, and counted, as an empty packet that never came.
		return 0, &OpError{Op: "recv: buffer 0 has no room for a packet", Fd: p.fd, Err: errInvalid}
	}
	if p.allowance(l) <= 0 {
		p.yield(l)
		return 0, ErrWouldBlock
	}
	n, errno, sys := p.readPacket(p.rhdr[:p.hdrLen], b)
	if sys {
		l.st.syscalls.add(1)
	} else {
		p.settleRing()
	}
	if errno != 0 {
		return 0, p.readError(l, errno)
	}
	if n < p.hdrLen {
		return 0, &OpError{Op: "read: packet shorter than its " + itoa(p.hdrLen) + "-byte header", Fd: p.fd, Err: io.ErrUnexpectedEOF}
	}
	n -= p.hdrLen
	p.used++
	packets, bytes := 1, n
	if p.codec != nil {
		packets, bytes = p.codec.Count(p.rhdr[:p.hdrLen], b[:n], n)
	}
	l.st.packetsIn.add(uint64(packets))
	l.st.bytesIn.add(uint64(bytes))
	return n, nil
}

// readDirect reads one packet with read(2), or with readv(2) when its
// first len(hdr) bytes go apart.
func (p *PacketFD) readDirect(hdr, dst []byte) (int, unix.Errno) {
	if len(hdr) == 0 {
		return readFD(p.fd, dst)
	}
	setIovec(&p.iov[0], hdr)
	setIovec(&p.iov[1], dst)
	n, errno := readvFD(p.fd, p.iov[:2])
	p.iov[1] = unix.Iovec{}
	return n, errno
}

func (p *PacketFD) readError(l *Loop, errno unix.Errno) error {
	if errno == unix.EAGAIN {
		p.armed |= Readable
		l.st.wouldBlocks.add(1)
		return ErrWouldBlock
	}
	return &OpError{Op: "read", Fd: p.fd, Err: errno}
}

// RecvBatch reads up to len(bufs) packets, packet i into bufs[i][offset:]
// with its length in sizes[i]; the offset-HeaderLen() bytes before it are
// headroom, where the framing header lands and is left. It returns the
// number of packets read. A return of n < len(bufs) with a nil error means
// the descriptor ran dry or the round's budget was spent; either way the
// readiness callback is armed, so the caller may simply return. With no
// packet at all it returns 0 and ErrWouldBlock. It never returns packets
// together with an error: a failure after some packets is reported by the
// next call. Every buffer must hold at least one byte after offset (with
// a Codec, Codec.Room bytes): one that does not is refused before anything
// is read, with an OpError wrapping unix.EINVAL that names its index.
//
// With a Codec each read is laid out as the packets it carries over the
// buffers from the one it landed in; what does not fit is kept and handed
// out first by the next calls, the readiness callback running again
// meanwhile. The round's budget counts reads. Loop-only.
func (p *PacketFD) RecvBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	l, err := p.owned()
	if err != nil {
		return 0, err
	}
	if offset < p.hdrLen {
		return 0, &OpError{Op: "recvbatch: offset " + itoa(offset) + " leaves no room for the " + itoa(p.hdrLen) + "-byte header", Fd: p.fd, Err: errInvalid}
	}
	if len(sizes) < len(bufs) {
		return 0, &OpError{Op: "recvbatch: " + itoa(len(sizes)) + " sizes for " + itoa(len(bufs)) + " buffers", Fd: p.fd, Err: errInvalid}
	}
	// Every buffer before the first read: a refusal after some packets were
	// read would have to wait for the next call, and a caller that takes
	// the short count for "ran dry" would wait for a callback never armed.
	// A buffer with no byte after offset would read 0 bytes without taking
	// a packet, and report a packet that never came.
	room := 1
	if p.codec != nil {
		room = p.codec.Room()
	}
	for i, b := range bufs {
		if len(b) < offset+room {
			return 0, p.noRoom("recvbatch", i, len(b), offset)
		}
	}
	if p.codec != nil {
		return p.recvCodec(l, bufs, sizes, offset)
	}
	allow := p.allowance(l)
	if allow <= 0 {
		p.yield(l)
		return 0, ErrWouldBlock
	}
	limit := min(len(bufs), allow)
	start := offset - p.hdrLen
	var bytes, calls uint64
	i := 0
	for ; i < limit; i++ {
		n, errno, sys := p.readPacket(nil, bufs[i][start:])
		if sys {
			calls++
		}
		if errno != 0 {
			err = p.readError(l, errno)
			break
		}
		if n < p.hdrLen {
			err = &OpError{Op: "read: packet shorter than its " + itoa(p.hdrLen) + "-byte header", Fd: p.fd, Err: io.ErrUnexpectedEOF}
			break
		}
		sizes[i] = n - p.hdrLen
		bytes += uint64(sizes[i])
	}
	p.settleRing()
	l.st.syscalls.add(calls)
	l.st.packetsIn.add(uint64(i))
	l.st.bytesIn.add(bytes)
	p.used += i
	if i > 0 {
		if err == nil && p.used >= p.budget && i < len(bufs) {
			p.yield(l)
		}
		return i, nil
	}
	return 0, err
}

// Send writes one packet made of parts, in order, with one writev and no
// copy; the framing header, if any, goes in its own iovec, chosen from the
// packet's first byte. A packet with no byte (no parts, or only empty
// ones) is refused with an OpError wrapping unix.EINVAL, nothing written.
// When the descriptor cannot take the packet now it returns ErrWouldBlock
// and arms Writable. Loop-only.
func (p *PacketFD) Send(parts ...[]byte) error {
	l, err := p.owned()
	if err != nil {
		return err
	}
	first, err := p.firstPart(parts)
	if err != nil {
		return err
	}
	if p.hdrLen > 0 {
		if err := p.framer.PutHeader(p.shdr[:p.hdrLen], first); err != nil {
			return &OpError{Op: "send: framing", Fd: p.fd, Err: err}
		}
	}
	return p.sendParts(l, first, parts)
}

// firstPart is the packet's first non-empty part. A write of nothing (or
// of the header alone) sends no packet, and is refused.
func (p *PacketFD) firstPart(parts [][]byte) ([]byte, error) {
	for _, b := range parts {
		if len(b) > 0 {
			return b, nil
		}
	}
	return nil, &OpError{Op: "send: empty packet (" + itoa(len(parts)) + " parts, no byte)", Fd: p.fd, Err: errInvalid}
}

// SendHeader is Send with hdr, HeaderLen bytes, as the packet's header in
// place of the one the Framer would write: for a packet passed through
// from another descriptor with its header (a super-packet between two TUN
// devices with offloads). A Codec still counts what it carries. hdr is
// copied. Loop-only.
func (p *PacketFD) SendHeader(hdr []byte, parts ...[]byte) error {
	l, err := p.owned()
	if err != nil {
		return err
	}
	if len(hdr) != p.hdrLen {
		return &OpError{Op: "send: header of " + itoa(len(hdr)) + " bytes, want " + itoa(p.hdrLen), Fd: p.fd, Err: errInvalid}
	}
	first, err := p.firstPart(parts)
	if err != nil {
		return err
	}
	copy(p.shdr[:p.hdrLen], hdr)
	return p.sendParts(l, first, parts)
}

// sendParts writes p.shdr's header (if any) and parts with one writev;
// first is the first part that is not empty.
func (p *PacketFD) sendParts(l *Loop, first []byte, parts [][]byte) error {
	k, total, hdrIov := 0, 0, 0
	if p.hdrLen > 0 {
		setIovec(&p.iov[0], p.shdr[:p.hdrLen])
		k, hdrIov = 1, 1
	}
	for _, b := range parts {
		if len(b) == 0 {
			continue
		}
		if k-hdrIov == MaxSendParts {
			p.clearIovecs(k)
			return &OpError{Op: "send: more than " + itoa(MaxSendParts) + " parts", Fd: p.fd, Err: errInvalid}
		}
		setIovec(&p.iov[k], b)
		k++
		total += len(b)
	}
	n, errno := writevFD(p.fd, p.iov[:k])
	p.clearIovecs(k)
	l.st.syscalls.add(1)
	if errno != 0 {
		return p.writeError(l, errno)
	}
	if n != total+p.hdrLen {
		return &OpError{Op: "writev: short write of " + itoa(n) + " of " + itoa(total+p.hdrLen) + " bytes", Fd: p.fd, Err: io.ErrShortWrite}
	}
	packets, bytes := 1, total
	if p.codec != nil {
		packets, bytes = p.codec.Count(p.shdr[:p.hdrLen], first, total)
	}
	l.st.packetsOut.add(uint64(packets))
	l.st.bytesOut.add(uint64(bytes))
	return nil
}

// noRoom is the refusal of buffer i, which holds no byte of packet after
// offset: reading into it takes no packet, writing it sends none.
func (p *PacketFD) noRoom(op string, i, size, offset int) error {
	return &OpError{Op: op + ": buffer " + itoa(i) + " holds " + itoa(size) + " bytes, none after offset " + itoa(offset), Fd: p.fd, Err: errInvalid}
}

func (p *PacketFD) writeError(l *Loop, errno unix.Errno) error {
	if errno == unix.EAGAIN {
		p.armed |= Writable
		l.st.wouldBlocks.add(1)
		if lazyWriteInterest && !p.outOn && !p.writeInterest(true) {
			// Without the interest no event would come: have the loop
			// call back next round instead.
			p.h.Requeue(Writable)
		}
		return ErrWouldBlock
	}
	return &OpError{Op: "write", Fd: p.fd, Err: errno}
}

// writeInterest adds or removes Writable in the descriptor's epoll
// registration. A packet that arrives while the loop drains the
// descriptor puts it on epoll's ready list; the next wait polls it, and
// with EPOLLOUT asked for, writability (always true on a TUN device) makes
// it reported even when the drain already took that packet: the wait
// returned at once for a Writable nobody had armed (issue 18: 7 reads per
// wait instead of 11 on rx). Writes to a TUN device almost never find it
// full, so asking only after a write did costs nothing on the packet
// path. Loop-only; reports whether the registration was changed.
func (p *PacketFD) writeInterest(on bool) bool {
	ev := p.pollIn
	if on {
		ev |= Writable
	}
	l := p.h.l
	l.st.syscalls.add(1)
	if err := l.p.mod(p.fd, p.h.token(), ev); err != nil {
		return false
	}
	p.outOn = on
	return true
}

// clearIovecs drops the iovecs' references to caller buffers, which must
// not be kept alive by the PacketFD.
func (p *PacketFD) clearIovecs(k int) {
	for i := range k {
		p.iov[i] = unix.Iovec{}
	}
}

// SendBatch writes each bufs[i][offset:] as one packet, one write(2) each
// (on an io_uring loop, linked writes handed to the kernel with one
// io_uring_enter; see BackendURing), writing the framing header in place
// into the headroom before offset. It
// returns the number of packets written; when err is not nil, bufs[n] is
// the packet that failed (ErrWouldBlock: not written now, Writable armed;
// any other error: the kernel refused that packet, or it was refused before
// the kernel saw it, being empty after offset (unix.EINVAL), and the caller
// may skip it and go on).
//
// With a Codec the packets go out in the writes Codec.Encode groups them
// into, one writev each, their headers apart (offset needs no headroom); n counts the packets of the writes done, and a
// packet with no byte after offset ends the batch (the ones before it are
// sent). Loop-only.
func (p *PacketFD) SendBatch(bufs [][]byte, offset int) (int, error) {
	l, err := p.owned()
	if err != nil {
		return 0, err
	}
	if p.codec != nil {
		// The codec's writes carry their headers apart: no headroom needed.
		return p.sendCodec(l, bufs, offset)
	}
	if offset < p.hdrLen {
		return 0, &OpError{Op: "sendbatch: offset " + itoa(offset) + " leaves no room for the " + itoa(p.hdrLen) + "-byte header", Fd: p.fd, Err: errInvalid}
	}
	start := offset - p.hdrLen
	// Each packet is checked and framed before any is written: the
	// writes may go out as one submission (io_uring), and those before
	// a refused packet are sent either way.
	end := len(bufs)
	var refused error
	for i, b := range bufs {
		if len(b) <= offset {
			refused, end = p.noRoom("sendbatch", i, len(b), offset), i
			break
		}
		if p.hdrLen > 0 {
			if ferr := p.framer.PutHeader(b[start:offset], b[offset:]); ferr != nil {
				refused, end = &OpError{Op: "sendbatch: framing packet " + itoa(i), Fd: p.fd, Err: ferr}, i
				break
			}
		}
	}
	i, calls, err := p.writePackets(l, bufs[:end], start)
	if err == nil && end < len(bufs) {
		err = refused
	}
	var bytes uint64
	for _, b := range bufs[:i] {
		bytes += uint64(len(b) - offset)
	}
	// Counted once per batch, not once per write: every counter update is
	// an atomic store (see counter), a locked instruction on amd64.
	l.st.syscalls.add(calls)
	l.st.packetsOut.add(uint64(i))
	l.st.bytesOut.add(bytes)
	return i, err
}

// writePackets writes each bufs[i][start:], framed already, as one
// packet: through the io_uring ring when p reads through it, one write(2)
// each otherwise. It returns the packets written and the system calls
// made; when err is not nil, bufs[n] failed and none after it was
// written. Loop-only.
func (p *PacketFD) writePackets(l *Loop, bufs [][]byte, start int) (n int, calls uint64, err error) {
	if len(bufs) == 0 {
		return 0, 0, nil
	}
	n, errno, short, c, ok := p.writeRing(l, bufs, start)
	calls = uint64(c)
	if ok {
		switch {
		case errno != 0:
			err = p.writeError(l, errno)
		case short:
			err = &OpError{Op: "write: short write", Fd: p.fd, Err: io.ErrShortWrite}
		}
		return n, calls, err
	}
	for ; n < len(bufs); n++ {
		b := bufs[n][start:]
		w, errno := writeFD(p.fd, b)
		calls++
		if errno != 0 {
			return n, calls, p.writeError(l, errno)
		}
		if w != len(b) {
			return n, calls, &OpError{Op: "write: short write", Fd: p.fd, Err: io.ErrShortWrite}
		}
	}
	return n, calls, nil
}

// Notify arms the readiness callback for ev and has the loop check the
// descriptor in its next round, so the callback runs even if the
// descriptor is already ready (edge-triggered readiness would otherwise
// say nothing until new activity). Loop-only.
func (p *PacketFD) Notify(ev Events) error {
	if _, err := p.owned(); err != nil {
		return err
	}
	ev &= Readable | Writable
	p.armed |= ev
	return p.h.Requeue(ev)
}

// Cancel disarms the readiness callback for ev. The descriptor stays open
// and usable (unlike Tundra's cancel/2, which closed it). Loop-only.
func (p *PacketFD) Cancel(ev Events) error {
	if _, err := p.owned(); err != nil {
		return err
	}
	p.armed &^= ev
	return nil
}

// Armed reports the interests waiting for readiness. Loop-only (0 elsewhere).
func (p *PacketFD) Armed() Events {
	if _, err := p.owned(); err != nil {
		return 0
	}
	return p.armed
}

// Handoff gives the PacketFD to another loop (Tundra's
// controlling_process/2), which calls onReady from then on. It must be
// called on the owning loop. The descriptor leaves this loop at once: no
// event is delivered here afterwards, and I/O here returns ErrNotOwner.
// Packets that arrive meanwhile wait in the kernel's queue; on the new
// loop Readable is armed and the callback runs once in its first round,
// so the new owner reads them, and whatever a reader kept back. If the new loop
// cannot take it (closed, queue full), the PacketFD stays here and the
// error says why. Loop-only.
func (p *PacketFD) Handoff(to *Loop, onReady ReadyFunc) error {
	from, err := p.owned()
	if err != nil {
		return err
	}
	if onReady == nil {
		return &OpError{Op: "handoff: nil OnReady", Fd: p.fd, Err: errInvalid}
	}
	if to == from {
		p.onReady = onReady
		return nil
	}
	p.mu.Lock()
	// A ring the kernel would not give back is abandoned (detachRing
	// says so with an error): the new owner reads through a new one.
	_ = p.detachRing(from)
	if err := from.unregister(p.h); err != nil {
		p.mu.Unlock()
		return err
	}
	p.owner.Store(nil)
	p.inTransit = true
	p.mu.Unlock()
	perr := to.Post(func() { p.arrive(to, onReady) })
	if perr == nil {
		return nil
	}
	// The new loop would not take it: stay here.
	p.mu.Lock()
	p.inTransit = false
	aerr := p.attach(from)
	p.mu.Unlock()
	if aerr != nil {
		p.finish()
		return &OpError{Op: "handoff: new loop refused (" + perr.Error() + ") and re-attaching failed, closed", Fd: p.fd, Err: aerr}
	}
	return &OpError{Op: "handoff", Fd: p.fd, Err: perr}
}

// arrive completes a handoff on the new loop. Runs on to's thread.
func (p *PacketFD) arrive(to *Loop, onReady ReadyFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inTransit = false
	p.onReady = onReady
	if p.closeReq {
		p.finish()
		return
	}
	if err := p.attach(to); err != nil {
		// The new loop is closing: it owns the descriptor now and closes
		// it, as it would had the handoff landed a moment earlier.
		p.finish()
		return
	}
	// The new owner's callback runs once in its next round, whatever the
	// descriptor's readiness: what a layer above holds back for the next
	// read (a super-packet or GRO segments that did not fit, an error to
	// report) is not in the kernel's queue, and nothing else would say so.
	// With nothing held, that read finds EAGAIN and arms as usual.
	p.h.Requeue(Readable)
}

// finish closes the descriptor once. Caller holds mu or runs at loop exit.
func (p *PacketFD) finish() {
	if p.closed.Swap(true) {
		return
	}
	p.owner.Store(nil)
	p.freeRing()
	if p.closeFn != nil {
		p.closeErr = p.closeFn()
	} else if err := unix.Close(p.fd); err != nil {
		p.closeErr = &OpError{Op: "close", Fd: p.fd, Err: err}
	}
}

func (p *PacketFD) closeOnLoopExit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.detachRing(p.h.l) // the buffers go with the descriptor
	p.finish()
}

// Close detaches the PacketFD from its loop and closes the descriptor (with
// PacketConfig.Close if given). Safe from any goroutine; idempotent. During
// a handoff the close happens when the PacketFD lands.
func (p *PacketFD) Close() error {
	for {
		p.mu.Lock()
		if p.closed.Load() {
			err := p.closeErr
			p.mu.Unlock()
			return err
		}
		if p.inTransit {
			p.closeReq = true
			p.mu.Unlock()
			return nil
		}
		l := p.owner.Load()
		if l == nil { // never attached: nothing to detach from
			p.finish()
			err := p.closeErr
			p.mu.Unlock()
			return err
		}
		p.mu.Unlock()
		var err error
		retry := false
		derr := l.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.closed.Load() {
				err = p.closeErr
				return
			}
			if p.owner.Load() != l {
				retry = true // handed off meanwhile: close on the new owner
				return
			}
			derr := p.detachRing(l)
			_ = l.unregister(p.h)
			p.finish()
			err = p.closeErr
			if err == nil {
				err = derr
			}
		})
		if derr == ErrClosed {
			// The loop stopped; its shutdown closed the descriptor.
			<-l.Done()
			p.mu.Lock()
			err = p.closeErr
			p.mu.Unlock()
			return err
		}
		if derr != nil {
			return derr
		}
		if !retry {
			return err
		}
	}
}

func setIovec(v *unix.Iovec, b []byte) {
	if len(b) == 0 {
		v.Base = nil
		v.SetLen(0)
		return
	}
	v.Base = &b[0]
	v.SetLen(len(b))
}
