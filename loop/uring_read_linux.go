package loop

import (
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reads on the io_uring backend: one multishot read request per PacketFD
// (IORING_OP_READ_MULTISHOT, used from Linux 6.12: see newURing) that
// selects its buffers from a
// provided-buffer ring (IORING_REGISTER_PBUF_RING, 5.19). While the request
// is armed the kernel reads each packet as it arrives into a buffer of the
// ring and posts a completion naming it; the loop's wait collects them
// with the other completions, without a system call when they are already
// there, and RecvBatch copies the packets out and gives the buffers back.
// A TUN read returns one packet, so on epoll k packets cost k reads and a
// trailing EAGAIN on top of the wait; here they cost the wait alone.
//
// The buffers and the ring the kernel takes them from are mappings of
// their own, outside the Go heap: the kernel writes into them at any time
// while the request is armed. They are unmapped only after the request's
// last completion has arrived (detach waits for it).
//
// The request ends when the ring runs out of buffers (a completion with
// -ENOBUFS and no IORING_CQE_F_MORE): the packet that found no buffer stays
// in the device's queue, and the request is armed again once RecvBatch has
// given buffers back. It may also end for reasons of the kernel's own (no
// IORING_CQE_F_MORE on a packet): it is armed again at once.

const (
	iouOpReadMultishot = 49 // Linux 6.7
	iouOpRecvmsg       = 10
	iouOpSendZC        = 47 // Linux 6.0, with IORING_RECV_MULTISHOT: the probe's witness of it
	iouRecvMultishot   = 1 << 1
	// recvmsgOutLen is struct io_uring_recvmsg_out: namelen, controllen,
	// payloadlen and flags, 32 bits each, at the start of every buffer a
	// multishot recvmsg fills.
	recvmsgOutLen = 16

	iouSQEBufferSelect = 1 << 5
	iouCQEFBuffer      = 1 << 0
	iouCQEBufferShift  = 16

	iouRegisterProbe        = 8
	iouRegisterPBufRing     = 22
	iouUnregisterPBufRing   = 23
	iouProbeOpSupported     = 1 << 0
	ringBufEntrySize        = 16 // struct io_uring_buf
	defaultRingBuffers      = 256
	ringDetachTries         = 100
	defaultRingPacketLength = 65535
)

type iouBufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// ringPacket is one completed read waiting in a buffer of the ring.
type ringPacket struct {
	bid uint16
	n   int32
}

// readRing is a PacketFD's buffers and its multishot read. The PacketFD
// owns it for its whole life (pending packets go with it through a
// handoff); the uring it is attached to drives it. Loop-only (the owning
// loop's thread).
//
// A ring for a UDPConn (msgHead > 0) is read by a multishot recvmsg
// instead: each buffer then holds a record, struct io_uring_recvmsg_out,
// the sender's address in msgName bytes, control messages in msgControl
// bytes, then the datagram; the msghdr that asks for those sizes lives
// in ringMem after the ring's entries, where the kernel may read it for
// as long as the request is armed.
type readRing struct {
	bufSize int // bytes per buffer: header and the largest packet
	entries uint32
	ringMem []byte // entries × struct io_uring_buf; the tail overlays entry 0
	bufMem  []byte // entries × bufSize

	// For a recvmsg ring: the room asked for the address and the control
	// messages, and where the payload starts (0: a ring of plain reads).
	msgName, msgControl, msgHead int
	// worked: a datagram has come through the recvmsg request, which the
	// kernel therefore supports; unsupported: the kernel refused the
	// request (EINVAL) before any did, and the UDPConn reads with
	// recvmmsg instead.
	worked, unsupported bool

	tail, published uint16 // buffers given to the kernel: ours, and what it sees

	// pending: packets read and not yet handed out, oldest first.
	pend        []ringPacket
	phead, plen int

	// While attached to a uring.
	u       *uring
	fd      int
	tok     uint64
	bgid    uint16
	req     uint32 // index+1 of the read request in u.reqs; 0 when none
	starved bool   // the request ended for want of buffers: re-arm on return
	// failed is a read error the kernel reported; the next read returns it
	// once, and arms the request again as it returns.
	failed unix.Errno
	// eof: the read returned 0 (end of file, or an empty datagram): the
	// next read returns 0 once, and arms the request again as it
	// returns (not the kernel's completion, which would spin at end of
	// file: each new read would return 0 at once).
	eof   bool
	rearm bool
	// signals is u.reaps when the loop was last told of news, and
	// signalled what it was told then: one event per reap pass, unless a
	// later completion of the pass brings a condition not yet told.
	signals   uint64
	signalled Events
}

// newReadRing maps entries buffers of bufSize bytes and the ring that
// lends them to the kernel.
func newReadRing(entries uint32, bufSize int) (*readRing, error) {
	return mapReadRing(&readRing{bufSize: bufSize, entries: entries}, 0)
}

// newRecvMsgRing maps entries buffers for a multishot recvmsg of
// datagrams of up to payload bytes, with name bytes of room for the
// sender's address and control bytes for control messages.
func newRecvMsgRing(entries uint32, payload, name, control int) (*readRing, error) {
	head := recvmsgOutLen + name + control
	// Buffers start on 64-byte boundaries: the records' 32-bit fields
	// and the cmsghdrs stay aligned, and no two buffers share a line.
	size := (head + payload + 63) &^ 63
	r := &readRing{bufSize: size, entries: entries, msgName: name, msgControl: control, msgHead: head}
	if _, err := mapReadRing(r, unsafe.Sizeof(unix.Msghdr{})); err != nil {
		return nil, err
	}
	h := r.msghdr()
	*h = unix.Msghdr{Namelen: uint32(name)}
	h.SetControllen(control)
	return r, nil
}

// msghdr is the recvmsg request's msghdr, after the ring's entries (an
// io_uring_buf is 16 bytes, so it is 8-byte aligned).
func (r *readRing) msghdr() *unix.Msghdr {
	return (*unix.Msghdr)(unsafe.Pointer(&r.ringMem[int(r.entries)*ringBufEntrySize]))
}

// mapReadRing maps r's ring, with extra bytes after its entries, and its
// buffers.
func mapReadRing(r *readRing, extra uintptr) (*readRing, error) {
	if r.entries == 0 || r.entries&(r.entries-1) != 0 || r.entries > 1<<15 {
		// The kernel's rule for a buffer ring; the pending queue's
		// indexes wrap with a mask on the strength of it.
		return nil, &OpError{Op: "io_uring buffer ring of " + strconv.Itoa(int(r.entries)) + " entries: not a power of two up to 32768", Fd: -1, Err: errInvalid}
	}
	r.pend = make([]ringPacket, r.entries)
	var err error
	r.ringMem, err = unix.Mmap(-1, 0, int(r.entries)*ringBufEntrySize+int(extra), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, &OpError{Op: "mmap io_uring buffer ring", Fd: -1, Err: err}
	}
	entries, bufSize := r.entries, r.bufSize
	// The buffers are touched only as far as packets fill them: small
	// packets cost a page per buffer, whatever bufSize is.
	// MAP_NORESERVE: only the pages packets touch are ever committed, so
	// a large MaxPacket does not fail under strict overcommit.
	r.bufMem, err = unix.Mmap(-1, 0, int(entries)*bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		unix.Munmap(r.ringMem)
		return nil, &OpError{Op: "mmap io_uring read buffers", Fd: -1, Err: err}
	}
	return r, nil
}

// free unmaps the ring. Only once it is detached: the kernel no longer
// knows its addresses.
func (r *readRing) free() {
	if r.u != nil || r.ringMem == nil {
		return
	}
	unix.Munmap(r.ringMem)
	unix.Munmap(r.bufMem)
	r.ringMem, r.bufMem = nil, nil
}

func (r *readRing) buf(bid uint16) []byte {
	off := int(bid) * r.bufSize
	return r.bufMem[off : off+r.bufSize : off+r.bufSize]
}

// lend puts buffer bid in the ring's next free slot; publish makes it
// visible to the kernel.
func (r *readRing) lend(bid uint16) {
	e := unsafe.Slice((*byte)(unsafe.Pointer(&r.ringMem[int(uint32(r.tail)&(r.entries-1))*ringBufEntrySize])), ringBufEntrySize)
	*(*uint64)(unsafe.Pointer(&e[0])) = uint64(uintptr(unsafe.Pointer(&r.bufMem[int(bid)*r.bufSize])))
	*(*uint32)(unsafe.Pointer(&e[8])) = uint32(r.bufSize)
	*(*uint16)(unsafe.Pointer(&e[12])) = bid
	r.tail++
}

// publish stores the tail with release ordering. The tail is the 16 bits
// after entry 0's buffer id; Go has no 16-bit atomic store, so the two go
// in one 32-bit store, entry 0's id written back as it is (only we write
// it).
func (r *readRing) publish() {
	if r.tail == r.published {
		return
	}
	w := (*uint32)(unsafe.Pointer(&r.ringMem[12]))
	bid0 := *(*uint16)(unsafe.Pointer(&r.ringMem[12]))
	if bigEndian {
		atomic.StoreUint32(w, uint32(bid0)<<16|uint32(r.tail))
	} else {
		atomic.StoreUint32(w, uint32(r.tail)<<16|uint32(bid0))
	}
	r.published = r.tail
}

var bigEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 0
}()

