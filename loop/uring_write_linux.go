package loop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Writes on the io_uring backend: SendBatch queues one IORING_OP_WRITE per
// packet, linked in order (IOSQE_IO_LINK: a write that fails cancels the
// ones after it, so that "bufs[n] failed, nothing after it was sent" holds
// as it does for write(2) one by one), and hands them to the kernel with
// one io_uring_enter that also waits for their completions. Each write
// carries RWF_NOWAIT: one that would block completes at once with EAGAIN
// instead of being parked by the kernel on the caller's buffer, so no
// write outlives the call, and the buffers are the caller's again when
// SendBatch returns, as on epoll.

const (
	iouOpWrite     = 23
	iouSQEIOLink   = 1 << 2
	rwfNoWait      = 0x8
	udWriteBase    = uint64(1) << 62 // user_data of the i-th write of a batch: udWriteBase+i
	maxLinkedBatch = 64
)

// writeLinked writes each bufs[i][start:] as one packet, in order, and
// returns how many were written whole. When that is fewer than len(bufs),
// errno is why bufs[n] was not (0 with short set: written only in part);
// nothing after it was written. calls is the system calls made. With ok
// false the ring could not take the rest as one chain, and bufs[n:] are
// the caller's to write. Loop-only.
func (u *uring) writeLinked(fd int, bufs [][]byte, start int) (n int, errno unix.Errno, short bool, calls int, ok bool) {
	for n < len(bufs) {
		chunk := bufs[n:min(len(bufs), n+min(maxLinkedBatch, int(u.sqEntries)))]
		k, e, s, c, fits := u.writeChunk(fd, chunk, start)
		n += k
		calls += c
		if !fits {
			return n, 0, false, calls, false
		}
		if e != 0 || s {
			return n, e, s, calls, true
		}
	}
	return n, 0, false, calls, true
}

// wresPending marks a write of the chain whose completion has not come.
const wresPending = -1 << 31

func (u *uring) writeChunk(fd int, bufs [][]byte, start int) (n int, errno unix.Errno, short bool, calls int, fits bool) {
	if cap(u.wres) < len(bufs) {
		u.wres = make([]int32, 0, maxLinkedBatch)
	}
	u.wres = u.wres[:len(bufs)]
	for i := range u.wres {
		u.wres[i] = wresPending
	}
	// Room for the whole chain: a chain split over two submissions would
	// not be linked across them.
	if u.sqEntries-u.pending() < uint32(len(bufs)) {
		u.submit()
		calls++
		if u.sqEntries-u.pending() < uint32(len(bufs)) {
			return 0, 0, false, calls, false // the kernel left entries queued
		}
	}
	for i, b := range bufs {
		s := u.sqe()
		s.opcode = iouOpWrite
		s.fd = int32(fd)
		s.addr = uint64(uintptr(unsafe.Pointer(&b[start])))
		s.len = uint32(len(b) - start)
		s.opFlags = rwfNoWait
		s.userData = udWriteBase + uint64(i)
		if i < len(bufs)-1 {
			s.flags = iouSQEIOLink
		}
	}
	u.wdone = 0
	u.writing = true
	// Every write of the chain completes soon (RWF_NOWAIT: none is
	// parked), and until it has the kernel may still read the caller's
	// buffer, so the call waits for all of them. Only a ring that keeps
	// refusing io_uring_enter ends the wait early.
	var failed unix.Errno
	for refusals := 0; u.wdone < len(bufs) && refusals < 100; {
		// Writes to a TUN device or a socket complete within the call;
		// the wait is for a link the kernel runs as task work.
		e := u.enterWait(len(bufs)-u.wdone, -1)
		calls++
		if e != 0 {
			failed = e
			refusals++
		}
		u.reapInto(&u.spill, false)
	}
	u.writing = false
	for i, b := range bufs {
		r := u.wres[i]
		switch {
		case r == wresPending:
			return n, failed, false, calls, true
		case r < 0:
			return n, unix.Errno(-r), false, calls, true
		case int(r) != len(b)-start:
			return n, 0, true, calls, true
		}
		n++
	}
	return n, 0, false, calls, true
}

// writeCompletion takes the completion of write i of the batch in flight.
func (u *uring) writeCompletion(i uint64, res int32) {
	if !u.writing || i >= uint64(len(u.wres)) {
		return
	}
	u.wres[i] = res
	u.wdone++
}

// writeRing writes bufs[i][start:] through l's ring when p's reads go
// through it, and says with ok whether it did; otherwise (or where the
// kernel refuses RWF_NOWAIT writes to the descriptor, from then on) the
// caller writes them itself, from bufs[n]. Loop-only (on l).
func (p *PacketFD) writeRing(l *Loop, bufs [][]byte, start int) (n int, errno unix.Errno, short bool, calls int, ok bool) {
	if p.ring == nil || p.ring.u == nil || p.noRingWrites || p.ring.u != l.p {
		return 0, 0, false, 0, false
	}
	n, errno, short, calls, ok = p.ring.u.writeLinked(p.fd, bufs, start)
	if ok && errno == unix.EOPNOTSUPP {
		p.noRingWrites = true
		return n, 0, false, calls, false
	}
	return n, errno, short, calls, ok
}
