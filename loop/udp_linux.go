package loop

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxUDPBatch is the most datagrams one UDPConn call moves (one recvmmsg or
// sendmmsg).
const MaxUDPBatch = 64

// maxGSOSegments is the most datagrams the kernel lets one UDP_SEGMENT send
// carry (UDP_MAX_SEGMENTS in include/linux/udp.h: 64 before Linux 6.11,
// 128 after; the lower value works everywhere).
const maxGSOSegments = 64

// maxGSOBytes bounds a coalesced send: the whole UDP payload must fit one
// IP datagram's 16-bit length.
const maxGSOBytes = 65507 - 8

// UDPConfig describes a UDP socket to attach to a loop.
type UDPConfig struct {
	// OnReady is the readiness callback, armed by ErrWouldBlock as for
	// PacketFD. Required.
	OnReady func(u *UDPConn, ev Events)
	// Budget is the datagrams read per loop round; 0 takes the loop's
	// default.
	Budget int
	// GSO coalesces runs of same-size datagrams to one destination into a
	// single send with UDP_SEGMENT, the kernel splitting them again, when the
	// kernel has it (Linux 4.18+). SendBatch falls back to one datagram per
	// message the first time the kernel refuses.
	GSO bool
	// GRO asks the kernel for coalesced receives (UDP_GRO, Linux 5.0+):
	// datagrams of one flow arrive as one message of up to 64 KiB, and a
	// UDP_SEGMENT super-datagram from a local or veth sender is not split
	// on the way in at all. RecvBatch splits them into the caller's
	// buffers, one datagram each, as without GRO; it then needs every
	// buffer to hold offset+MaxGROBytes. Off (with UDPConn.GRO false) when
	// the kernel refuses the option.
	GRO bool
}

// UDPConn is a non-blocking UDP socket owned by a loop, with batched I/O:
// recvmmsg and sendmmsg (on io_uring, a multishot recvmsg into buffers of
// its own, mapped outside the Go heap), UDP segmentation offload on send
// and generic receive offload on receive. It keeps the
// device buffer contract: packet i lives at bufs[i][offset:], the bytes
// before offset are the caller's headroom. Ownership, arming, Cancel,
// Notify, Handoff and Close behave as for PacketFD; the I/O methods are
// loop-only. No buffer is retained after a call returns.
type UDPConn struct {
	p   *PacketFD
	gso bool

	msgs     [MaxUDPBatch]unix.Mmsghdr
	iovs     [MaxUDPBatch * maxGSOSegments]unix.Iovec
	names    [MaxUDPBatch]unix.RawSockaddrInet6 // big enough for either family
	cmsgs    [MaxUDPBatch][cmsgSegmentSpace]byte
	segs     [MaxUDPBatch]int // datagrams carried by each message of a send
	iovsUsed int              // iovecs the last build filled, for clear

	// GRO receive state: the messages of the last recvmmsg and segments
	// that did not fit the caller's buffers (an error to report next is
	// the PacketFD's, as for a Codec).
	gro     bool
	groMsgs [MaxUDPBatch]groMsg
	pending groPending
}

// cmsgSegmentSpace holds CMSG_SPACE(sizeof(uint16)) for the UDP_SEGMENT
// control message on every architecture (24 bytes on 64-bit, 16 on 32-bit).
const cmsgSegmentSpace = 24

// AttachUDP attaches a non-blocking UDP socket to l, which owns it from
// then on (closing the loop closes it). Safe from any goroutine.
func (l *Loop) AttachUDP(fd int, cfg UDPConfig) (*UDPConn, error) {
	if cfg.OnReady == nil {
		return nil, &OpError{Op: "attach udp: nil OnReady", Fd: fd, Err: errInvalid}
	}
	u := &UDPConn{}
	p, err := NewPacketFD(fd, PacketConfig{
		OnReady: func(_ *PacketFD, ev Events) { cfg.OnReady(u, ev) },
		Budget:  cfg.Budget,
	})
	if err != nil {
		return nil, err
	}
	u.p = p
	// On io_uring a multishot recvmsg fills a ring of buffers, where the
	// kernel has it (udp_ring_linux.go); recvmmsg reads the socket
	// otherwise.
	p.recvMsg = true
	if cfg.GSO {
		// Probe: a socket option the kernel refuses means no GSO.
		u.gso = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT, 0) == nil
	}
	if cfg.GRO {
		u.gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	}
	if u.gro {
		p.msgControl = cmsgSegmentSpace // room for the UDP_GRO message
	}
	if err := p.Attach(l); err != nil {
		return nil, err
	}
	return u, nil
}