// refill lends every buffer that holds no pending packet: a ring the
// kernel has just registered starts with nothing in it.
func (r *readRing) refill() {
	held := make([]bool, r.entries)
	for i := 0; i < r.plen; i++ {
		held[r.pend[(r.phead+i)&(len(r.pend)-1)].bid] = true
	}
	r.tail = 0
	for bid := range r.entries {
		if !held[bid] {
			r.lend(uint16(bid))
		}
	}
	// The tail is stored whatever its value: the ring's memory still
	// holds the last registration's, and the kernel starts counting from
	// 0. With every buffer pending (nothing lent, tail 0) a tail left at
	// 256 would hand the kernel the buffers of unread packets.
	r.published = r.tail - 1
	r.publish()
}

// push records a completed read. There are never more than entries of
// them: each holds a buffer.
func (r *readRing) push(bid uint16, n int32) {
	if r.plen == len(r.pend) || uint32(bid) >= r.entries {
		// Only a kernel that broke the ring's contract gets here: the
		// packet cannot be kept without losing another.
		panic("loop: io_uring read completed into buffer " + strconv.Itoa(int(bid)) + " with " + strconv.Itoa(r.plen) + " packets pending")
	}
	r.pend[(r.phead+r.plen)&(len(r.pend)-1)] = ringPacket{bid: bid, n: n}
	r.plen++
}

