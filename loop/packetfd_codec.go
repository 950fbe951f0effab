package loop

import "io"

// recvCodec is RecvBatch through the Codec, with the arguments checked:
// kept packets first, then reads, each laid out by Decode over the buffers
// from the one it landed in. Loop-only.
func (p *PacketFD) recvCodec(l *Loop, bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	defer p.settleRing()
	if err := p.deferred; err != nil {
		p.deferred = nil
		return 0, err
	}
	n, bytes := 0, 0
	if p.kept {
		k, b, more, err := p.codec.Kept(bufs, sizes, offset)
		p.kept = more
		if err != nil {
			return 0, &OpError{Op: "recvbatch: kept packets dropped", Fd: p.fd, Err: err}
		}
		n, bytes = k, b
		if more {
			return p.keep(l, n, bytes)
		}
	}
	start := offset - p.hdrLen
	var err error
	for n < len(bufs) {
		if p.allowance(l) <= 0 {
			p.yield(l) // armed and requeued: the descriptor may hold more
			err = ErrWouldBlock
			break
		}
		got, errno, sys := p.readPacket(nil, bufs[n][start:])
		if sys {
			l.st.syscalls.add(1)
		}
		if errno != 0 {
			err = p.readError(l, errno)
			break
		}
		p.used++
		k, b, more, derr := p.codec.Decode(bufs[n:], sizes[n:], offset, got)
		if derr != nil {
			// The read took a packet, which is dropped; it counts as one.
			l.st.packetsIn.add(1)
			l.st.bytesIn.add(uint64(max(0, got-p.hdrLen)))
			err = &OpError{Op: "recvbatch: read dropped", Fd: p.fd, Err: derr}
			break
		}
		n += k
		bytes += b
		if more {
			p.kept = true
			return p.keep(l, n, bytes)
		}
	}
	l.st.packetsIn.add(uint64(n))
	l.st.bytesIn.add(uint64(bytes))
	switch {
	case err == nil:
		return n, nil
	case err == ErrWouldBlock:
		if n > 0 {
			return n, nil // armed
		}
		return 0, err
	case n == 0:
		return 0, err
	}
	// Packets and an error: the error waits for the next call, which the
	// callback is made to come for.
	p.deferred = err
	p.requeue()
	return n, nil
}

// keep ends a RecvBatch that leaves packets kept by the codec: they are
// not in the kernel's queue, so the descriptor's readiness would not say
// so; the callback is armed and the registration requeued to run again.
func (p *PacketFD) keep(l *Loop, n, bytes int) (int, error) {
	l.st.packetsIn.add(uint64(n))
	l.st.bytesIn.add(uint64(bytes))
	p.requeue()
	return n, nil
}

// requeue arms Readable and has the loop run the callback next round.
func (p *PacketFD) requeue() {
	p.armed |= Readable
	p.h.Requeue(Readable)
}

// sendCodec is SendBatch through the Codec: packets grouped into writes by
// Encode, one writev each. Loop-only.
func (p *PacketFD) sendCodec(l *Loop, bufs [][]byte, offset int) (int, error) {
	// A packet with no byte would go out as a bare header: the ones before
	// it are sent and it is refused, so that bufs[sent] is the one at
	// fault, as for every SendBatch.
	bad := len(bufs)
	for i, b := range bufs {
		if len(b) <= offset {
			bad = i
			break
		}
	}
	if bad == 0 {
		return 0, p.noRoom("sendbatch", 0, len(bufs[0]), offset)
	}
	writes, err := p.codec.Encode(bufs[:bad], offset)
	if err != nil {
		return 0, &OpError{Op: "sendbatch: encode", Fd: p.fd, Err: err}
	}
	sent := 0
	for j := range writes {
		vec, idx := p.codec.Write(j)
		err := p.writeVec(l, vec)
		if err == nil {
			bytes := 0
			for _, i := range idx {
				bytes += len(bufs[i]) - offset
			}
			l.st.packetsOut.add(uint64(len(idx)))
			l.st.bytesOut.add(uint64(bytes))
			sent += len(idx)
			continue
		}
		if len(idx) == 1 || err == ErrWouldBlock {
			return sent, err
		}
		// The kernel refused the merged write: its packets one by one,
		// each behind its own header (Encode left them untouched).
		for _, i := range idx {
			pkt := bufs[i][offset:]
			if err := p.framer.PutHeader(p.shdr[:p.hdrLen], pkt); err != nil {
				return sent, &OpError{Op: "sendbatch: framing packet " + itoa(i), Fd: p.fd, Err: err}
			}
			p.one[0] = pkt
			err := p.sendParts(l, pkt, p.one[:])
			p.one[0] = nil // keep no reference to the caller's buffer
			if err != nil {
				return sent, err
			}
			sent++
		}
	}
	if bad < len(bufs) {
		return sent, p.noRoom("sendbatch", bad, len(bufs[bad]), offset)
	}
	return sent, nil
}

// writeVec writes vec, a codec's write with its header, with one writev;
// it counts the system call, not the packets.
func (p *PacketFD) writeVec(l *Loop, vec [][]byte) error {
	if len(vec) > len(p.iov) {
		return &OpError{Op: "sendbatch: a write of " + itoa(len(vec)) + " parts, more than " + itoa(len(p.iov)), Fd: p.fd, Err: errInvalid}
	}
	total := 0
	for k, b := range vec {
		setIovec(&p.iov[k], b)
		total += len(b)
	}
	n, errno := writevFD(p.fd, p.iov[:len(vec)])
	p.clearIovecs(len(vec))
	l.st.syscalls.add(1)
	if errno != 0 {
		return p.writeError(l, errno)
	}
	if n != total {
		return &OpError{Op: "writev: short write of " + itoa(n) + " of " + itoa(total) + " bytes", Fd: p.fd, Err: io.ErrShortWrite}
	}
	return nil
}