// GSO reports whether sends are coalesced with UDP_SEGMENT.
func (u *UDPConn) GSO() bool { return u.gso }

// GRO reports whether receives are coalesced with UDP_GRO, and so whether
// RecvBatch needs buffers of offset+MaxGROBytes.
func (u *UDPConn) GRO() bool { return u.gro }

// Fd is the socket. The UDPConn keeps ownership.
func (u *UDPConn) Fd() int { return u.p.Fd() }

// Loop is the owning loop, or nil.
func (u *UDPConn) Loop() *Loop { return u.p.Loop() }

// Cancel disarms the readiness callback for ev. Loop-only.
func (u *UDPConn) Cancel(ev Events) error { return u.p.Cancel(ev) }

// Notify arms the callback for ev and checks in the next round. Loop-only.
func (u *UDPConn) Notify(ev Events) error { return u.p.Notify(ev) }

// Handoff gives the socket to another loop. Loop-only.
func (u *UDPConn) Handoff(to *Loop, onReady func(u *UDPConn, ev Events)) error {
	return u.p.Handoff(to, func(_ *PacketFD, ev Events) { onReady(u, ev) })
}

// Close detaches the socket from its loop and closes it. Safe from any
// goroutine; idempotent.
func (u *UDPConn) Close() error { return u.p.Close() }

// RecvBatch reads up to len(bufs) datagrams with one recvmmsg (on an
// io_uring loop, from the buffers a multishot recvmsg filled, with no
// system call; see BackendURing, and a datagram is there in the loop
// round after it arrived): datagram i
// lands at bufs[i][offset:], its length in sizes[i] and its sender in
// addrs[i] (addrs may be nil). A datagram longer than its buffer is cut to
// fit (the kernel's MSG_TRUNC). The return contract is RecvBatch's of
// PacketFD: fewer than asked with a nil error means the socket ran dry or
// the budget was spent, the callback being armed either way. An error
// other than ErrWouldBlock does not arm the callback; on a UDP socket most
// are one-shot reports of ICMP errors for earlier sends (ECONNREFUSED,
// EHOSTUNREACH), and the next call reads on.
//
// Every buffer must hold a byte after offset (one that does not would take
// a datagram and keep none of it): otherwise nothing is read and the
// OpError, wrapping unix.EINVAL, names the buffer.
//
// With GRO, one message may carry many datagrams: they are spread over the
// buffers after it, in order, and any that do not fit are kept (copied)
// and returned first by the next call, whose callback is requeued. Every
// buffer must then hold offset+MaxGROBytes. Loop-only.
func (u *UDPConn) RecvBatch(bufs [][]byte, sizes []int, addrs []netip.AddrPort, offset int) (int, error) {
	p := u.p
	l, err := p.owned()
	if err != nil {
		return 0, err
	}
	if offset < 0 || len(sizes) < len(bufs) || (addrs != nil && len(addrs) < len(bufs)) {
		return 0, &OpError{Op: "udp recvbatch: offset, sizes or addrs do not fit the buffers", Fd: p.fd, Err: errInvalid}
	}
	if u.gro {
		return u.recvGRO(l, bufs, sizes, addrs, offset)
	}
	// A buffer with no byte after offset would take a datagram and lose
	// all of it: refused, every buffer, before anything is read.
	for i, b := range bufs {
		if len(b) <= offset {
			return 0, p.noRoom("udp recvbatch", i, len(b), offset)
		}
	}
	if r := u.ringReads(l); r != nil {
		return u.recvRing(l, r, bufs, sizes, addrs, offset)
	}
	allow := p.allowance(l)
	if allow <= 0 {
		p.yield(l)
		return 0, ErrWouldBlock
	}
	n := min(len(bufs), allow, MaxUDPBatch)
	for i := range n {
		u.setRecv(i, bufs[i][offset:], false)
	}
	got, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(p.fd), uintptr(unsafe.Pointer(&u.msgs[0])), uintptr(n), 0, 0, 0)
	for i := range n {
		u.iovs[i] = unix.Iovec{}
	}
	l.st.syscalls.add(1)
	if errno != 0 {
		return 0, p.readError(l, errno)
	}
	var bytes uint64
	for i := range int(got) {
		sizes[i] = int(u.msgs[i].Len)
		bytes += uint64(sizes[i])
		if addrs != nil {
			addrs[i] = sockaddrToAddrPort(&u.names[i])
		}
	}
	p.used += int(got)
	l.st.packetsIn.add(uint64(got))
	l.st.bytesIn.add(bytes)
	if int(got) < n {
		p.armed |= Readable // ran dry: recvmmsg stops at the first EAGAIN
	} else if p.used >= p.budget {
		p.yield(l) // budget spent with datagrams perhaps still waiting
	}
	return int(got), nil
}