// pop hands out the oldest pending packet: its first len(hdr) bytes into
// hdr, the rest into dst (a packet longer than that is cut, as a read into
// dst would cut it), and the buffer back to the ring (visible to the
// kernel at the next settle). It returns the packet's length as a read
// would (header included, cut to what was copied), or EAGAIN when nothing
// is pending, or a read error the kernel reported.
func (r *readRing) pop(hdr, dst []byte) (int, unix.Errno) {
	if r.plen == 0 {
		return 0, r.none()
	}
	data := r.front()
	h := copy(hdr, data)
	n := h + copy(dst, data[h:])
	r.drop()
	return n, 0
}

// none is what a read finds with nothing pending: a read error the
// kernel reported or end of file (0), once, the request being armed
// again at the next settle; EAGAIN otherwise.
func (r *readRing) none() unix.Errno {
	if e := r.failed; e != 0 {
		r.failed = 0
		r.rearm = true
		return e
	}
	if r.eof {
		r.eof = false
		r.rearm = true
		return 0
	}
	return unix.EAGAIN
}

// front is what the oldest pending completion left in its buffer; only
// while plen > 0, and until drop.
func (r *readRing) front() []byte {
	pk := r.pend[r.phead]
	return r.buf(pk.bid)[:pk.n]
}

// drop hands the oldest pending completion's buffer back to the ring.
func (r *readRing) drop() {
	pk := r.pend[r.phead]
	r.phead = (r.phead + 1) & (len(r.pend) - 1)
	r.plen--
	if r.u != nil {
		r.lend(pk.bid)
	}
}

// settle makes the buffers given back visible and arms the read again if
// it ended for want of them (or after a reported error). Called after a
// batch of pops.
func (r *readRing) settle() {
	if r.u == nil {
		return
	}
	r.publish()
	if r.req == 0 && (r.rearm || (r.starved && r.plen < int(r.entries))) {
		r.starved, r.rearm = false, false
		r.u.armRead(r)
	}
}

