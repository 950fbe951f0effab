package loop

import "golang.org/x/sys/unix"

// A PacketFD on an io_uring loop reads through a multishot read into
// buffers of its own (uring_read_linux.go) instead of read(2) after each
// readiness event.

// ringState is a PacketFD's part in the io_uring backend's I/O.
type ringState struct {
	// ring: the buffers of the multishot read, once attached to such a
	// loop; packets read into them and not yet handed out go with the
	// PacketFD through a handoff.
	ring *readRing
	// readsOwn: a layer above does the reads (UDPConn's recvmmsg), with
	// readiness: never through a ring.
	readsOwn bool
	// recvMsg: a UDPConn, whose ring is read by a multishot recvmsg
	// (records with the sender's address and, with msgControl bytes of
	// room, its control messages) where the kernel has it, and whose
	// reads are recvmmsg's otherwise.
	recvMsg    bool
	msgControl int
	// noRingWrites: the kernel refused a write through the ring (no
	// RWF_NOWAIT for this descriptor): SendBatch uses write(2).
	noRingWrites bool
}

// readsByRing reports whether p's reads on l go through a buffer ring:
// l runs on io_uring and the kernel has multishot reads. Loop-only (on l).
func (p *PacketFD) readsByRing(l *Loop) bool {
	u, ok := l.p.(*uring)
	switch {
	case !ok || p.readsOwn:
		return false
	case p.recvMsg:
		return u.recvMultishot
	}
	return u.readMultishot
}

// attachRing arms p's multishot read on l, mapping its buffers the first
// time. Loop-only (on l).
func (p *PacketFD) attachRing(l *Loop) error {
	if p.ring == nil && p.recvMsg {
		r, err := newRecvMsgRing(defaultRingBuffers, MaxGROBytes, udpRingName, p.msgControl)
		if err != nil {
			return err
		}
		p.ring = r
	}
	if p.ring == nil {
		size := p.maxPacket
		if size <= 0 {
			size = defaultRingPacketLength
		}
		// Each buffer starts on a cache line.
		r, err := newReadRing(defaultRingBuffers, (p.hdrLen+size+63)&^63)
		if err != nil {
			return err
		}
		p.ring = r
	}
	err := l.p.(*uring).attachRing(p.ring, p.fd, p.h.token())
	if err != nil && p.ring.plen == 0 {
		p.ring.free() // nothing in it: the next attach maps a new one
		p.ring = nil
	}
	return err
}

// detachRing takes p's buffers back from l's kernel ring; the packets
// they hold stay pending, for whoever reads p next. Loop-only (on l).
func (p *PacketFD) detachRing(l *Loop) error {
	if p.ring == nil || p.ring.u == nil {
		return nil
	}
	err := l.p.(*uring).detachRing(p.ring)
	if err != nil && p.ring.ringMem == nil {
		// Left to the kernel, packets and all: the next attach maps a
		// new ring.
		p.ring = nil
	}
	return err
}

// freeRing unmaps p's buffers, once detached. The packets they held are
// dropped.
func (p *PacketFD) freeRing() {
	if p.ring != nil {
		p.ring.free()
	}
}

// readPacket reads one packet, its first len(hdr) bytes into hdr and the
// rest into dst: from the ring's pending packets while there are any or
// the ring is armed, with read(2) or readv(2) otherwise. sys says whether
// it made a system call. Loop-only.
func (p *PacketFD) readPacket(hdr, dst []byte) (n int, errno unix.Errno, sys bool) {
	if r := p.ring; r != nil && (r.plen > 0 || r.u != nil || r.failed != 0 || r.eof) {
		n, errno = r.pop(hdr, dst)
		return n, errno, false
	}
	n, errno = p.readDirect(hdr, dst)
	return n, errno, true
}

// settleRing hands the kernel the buffers the reads gave back, and arms
// the ring's read again if it ran out of them. Loop-only.
func (p *PacketFD) settleRing() {
	if p.ring != nil {
		p.ring.settle()
	}
}