// setRecv points message i of a recvmmsg at b, the sender's address going
// to names[i] and, with control, control messages to cmsgs[i].
func (u *UDPConn) setRecv(i int, b []byte, control bool) {
	setIovec(&u.iovs[i], b)
	h := &u.msgs[i].Hdr
	*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&u.names[i])), Namelen: unix.SizeofSockaddrInet6, Iov: &u.iovs[i]}
	h.SetIovlen(1)
	if control {
		h.Control = &u.cmsgs[i][0]
		h.SetControllen(len(u.cmsgs[i]))
	}
	u.msgs[i].Len = 0
}

// SendBatch sends each bufs[i][offset:] as one datagram to addrs[i] (addrs
// nil: the socket's connected peer) and returns how many were sent. With
// GSO, runs of datagrams to one destination whose sizes are equal (the last
// may be shorter) go out as one message the kernel splits. With an error,
// bufs[n] is the datagram that failed: ErrWouldBlock arms Writable, any
// other error is the kernel's refusal of that datagram, or its refusal
// here before the kernel saw it (unix.EINVAL: no byte after offset, or a
// destination that is not an IP address). Empty datagrams, legal in UDP,
// are refused for the sake of the one contract every sender in this module
// keeps: a packet has at least one byte. Loop-only.
func (u *UDPConn) SendBatch(bufs [][]byte, addrs []netip.AddrPort, offset int) (int, error) {
	p := u.p
	l, err := p.owned()
	if err != nil {
		return 0, err
	}
	if offset < 0 || (addrs != nil && len(addrs) < len(bufs)) {
		return 0, &OpError{Op: "udp sendbatch: offset or addrs do not fit the buffers", Fd: p.fd, Err: errInvalid}
	}
	sent := 0
	for sent < len(bufs) {
		msgs, err := u.build(bufs[sent:], addrs, sent, offset)
		if err != nil {
			return sent, err
		}
		got, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(p.fd), uintptr(unsafe.Pointer(&u.msgs[0])), uintptr(msgs), 0, 0, 0)
		u.clear(msgs)
		l.st.syscalls.add(1)
		if errno != 0 {
			if u.gso && u.segs[0] > 1 && (errno == unix.EIO || errno == unix.EINVAL) {
				// The kernel refused segmentation (a route or device that
				// cannot take it): send one datagram per message from now on.
				u.gso = false
				continue
			}
			return sent, p.writeError(l, errno)
		}
		var bytes, pass uint64
		for m := range int(got) {
			for k := range u.segs[m] {
				bytes += uint64(len(bufs[sent+k]) - offset)
			}
			sent += u.segs[m]
			pass += uint64(u.segs[m])
		}
		l.st.packetsOut.add(pass)
		l.st.bytesOut.add(bytes)
		if int(got) < msgs {
			// A later message failed; report it by trying it alone.
			continue
		}
	}
	return sent, nil
}

