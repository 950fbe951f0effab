package loop

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxGROBytes is the room a receive buffer needs after its offset when a
// UDPConn has GRO on: the kernel hands over a coalesced datagram of up to
// 64 KiB in one piece and cuts whatever does not fit, so a smaller buffer
// would lose segments.
const MaxGROBytes = 65535

// groMsg is one message recvmmsg returned with GRO on: length bytes of
// equal-size segments (the last may be shorter) from one sender.
type groMsg struct {
	length, seg int
	from        netip.AddrPort
}

// segments is how many datagrams the message carries.
func (m groMsg) segments() int {
	if m.seg <= 0 || m.length <= m.seg {
		return 1
	}
	return (m.length + m.seg - 1) / m.seg
}

// groPending holds segments that did not fit the caller's buffers, copied
// out of them, for the next RecvBatch: the GRO counterpart of a Codec's
// kept packets, under the same rule (PacketFD.keep: counted, the callback
// requeued). It is rare (a call with fewer
// buffers than the segments that arrived) and its slab is made on first
// use and kept.
type groPending struct {
	slab  []byte
	msgs  []pendingMsg
	first int // msgs[first:] are still pending
}

type pendingMsg struct {
	from       netip.AddrPort
	seg        int
	start, end int // the message's undelivered bytes, slab[start:end]
}

func (g *groPending) empty() bool { return g.first == len(g.msgs) }

// keep copies segments [from, ...) of message m, which sit in b, to the
// pending slab.
func (g *groPending) keep(m groMsg, b []byte, from int) {
	if g.empty() {
		g.slab, g.msgs, g.first = g.slab[:0], g.msgs[:0], 0
	}
	rest := b[from*m.seg : m.length]
	start := len(g.slab)
	g.slab = append(g.slab, rest...)
	g.msgs = append(g.msgs, pendingMsg{from: m.from, seg: m.seg, start: start, end: len(g.slab)})
}

// deliver copies pending segments into bufs[n:], at offset, and returns
// the new n and the bytes delivered.
func (g *groPending) deliver(bufs [][]byte, sizes []int, addrs []netip.AddrPort, offset, n int) (int, int) {
	bytes := 0
	for !g.empty() && n < len(bufs) {
		pm := &g.msgs[g.first]
		end := min(pm.start+pm.seg, pm.end)
		if pm.seg <= 0 {
			end = pm.end
		}
		sizes[n] = copy(bufs[n][offset:], g.slab[pm.start:end])
		if addrs != nil {
			addrs[n] = pm.from
		}
		bytes += sizes[n]
		n++
		if pm.start = end; pm.start == pm.end {
			g.first++
		}
	}
	return n, bytes
}

// spread lays the segments of msgs, received one message per buffer into
// bufs[0:len(msgs)] at offset, out over bufs: message j's segments go to
// consecutive buffers starting after all of the earlier messages'
// segments, each with its length in sizes and its sender in addrs (if not
// nil). Segments past the last buffer go to pending. It returns how many
// buffers it filled and their bytes. Pure: no system call.
//
// Message j sits in buffer j and its segments start at buffer s(j) ≥ j,
// and s(j+1) = s(j)+segments(j). Working from the last message to the
// first, every buffer written belongs to a message already dealt with or
// to the one at hand, never to one still to come: nothing is overwritten
// before it is copied.
func spread(msgs []groMsg, bufs [][]byte, sizes []int, addrs []netip.AddrPort, offset int, pending *groPending) (int, int) {
	// Where each message starts, and the first that does not fit whole.
	var starts [MaxUDPBatch]int
	at, cut := 0, len(msgs)
	for j, m := range msgs {
		starts[j] = at
		if cut == len(msgs) && at+m.segments() > len(bufs) {
			cut = j
		}
		at += m.segments()
	}
	// Copy out what does not fit before any buffer is written.
	filled := min(at, len(bufs))
	if cut < len(msgs) {
		for j := cut; j < len(msgs); j++ {
			placed := max(0, len(bufs)-starts[j])
			if j > cut {
				placed = 0
			}
			pending.keep(msgs[j], bufs[j][offset:], placed)
		}
	}
	bytes := 0
	for j := min(cut, len(msgs)-1); j >= 0; j-- {
		m := msgs[j]
		src := bufs[j][offset : offset+m.length]
		k := m.segments()
		if j == cut {
			k = len(bufs) - starts[j]
		}
		// Later segments first: the first may stay where it is.
		for t := k - 1; t >= 0; t-- {
			dst := starts[j] + t
			seg := src
			if m.seg > 0 {
				seg = src[t*m.seg : min((t+1)*m.seg, m.length)]
			}
			if dst != j || t != 0 {
				copy(bufs[dst][offset:], seg)
			}
			sizes[dst] = len(seg)
			if addrs != nil {
				addrs[dst] = m.from
			}
			bytes += len(seg)
		}
	}
	return filled, bytes
}

