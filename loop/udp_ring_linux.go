package loop

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A UDPConn on the io_uring backend receives through one multishot
// recvmsg request (IORING_OP_RECVMSG with IORING_RECV_MULTISHOT, Linux
// 6.0) into a ring of buffers of its own, the readRing of its PacketFD:
// the kernel receives each datagram as it arrives into a buffer, with the
// sender's address and (with GRO) the UDP_GRO control message in front of
// it, and RecvBatch copies the datagrams out, with no system call. The
// request's life (re-armed when the kernel ends it, ENOBUFS while every
// buffer holds a datagram nobody read, cancelled and waited for on Close
// and Handoff, records kept through a Handoff) is the readRing's
// (uring_read_linux.go). Where the kernel lacks it, or refuses the
// request, the UDPConn reads with recvmmsg after poll readiness.

// udpRingName is the room a record keeps for the sender's address: a
// struct sockaddr_in6 (28 bytes), rounded up to 8 so that the control
// messages after it are aligned.
const udpRingName = 32

// ringReads returns the ring the UDPConn's next datagrams come from (its
// records pending, or its request armed), or nil when they come from
// recvmmsg. A ring whose request the kernel refused is given up here,
// for recvmmsg. Loop-only.
func (u *UDPConn) ringReads(l *Loop) *readRing {
	p := u.p
	r := p.ring
	if r == nil {
		return nil
	}
	if r.unsupported && r.u != nil && r.plen == 0 {
		u.ringFallback(l)
		return nil
	}
	if r.plen > 0 || r.u != nil || r.failed != 0 {
		return r
	}
	return nil
}

// ringFallback drops the ring of a UDPConn whose kernel refused multishot
// recvmsg (its request has ended, having received nothing) and has the
// poll request tell of datagrams again, for recvmmsg. Loop-only.
func (u *UDPConn) ringFallback(l *Loop) {
	p := u.p
	_ = p.detachRing(l)
	p.freeRing()
	p.ring = nil
	p.readsOwn = true // and after a Handoff too
	p.pollIn = Readable
	ev := p.pollIn
	if p.outOn {
		ev |= Writable
	}
	l.st.syscalls.add(1)
	_ = l.p.mod(p.fd, p.h.token(), ev)
	// Datagrams that came before the poll was armed are there already:
	// the caller reads on with recvmmsg, which finds them.
}

// record splits the oldest pending record of a recvmsg ring: the
// datagram (as much of it as the buffer held), the sender's address and
// the control messages. Only while r.plen > 0.
func (r *readRing) record() (payload, name, control []byte) {
	b := r.front()
	if len(b) < r.msgHead {
		return nil, nil, nil // not a record the kernel writes
	}
	namelen := int(binary.NativeEndian.Uint32(b[0:]))
	controllen := int(binary.NativeEndian.Uint32(b[4:]))
	name = b[recvmsgOutLen : recvmsgOutLen+min(namelen, r.msgName)]
	at := recvmsgOutLen + r.msgName
	control = b[at : at+min(controllen, r.msgControl)]
	return b[r.msgHead:], name, control
}

// nameToAddrPort reads a sender's address as the kernel left it in a
// record; the zero AddrPort when it is none it knows.
func nameToAddrPort(name []byte) netip.AddrPort {
	if len(name) < 2 {
		return netip.AddrPort{}
	}
	sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&name[0]))
	switch {
	case sa.Family == unix.AF_INET && len(name) >= unix.SizeofSockaddrInet4,
		sa.Family == unix.AF_INET6 && len(name) >= unix.SizeofSockaddrInet6:
		return sockaddrToAddrPort(sa)
	}
	return netip.AddrPort{}
}

// ringDry ends a batch that emptied r: an error the kernel reported after
// the records is the next call's, which the callback is made to come for
// (its completion's news went with this round), as it is for the
// datagrams in the socket of a ring left behind by a Handoff to a loop
// without one (their readiness may have been reported with the records',
// once); otherwise the callback is armed for the next records.
func (u *UDPConn) ringDry(r *readRing) {
	if r.failed != 0 || r.unsupported || r.u == nil {
		u.p.requeue()
		return
	}
	u.p.armed |= Readable
}

// recvRing is RecvBatch (without GRO) from the ring: the checks done,
// up to MaxUDPBatch datagrams copied out of its records, none of them a
// system call. Loop-only.
func (u *UDPConn) recvRing(l *Loop, r *readRing, bufs [][]byte, sizes []int, addrs []netip.AddrPort, offset int) (int, error) {
	p := u.p
	allow := p.allowance(l)
	if allow <= 0 {
		p.yield(l)
		return 0, ErrWouldBlock
	}
	n := min(len(bufs), allow, MaxUDPBatch)
	i := 0
	var bytes uint64
	for ; i < n && r.plen > 0; i++ {
		payload, name, _ := r.record()
		// A datagram longer than the buffer is cut, as recvmmsg cuts it.
		sizes[i] = copy(bufs[i][offset:], payload)
		if addrs != nil {
			addrs[i] = nameToAddrPort(name)
		}
		bytes += uint64(sizes[i])
		r.drop()
	}
	var err error
	if i == 0 {
		if e := r.none(); e != 0 {
			err = p.readError(l, e)
		} else {
			p.armed |= Readable // end of file: recvmmsg's 0 messages
		}
	}
	p.settleRing()
	if i == 0 {
		return 0, err
	}
	p.used += i
	l.st.packetsIn.add(uint64(i))
	l.st.bytesIn.add(bytes)
	if i < n {
		u.ringDry(r)
	} else if p.used >= p.budget {
		p.yield(l)
	}
	return i, nil
}

// recvMessagesRing is recvMessages from the ring: up to m records copied
// to bufs[:m], each with room for a coalesced message, their lengths,
// segment sizes (from the UDP_GRO control message, as recvmmsg gets it)
// and (withAddrs) senders left in groMsgs. Loop-only.
func (u *UDPConn) recvMessagesRing(l *Loop, r *readRing, bufs [][]byte, m, offset int, withAddrs bool) (int, error) {
	p := u.p
	got := 0
	for ; got < m && r.plen > 0; got++ {
		payload, name, control := r.record()
		g := groMsg{length: copy(bufs[got][offset:offset+MaxGROBytes], payload), seg: groSegment(control)}
		if withAddrs {
			g.from = nameToAddrPort(name)
		}
		u.groMsgs[got] = g
		r.drop()
	}
	var err error
	if got == 0 {
		if e := r.none(); e != 0 {
			err = p.readError(l, e)
		}
	} else if got < m {
		u.ringDry(r)
	}
	p.settleRing()
	return got, err
}