// probeOps reports whether the kernel supports every one of ops
// (IORING_OP_*). Multishot reads (IORING_OP_READ_MULTISHOT) came in 6.7;
// multishot recvmsg has no opcode of its own: IORING_RECV_MULTISHOT came
// in 6.0, the release of IORING_OP_SEND_ZC, which witnesses it.
func (u *uring) probeOps(ops ...uint8) bool {
	// struct io_uring_probe: 16 bytes, then 8 per op.
	const probed = 64
	buf := make([]byte, 16+probed*8)
	_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(u.fd), iouRegisterProbe, uintptr(unsafe.Pointer(&buf[0])), probed, 0, 0)
	if e != 0 {
		return false
	}
	lastOp := buf[0]
	for _, o := range ops {
		if o >= probed || lastOp < o {
			return false
		}
		op := buf[16+int(o)*8:]
		if *(*uint16)(unsafe.Pointer(&op[2]))&iouProbeOpSupported == 0 {
			return false
		}
	}
	return true
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(major, minor int) bool {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return false
	}
	var v [2]int
	i := 0
	for _, c := range uts.Release {
		switch {
		case c >= '0' && c <= '9':
			v[i] = v[i]*10 + int(c-'0')
		case c == '.' && i == 0:
			i = 1
		default:
			return v[0] > major || (v[0] == major && v[1] >= minor)
		}
	}
	return v[0] > major || (v[0] == major && v[1] >= minor)
}

// attachRing registers r's buffers with the ring and arms its multishot
// read of fd, whose readiness goes to tok. Loop-only.
func (u *uring) attachRing(r *readRing, fd int, tok uint64) error {
	if r.msgHead > 0 && !u.recvMultishot {
		return &OpError{Op: "io_uring: multishot recvmsg needs Linux 6.0", Fd: fd, Err: ErrNotSupported}
	}
	if r.msgHead == 0 && !u.readMultishot {
		return &OpError{Op: "io_uring: multishot read needs Linux 6.12", Fd: fd, Err: ErrNotSupported}
	}
	var bgid uint16
	if n := len(u.freeGroups); n > 0 {
		bgid = u.freeGroups[n-1]
		u.freeGroups = u.freeGroups[:n-1]
	} else {
		if u.nextGroup == ^uint16(0) {
			return &OpError{Op: "io_uring: out of buffer group ids", Fd: fd, Err: unix.ENOSPC}
		}
		bgid = u.nextGroup
		u.nextGroup++
	}
	r.refill()
	reg := iouBufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&r.ringMem[0]))), ringEntries: r.entries, bgid: bgid}
	_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(u.fd), iouRegisterPBufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0)
	if e != 0 {
		u.freeGroups = append(u.freeGroups, bgid)
		return &OpError{Op: "io_uring_register buffer ring of " + strconv.Itoa(int(r.entries)), Fd: fd, Err: e}
	}
	r.u, r.fd, r.tok, r.bgid = u, fd, tok, bgid
	r.starved, r.failed, r.eof, r.rearm, r.req = false, 0, false, false, 0
	u.armRead(r)
	if err := u.submit(); err != nil {
		u.detachRing(r)
		return err
	}
	return nil
}

// armRead queues r's multishot read.
func (u *uring) armRead(r *readRing) {
	id := u.newReq(pollReq{tok: r.tok, fd: int32(r.fd), used: true, ring: r})
	s := u.sqe()
	s.opcode = iouOpReadMultishot
	if r.msgHead > 0 {
		// The msghdr asks for the room of the address and the control
		// messages; it has no iovec: each datagram goes to a buffer of
		// the ring, whole.
		s.opcode = iouOpRecvmsg
		s.ioprio = iouRecvMultishot | recvmsgTestFlags
		s.addr = uint64(uintptr(unsafe.Pointer(r.msghdr())))
	}
	s.flags = iouSQEBufferSelect
	s.fd = int32(r.fd)
	s.bufIndex = r.bgid // buf_group
	s.userData = uint64(id)
	u.inflight++
	r.req = id + 1
}