// build fills the message array from bufs (the datagrams not yet sent,
// base being the index of bufs[0] in the caller's addrs) and returns how
// many messages it made.
func (u *UDPConn) build(bufs [][]byte, addrs []netip.AddrPort, base, offset int) (int, error) {
	m, iov := 0, 0
	for i := 0; i < len(bufs) && m < MaxUDPBatch; m++ {
		// A refused datagram ends the batch: the ones before it are sent
		// first, so that with the error bufs[sent] is the one refused.
		if len(bufs[i]) <= offset {
			if m > 0 {
				break
			}
			u.clear(m)
			return 0, u.p.noRoom("udp sendbatch", base+i, len(bufs[i]), offset)
		}
		h := &u.msgs[m].Hdr
		*h = unix.Msghdr{}
		if addrs != nil {
			nameLen, ok := addrPortToSockaddr(addrs[base+i], &u.names[m])
			if !ok {
				if m > 0 {
					break
				}
				u.clear(m)
				return 0, &OpError{Op: "udp sendbatch: destination " + itoa(base+i) + " is not an IPv4 or IPv6 address", Fd: u.p.fd, Err: errInvalid}
			}
			h.Name = (*byte)(unsafe.Pointer(&u.names[m]))
			h.Namelen = nameLen
		}
		// The run this message carries: datagram i, then with GSO the ones
		// after it to the same destination and of the same size, the last of
		// the run allowed to be shorter.
		first := iov
		size := len(bufs[i]) - offset
		setIovec(&u.iovs[iov], bufs[i][offset:])
		iov++
		total, segs := size, 1
		i++
		for u.gso && i < len(bufs) && segs < maxGSOSegments {
			next := len(bufs[i]) - offset
			if next <= 0 || next > size || total+next > maxGSOBytes || (addrs != nil && addrs[base+i] != addrs[base+i-1]) {
				break
			}
			setIovec(&u.iovs[iov], bufs[i][offset:])
			iov++
			total += next
			segs++
			i++
			if next < size {
				break // a short datagram ends the run
			}
		}
		h.Iov = &u.iovs[first]
		h.SetIovlen(segs)
		u.segs[m] = segs
		if segs > 1 {
			c := u.cmsgs[m][:]
			ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
			ch.Level, ch.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
			ch.SetLen(unix.CmsgLen(2))
			binary.NativeEndian.PutUint16(c[unix.CmsgLen(0):], uint16(size))
			h.Control = &c[0]
			h.SetControllen(unix.CmsgSpace(2))
		}
	}
	u.iovsUsed = iov
	return m, nil
}

// clear drops the messages' references to caller buffers.
func (u *UDPConn) clear(msgs int) {
	for m := range msgs {
		u.msgs[m].Hdr = unix.Msghdr{}
	}
	for i := range u.iovsUsed {
		u.iovs[i] = unix.Iovec{}
	}
	u.iovsUsed = 0
}

// Ports sit in network byte order in the sockaddr's memory, whatever the
// host's order: read and write them as bytes.
func portOf(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }

func setPort(p *uint16, port uint16) {
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(p))[:], port)
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := portOf(&sa.Port)
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}

func addrPortToSockaddr(ap netip.AddrPort, sa *unix.RawSockaddrInet6) (uint32, bool) {
	a := ap.Addr()
	port := ap.Port()
	switch {
	case a.Is4():
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		setPort(&sa4.Port, port)
		return unix.SizeofSockaddrInet4, true
	case a.Is6():
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		setPort(&sa.Port, port)
		return unix.SizeofSockaddrInet6, true
	}
	return 0, false
}