// recvGRO is RecvBatch on a socket with UDP_GRO: pending segments first,
// then recvmmsg into the buffers left, its coalesced messages spread over
// the ones after them, again while every message asked for comes and room
// is left, so that a short return means the socket ran dry (or the budget
// is spent). Called by RecvBatch with the checks done.
func (u *UDPConn) recvGRO(l *Loop, bufs [][]byte, sizes []int, addrs []netip.AddrPort, offset int) (int, error) {
	p := u.p
	if err := p.deferred; err != nil {
		p.deferred = nil
		return 0, err
	}
	for i := range bufs {
		if len(bufs[i]) < offset+MaxGROBytes {
			return 0, &OpError{Op: "udp recvbatch: buffer " + itoa(i) + " holds " + itoa(len(bufs[i])) + " bytes; with GRO each needs offset+" + itoa(MaxGROBytes) + " (" + itoa(offset+MaxGROBytes) + ")", Fd: p.fd, Err: errInvalid}
		}
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	// Kept segments count against the round's budget like fresh ones: a
	// recvmmsg can leave thousands of them.
	allow := p.allowance(l)
	if allow <= 0 {
		p.yield(l)
		return 0, ErrWouldBlock
	}
	n, bytes := u.pending.deliver(bufs[:min(len(bufs), allow)], sizes, addrs, offset, 0)
	account := func() {
		p.used += n
		l.st.packetsIn.add(uint64(n))
		l.st.bytesIn.add(uint64(bytes))
	}
	if !u.pending.empty() {
		p.used += n
		return p.keep(l, n, bytes) // more kept: come back next round
	}
	for {
		allow := p.allowance(l) - n
		if n == len(bufs) || allow <= 0 {
			account()
			if n < len(bufs) {
				p.yield(l)
			}
			if n == 0 {
				return 0, ErrWouldBlock
			}
			return n, nil
		}
		// The buffers this round's budget still allows: a message may
		// carry many datagrams, and what does not fit them is kept.
		rest := bufs[n:min(len(bufs), n+allow)]
		// One message per buffer left, though a message may carry many
		// datagrams and the surplus goes to pending. Asking for fewer, by
		// the datagrams per message seen last, was tried: it saves that
		// copy but costs more system calls, and the tun2udp relay lost
		// 1-4% with it (tunbench -scenarios tun2udp, A/B).
		m := min(len(rest), MaxUDPBatch)
		got, err := u.recvMessages(l, rest, m, offset, addrs != nil)
		if err != nil {
			if n > 0 {
				account()
				if err != ErrWouldBlock {
					// Report it on the next call, as the kernel reports it once.
					p.deferred = err
					p.requeue()
				}
				return n, nil
			}
			return 0, err
		}
		var addrsRest []netip.AddrPort
		if addrs != nil {
			addrsRest = addrs[n:]
		}
		k, b := spread(u.groMsgs[:got], rest, sizes[n:], addrsRest, offset, &u.pending)
		n += k
		bytes += b
		switch {
		case !u.pending.empty():
			p.used += n
			return p.keep(l, n, bytes)
		case got < m:
			account()
			p.armed |= Readable // ran dry: recvmmsg stops at the first EAGAIN
			return n, nil
		}
		// Every message asked for came: there may be more, and room.
	}
}

// recvMessages is one recvmmsg of up to m messages into bufs[:m], each
// with room for a coalesced message; it leaves their lengths, segment
// sizes and (withAddrs) senders in groMsgs and returns how many came.
func (u *UDPConn) recvMessages(l *Loop, bufs [][]byte, m, offset int, withAddrs bool) (int, error) {
	p := u.p
	if r := u.ringReads(l); r != nil {
		return u.recvMessagesRing(l, r, bufs, m, offset, withAddrs)
	}
	for i := range m {
		u.setRecv(i, bufs[i][offset:offset+MaxGROBytes], true)
	}
	got, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(p.fd), uintptr(unsafe.Pointer(&u.msgs[0])), uintptr(m), 0, 0, 0)
	l.st.syscalls.add(1)
	if errno == 0 {
		for i := range int(got) {
			h := &u.msgs[i].Hdr
			g := groMsg{length: int(u.msgs[i].Len), seg: groSegment(u.cmsgs[i][:min(int(h.Controllen), len(u.cmsgs[i]))])}
			if withAddrs {
				g.from = sockaddrToAddrPort(&u.names[i])
			}
			u.groMsgs[i] = g
		}
	}
	for i := range m {
		u.iovs[i] = unix.Iovec{}
		u.msgs[i].Hdr = unix.Msghdr{}
	}
	if errno != 0 {
		return 0, p.readError(l, errno)
	}
	return int(got), nil
}

// groSegment reads the segment size from a received message's control
// data (the UDP_GRO message); 0 when there is none (a datagram that was
// not coalesced) or the data is malformed.
func groSegment(c []byte) int {
	for len(c) >= unix.CmsgLen(0) {
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		clen := int(ch.Len)
		if clen < unix.CmsgLen(0) || clen > len(c) {
			return 0
		}
		if ch.Level == unix.IPPROTO_UDP && ch.Type == unix.UDP_GRO && clen >= unix.CmsgLen(4) {
			return max(0, int(int32(binary.NativeEndian.Uint32(c[unix.CmsgLen(0):]))))
		}
		next := unix.CmsgSpace(clen - unix.CmsgLen(0))
		if next > len(c) {
			return 0
		}
		c = c[next:]
	}
	return 0
}