// detachRing cancels r's read, waits for its last completion (packets it
// brings are kept as pending), and takes the buffers back from the kernel,
// so that r may be unmapped or attached elsewhere. Loop-only.
func (u *uring) detachRing(r *readRing) error {
	if r.u != u {
		return nil
	}
	var err error
	if r.req != 0 {
		u.cancelReq(r.req - 1)
		if serr := u.submitAlways(); serr != nil {
			err = serr
		}
		for tries := 0; r.req != 0 && tries < ringDetachTries; tries++ {
			// Not discard: the other requests' news goes to spill for
			// the next wait; this one's is dropped, being cancelled.
			if u.reapInto(&u.spill, false) > 0 || r.req == 0 {
				continue
			}
			u.enterWait(1, 10e6)
		}
	}
	if r.req != 0 {
		// The kernel still holds the request and may write to the
		// buffers: they stay mapped for ever rather than be reused.
		r.ringMem, r.bufMem = nil, nil
		r.u = nil
		return &OpError{Op: "io_uring: multishot read not cancelled, its buffers are left mapped", Fd: r.fd, Err: unix.EBUSY}
	}
	reg := iouBufReg{bgid: r.bgid}
	if _, _, e := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(u.fd), iouUnregisterPBufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); e != 0 && err == nil {
		err = &OpError{Op: "io_uring_register unregister buffer ring", Fd: r.fd, Err: e}
	}
	u.freeGroups = append(u.freeGroups, r.bgid)
	r.u = nil
	return err
}

// ringCompletion takes a completion of r's read request: a packet, the
// end of the request, or an error. It reports whether the loop should be
// told (the first news of this reap).
func (u *uring) ringCompletion(r *readRing, id uint32, res int32, flags uint32, last, cancelled bool) (Events, bool) {
	if last && r.req == id+1 {
		r.req = 0
	}
	if flags&iouCQEFBuffer != 0 {
		bid := uint16(flags >> iouCQEBufferShift)
		// A packet that came in while the request was being cancelled is
		// kept too: it has left the device's queue.
		if res >= 0 {
			r.push(bid, res)
			r.worked = true
		} else if r.u == u {
			r.lend(bid) // not a packet after all: back to the ring
		}
	}
	var ev Events
	switch {
	case res == 0 && flags&iouCQEFBuffer == 0:
		// A read of 0 bytes: end of file, or an empty datagram; the
		// descriptor's poll request says Hangup where there is one.
		if !cancelled {
			r.eof = true
			ev = Readable
		}
	case res >= 0:
		ev = Readable
		if last && !cancelled && r.u == u {
			u.armRead(r) // ended by the kernel: armed again at once
			u.rearms++
		}
	case res == -int32(unix.ECANCELED) || cancelled:
	case res == -int32(unix.ENOBUFS):
		// Every buffer holds a pending packet (or a completion not yet
		// reaped): the device keeps the next ones until buffers return.
		if last && r.u == u {
			u.starved++
			if r.plen < int(r.entries) {
				// Some were given back since: the kernel sees them now.
				r.publish()
				u.armRead(r)
				u.rearms++
			} else {
				r.starved = true
			}
		}
		ev = Readable
	case res == -int32(unix.EINVAL) && r.msgHead > 0 && !r.worked && r.plen == 0:
		// A kernel that takes the opcode but not multishot recvmsg
		// refuses it before reading anything: the UDPConn's next read
		// goes back to recvmmsg, as do the loop's next UDPConns.
		r.unsupported = true
		u.recvMultishot = false
		ev = Readable
	default:
		// Reported by the next read, which arms the request again.
		r.failed = unix.Errno(-res)
		ev = Readable | Error
	}
	if ev == 0 || cancelled {
		return 0, false
	}
	if r.signals == u.reaps {
		if ev&^r.signalled == 0 {
			return 0, false // told already in this pass
		}
		ev |= r.signalled // an Error after a packet: told again, with it
	}
	r.signals, r.signalled = u.reaps, ev
	return ev, true
}

// noReadMultishot makes rings set up from then on act as a kernel before
// 6.7, with readiness polls only: for tests of that path.
var noReadMultishot = false

// noRecvMultishot makes rings set up from then on act as a kernel before
// 6.0 for UDPConns, which read with recvmmsg after poll readiness; and
// recvmsgTestFlags is added to the multishot recvmsg's ioprio, where an
// unknown bit plays a kernel that refuses the request (EINVAL): for tests
// of the fallbacks.
var (
	noRecvMultishot         = false
	recvmsgTestFlags uint16 = 0
)
