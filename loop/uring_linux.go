package loop

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring backend (BackendURing): readiness as multishot poll requests
// on a ring shared with the kernel, made with raw io_uring_setup and
// io_uring_enter calls and the rings mapped with mmap; no cgo, no
// netpoller. x/sys/unix has the system call numbers but none of the ABI, so
// the structures and constants below follow include/uapi/linux/io_uring.h.
//
// Each registration is one IORING_OP_POLL_ADD with IORING_POLL_ADD_MULTI:
// edge-triggered like the epoll backend (the kernel adds EPOLLET unless
// IORING_POLL_ADD_LEVEL is set), one completion per new readiness, the
// request staying armed. A completion without IORING_CQE_F_MORE ends the
// request (the kernel may end a multishot request, e.g. on a CQ overflow)
// and the backend submits it again. Wakeups from other goroutines are an
// eventfd polled the same way. Timers are the timeout of the waiting
// io_uring_enter (IORING_ENTER_EXT_ARG).
//
// Every request is submitted from the loop's own thread: the kernel runs a
// poll request's completion as task work of the thread that submitted it,
// so a request submitted from another thread could wait for that thread to
// enter the kernel before its completion shows up.

const (
	iouSetupClamp        = 1 << 4
	iouSetupRDisabled    = 1 << 6
	iouSetupCoopTaskrun  = 1 << 8 // Linux 5.19
	iouSetupTaskrunFlag  = 1 << 9
	iouSetupSingleIssuer = 1 << 12 // Linux 6.1
	iouSetupDeferTaskrun = 1 << 13

	iouRegisterEnableRings = 12

	iouFeatSingleMmap = 1 << 0
	iouFeatNoDrop     = 1 << 1
	iouFeatExtArg     = 1 << 8
	iouFeatRsrcTags   = 1 << 10 // Linux 5.13, the release of multishot poll

	iouOpPollAdd     = 6
	iouOpAsyncCancel = 14

	iouPollAddMulti = 1 << 0
	iouCQEFMore     = 1 << 1

	iouEnterGetEvents = 1 << 0
	iouEnterExtArg    = 1 << 3

	iouSQCQOverflow = 1 << 1
	iouSQTaskrun    = 1 << 2

	iouOffSQRing = 0
	iouOffSQEs   = 0x10000000
)

// Special user_data values; every other value is an index into uring.reqs.
const (
	udInternal = ^uint64(0) - 1 // ASYNC_CANCEL's own completion: ignored
)

type iouSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type iouCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type iouParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  iouSQOffsets
	cqOff                                                                  iouCQOffsets
}

type iouSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // poll32_events for POLL_ADD
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad         uint64
}

type iouCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

type iouGeteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64 // *iouTimespec
}

type iouTimespec struct{ sec, nsec int64 }

// pollReq is one poll request the kernel may still hold.
type pollReq struct {
	tok       uint64
	fd        int32
	mask      uint32
	used      bool
	cancelled bool // removed by us: its completions are dropped, it is not re-armed
	// ring, for a multishot read: the PacketFD buffers it reads into.
	ring *readRing
}

type uringEvent struct {
	tok uint64
	ev  Events
}

// uring is the io_uring backend. Loop-only, except wake.
type uring struct {
	fd     int
	wakefd int
	ring   []byte // SQ and CQ rings, one mapping (IORING_FEAT_SINGLE_MMAP)
	sqeMem []byte

	sqHead, sqTail, sqFlags *uint32
	sqMask, sqEntries       uint32
	sqes                    []iouSQE
	tail                    uint32 // our SQ tail; published at submit

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []iouCQE

	reqs     []pollReq
	freeReqs []uint32
	fdReq    []uint32 // fd -> index+1 of its live poll request, 0 for none
	inflight int      // requests whose last completion has not arrived
	armed    bool     // the wake eventfd's request is submitted
	disabled bool     // created disabled: the loop's thread enables it
	rearms   uint64   // requests the kernel ended and we submitted again (tests)
	starved  uint64   // multishot reads ended for want of buffers (tests)

	// out holds the events of the last wait. spill collects those reaped
	// while the loop is still delivering out (a ring detached from a
	// callback); the next wait delivers them first.
	out, spill []uringEvent
	maxEvents  int
	reaps      uint64 // reap passes, to tell a ring's loop of news once per pass

	// wres holds the results of a batch of linked writes in flight
	// (writeLinked); wdone counts them.
	wres    []int32
	wdone   int
	writing bool

	readMultishot bool // the kernel has IORING_OP_READ_MULTISHOT
	recvMultishot bool // the kernel has IORING_RECV_MULTISHOT, for UDPConns
	freeGroups    []uint16
	nextGroup     uint16

	wakeMu sync.RWMutex
}

var _ backend = (*uring)(nil)

// ioUringSetup is a variable so that tests can play a kernel that refuses.
var ioUringSetup = func(entries uint32, p *iouParams) (int, error) {
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// newURing sets up a ring and maps it: maxEvents submission entries
// (rounded up to a power of two by the kernel) and twice as many for
// completions, as many as two waits take. Any failure (ENOSYS on a kernel
// without io_uring, EPERM from kernel.io_uring_disabled or a seccomp
// filter, a missing feature) is returned: New then falls back to epoll.
func newURing(maxEvents int) (*uring, error) {
	// Cooperative task running: a completion that arrives while the loop
	// runs does not interrupt it (an inter-processor interrupt and a
	// kernel entry per readiness change, which cost a small-packet stream
	// two thirds of its rate); the kernel flags IORING_SQ_TASKRUN instead
	// and the next wait enters to run the work, many completions at once.
	// Better still (6.1), deferred task running: the work stays on the
	// ring's own list until the loop's thread, the only one that submits,
	// asks for completions; the ring is created disabled and enabled by
	// that thread (which the kernel then holds to be its submitter).
	var fd int
	var err error
	var p iouParams
	for _, flags := range []uint32{
		iouSetupClamp | iouSetupTaskrunFlag | iouSetupSingleIssuer | iouSetupDeferTaskrun | iouSetupRDisabled,
		iouSetupClamp | iouSetupTaskrunFlag | iouSetupCoopTaskrun,
		iouSetupClamp, // before 5.19: completions interrupt the loop
	} {
		p = iouParams{flags: flags}
		if fd, err = ioUringSetup(uint32(min(maxEvents, 4096)), &p); err != unix.EINVAL {
			break
		}
	}
	if err != nil {
		return nil, &OpError{Op: "io_uring_setup", Fd: -1, Err: err}
	}
	unix.CloseOnExec(fd)
	const need = iouFeatSingleMmap | iouFeatNoDrop | iouFeatExtArg | iouFeatRsrcTags
	if p.features&need != need {
		unix.Close(fd)
		return nil, &OpError{Op: "io_uring: kernel older than 5.13 (features 0x" + strconv.FormatUint(uint64(p.features), 16) + ")", Fd: -1, Err: ErrNotSupported}
	}
	u := &uring{fd: fd, wakefd: -1, out: make([]uringEvent, 0, maxEvents), maxEvents: maxEvents, disabled: p.flags&iouSetupRDisabled != 0}
	size := max(int(p.sqOff.array)+int(p.sqEntries)*4, int(p.cqOff.cqes)+int(p.cqEntries)*int(unsafe.Sizeof(iouCQE{})))
	u.ring, err = unix.Mmap(fd, iouOffSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "mmap io_uring rings", Fd: -1, Err: err}
	}
	u.sqeMem, err = unix.Mmap(fd, iouOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(iouSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(u.ring)
		unix.Close(fd)
		return nil, &OpError{Op: "mmap io_uring sqes", Fd: -1, Err: err}
	}
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&u.ring[off])) }
	u.sqHead, u.sqTail, u.sqFlags = at(p.sqOff.head), at(p.sqOff.tail), at(p.sqOff.flags)
	u.sqMask, u.sqEntries = *at(p.sqOff.ringMask), *at(p.sqOff.ringEntries)
	u.sqes = unsafe.Slice((*iouSQE)(unsafe.Pointer(&u.sqeMem[0])), p.sqEntries)
	u.tail = atomic.LoadUint32(u.sqTail)
	// The SQ array indirects each ring slot to an SQE; ours is the identity.
	array := unsafe.Slice(at(p.sqOff.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	u.cqHead, u.cqTail = at(p.cqOff.head), at(p.cqOff.tail)
	u.cqMask = *at(p.cqOff.ringMask)
	u.cqes = unsafe.Slice((*iouCQE)(unsafe.Pointer(&u.ring[p.cqOff.cqes])), p.cqEntries)

	// Multishot reads came in 6.7, but two of their bugs would lose
	// packets here: 6.7 did not retry a read while more data was queued
	// (a backlog drained one packet per new arrival), and until 6.12 a
	// read of a file without FMODE_NOWAIT completed without naming its
	// buffer (the packet and the buffer lost). Older kernels keep poll
	// readiness and read(2).
	u.readMultishot = u.probeOps(iouOpReadMultishot) && kernelAtLeast(6, 12) && !noReadMultishot
	u.recvMultishot = u.probeOps(iouOpRecvmsg, iouOpSendZC) && !noRecvMultishot
	u.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		u.unmap()
		return nil, &OpError{Op: "eventfd", Fd: -1, Err: err}
	}
	return u, nil
}

// URingUnavailable returns nil if this kernel lets the process use the
// io_uring backend, or the reason it does not (the error New's fallback to
// epoll is based on). Safe from any goroutine; it sets up and closes a
// ring.
func URingUnavailable() error {
	u, err := newURing(1)
	if err != nil {
		return err
	}
	return u.close()
}

// sqe returns a cleared submission queue entry, submitting what is queued
// first if the ring is full.
func (u *uring) sqe() *iouSQE {
	if u.tail-atomic.LoadUint32(u.sqHead) >= u.sqEntries {
		u.submit()
	}
	s := &u.sqes[u.tail&u.sqMask]
	*s = iouSQE{}
	u.tail++
	return s
}

// pending is the number of entries queued but not yet consumed by the
// kernel.
func (u *uring) pending() uint32 { return u.tail - atomic.LoadUint32(u.sqHead) }

// submit hands the queued entries to the kernel without waiting. A poll
// request is armed (its first vfs_poll done) and a cancel done inside the
// call, so it never sleeps: a raw call.
func (u *uring) submit() error {
	if u.pending() == 0 {
		return nil
	}
	return u.submitAlways()
}

// submitAlways enters the kernel even with nothing to submit, to have the
// completions it holds posted.
func (u *uring) submitAlways() error {
	n := u.pending()
	atomic.StoreUint32(u.sqTail, u.tail)
	// GETEVENTS with no minimum returns at once, having run the task work
	// pending for this thread: a cancelled request ends (and lets go of its
	// file) before the call returns.
	_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(u.fd), uintptr(n), 0, iouEnterGetEvents, 0, 0)
	if e != 0 && e != unix.EINTR && e != unix.EAGAIN && e != unix.EBUSY {
		return &OpError{Op: "io_uring_enter submit", Fd: u.fd, Err: e}
	}
	return nil
}

func pollMask(ev Events) uint32 {
	m := uint32(unix.EPOLLRDHUP)
	if ev&Readable != 0 {
		m |= unix.EPOLLIN
	}
	if ev&Writable != 0 {
		m |= unix.EPOLLOUT
	}
	return m
}

// arm queues a multishot poll request for fd and returns its index.
func (u *uring) arm(fd int, tok uint64, mask uint32) uint32 {
	id := u.newReq(pollReq{tok: tok, fd: int32(fd), mask: mask, used: true})
	s := u.sqe()
	s.opcode = iouOpPollAdd
	s.fd = int32(fd)
	s.len = iouPollAddMulti
	s.opFlags = pollEvents32(mask)
	s.userData = uint64(id)
	u.inflight++
	if tok != wakeToken {
		for len(u.fdReq) <= fd {
			u.fdReq = append(u.fdReq, 0)
		}
		u.fdReq[fd] = id + 1
	}
	return id
}

// newReq takes a slot for a request and returns its index, the request's
// user_data.
func (u *uring) newReq(r pollReq) uint32 {
	id := takeSlot(&u.reqs, &u.freeReqs)
	u.reqs[id] = r
	return id
}

// pollEvents32: the kernel swaps the halves of poll32_events on big-endian
// hosts (so that the low 16 bits overlay the old poll_events field).
func pollEvents32(m uint32) uint32 {
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) == 0 {
		return m<<16 | m>>16
	}
	return m
}

// cancel queues the removal of fd's poll request, if any. Its remaining
// completions are dropped.
func (u *uring) cancel(fd int) {
	if fd >= len(u.fdReq) || u.fdReq[fd] == 0 {
		return
	}
	id := u.fdReq[fd] - 1
	u.fdReq[fd] = 0
	u.cancelReq(id)
}

func (u *uring) cancelReq(id uint32) {
	r := &u.reqs[id]
	if !r.used || r.cancelled {
		return
	}
	r.cancelled = true
	// ASYNC_CANCEL, not POLL_REMOVE: POLL_REMOVE gives up with EALREADY
	// on a multishot request whose completion is being run, and the
	// request lives on; a cancel marks it, and whoever runs it ends it.
	s := u.sqe()
	s.opcode = iouOpAsyncCancel
	s.fd = -1
	s.addr = uint64(id)
	s.userData = udInternal
}

func (u *uring) add(fd int, tok uint64, ev Events) error {
	// epoll_ctl refuses a descriptor that is not open; a poll request would
	// only say so in a completion.
	if _, _, e := unix.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_GETFD, 0); e != 0 {
		return &OpError{Op: "io_uring poll add", Fd: fd, Err: e}
	}
	u.cancel(fd) // a descriptor closed while registered left its request behind
	u.arm(fd, tok, pollMask(ev))
	// Submitted now, as epoll_ctl would be: readiness the descriptor already
	// has is reported by the next wait.
	if err := u.submit(); err != nil {
		return &OpError{Op: "io_uring poll add", Fd: fd, Err: err}
	}
	return nil
}

func (u *uring) mod(fd int, tok uint64, ev Events) error {
	u.cancel(fd)
	u.arm(fd, tok, pollMask(ev))
	if err := u.submit(); err != nil {
		return &OpError{Op: "io_uring poll modify", Fd: fd, Err: err}
	}
	return nil
}

// del removes fd's request at once: the request holds a reference to the
// file, and the caller that got the descriptor back may close it expecting
// the file to go.
func (u *uring) del(fd int) error {
	u.cancel(fd)
	if err := u.submit(); err != nil {
		return &OpError{Op: "io_uring poll remove", Fd: fd, Err: err}
	}
	return nil
}

// wait reaps completions already in the ring without a system call. Only
// when there are none, and the caller may sleep or the kernel holds
// completions back, does it enter the kernel, submitting what is queued
// (re-arms) and waiting in the same call.
func (u *uring) wait(timeout time.Duration) (int, int, error) {
	if !u.armed {
		// The first wait runs on the loop's thread, before any callback
		// (and so any add) does.
		if u.disabled {
			_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(u.fd), iouRegisterEnableRings, 0, 0, 0, 0)
			if e != 0 {
				return 0, 1, &OpError{Op: "io_uring_register enable rings", Fd: u.fd, Err: e}
			}
			u.disabled = false
		}
		u.armed = true
		u.arm(u.wakefd, wakeToken, unix.EPOLLIN)
	}
	calls := 0
	// Events reaped while the last ones were being delivered come first.
	u.out = append(u.out[:0], u.spill...)
	u.spill = u.spill[:0]
	n := u.reap()
	// Completions the kernel has not posted yet: overflowed ones, or task
	// work left for us to run (deferred or cooperative task running).
	// They are had with a raw call that cannot sleep: under load that is
	// the only call of a round, without the runtime's bookkeeping of a
	// call that may block.
	if n == 0 && atomic.LoadUint32(u.sqFlags)&(iouSQCQOverflow|iouSQTaskrun) != 0 {
		calls++
		if err := u.submitAlways(); err != nil {
			return 0, calls, err
		}
		n = u.reap()
	}
	held := atomic.LoadUint32(u.sqFlags)&iouSQCQOverflow != 0
	if n > 0 || (timeout == 0 && !held) {
		if u.pending() > 0 {
			calls++
			if err := u.submit(); err != nil {
				return n, calls, err
			}
		}
		return n, calls, nil
	}
	minComplete := 1
	if timeout == 0 {
		minComplete = 0 // only to have the held completions posted
	}
	if e := u.enterWait(minComplete, timeout); e != 0 {
		return 0, calls + 1, &OpError{Op: "io_uring_enter wait", Fd: u.fd, Err: e}
	}
	return u.reap(), calls + 1, nil
}

// enterWait submits what is queued and waits for minComplete completions,
// up to timeout (negative: no limit). Interruptions and timeouts are not
// errors.
func (u *uring) enterWait(minComplete int, timeout time.Duration) unix.Errno {
	toSubmit := u.pending()
	atomic.StoreUint32(u.sqTail, u.tail)
	var ts iouTimespec
	arg := iouGeteventsArg{}
	if timeout > 0 {
		ts = iouTimespec{sec: int64(timeout / time.Second), nsec: int64(timeout % time.Second)}
		arg.ts = uint64(uintptr(unsafe.Pointer(&ts)))
	}
	_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(u.fd), uintptr(toSubmit), uintptr(minComplete),
		iouEnterGetEvents|iouEnterExtArg, uintptr(unsafe.Pointer(&arg)), unsafe.Sizeof(arg))
	switch e {
	case 0, unix.EINTR, unix.ETIME, unix.EAGAIN, unix.EBUSY:
		return 0
	}
	return e
}

// reap takes completions from the CQ ring into u.out, up to maxEvents
// (the rest stay for the next wait), and returns how many it added.
func (u *uring) reap() int {
	return u.reapInto(&u.out, false)
}

// reapInto takes completions from the CQ ring, re-arming requests the
// kernel ended, and appends the readiness they carry to dst: without
// limit for u.spill, up to maxEvents for u.out. It returns how many
// completions it took. With discard it only retires requests (close).
func (u *uring) reapInto(dst *[]uringEvent, discard bool) int {
	u.reaps++
	limit := u.maxEvents
	if dst != &u.out {
		limit = int(^uint(0) >> 1)
	}
	head := atomic.LoadUint32(u.cqHead)
	tail := atomic.LoadUint32(u.cqTail)
	taken := 0
	for head != tail && (discard || len(*dst) < limit) {
		c := &u.cqes[head&u.cqMask]
		ud, res, flags := c.userData, c.res, c.flags
		head++
		taken++
		if ud >= udWriteBase && ud < udInternal {
			u.writeCompletion(ud-udWriteBase, res)
			continue
		}
		if ud == udInternal || ud >= uint64(len(u.reqs)) {
			continue
		}
		id := uint32(ud)
		r := &u.reqs[id]
		tok, fd, mask, cancelled, ring := r.tok, int(r.fd), r.mask, r.cancelled, r.ring
		last := flags&iouCQEFMore == 0
		if last {
			// The request's last completion: the kernel holds it no more.
			u.inflight--
			*r = pollReq{}
			u.freeReqs = append(u.freeReqs, id)
			if ring == nil && tok != wakeToken && fd < len(u.fdReq) && u.fdReq[fd] == id+1 {
				u.fdReq[fd] = 0
			}
		}
		if ring != nil {
			if ev, tell := u.ringCompletion(ring, id, res, flags, last, cancelled || discard); tell {
				*dst = append(*dst, uringEvent{tok: tok, ev: ev})
			}
			continue
		}
		if last && !cancelled && !discard && res >= 0 {
			u.arm(fd, tok, mask) // submitted with the next enter
			u.rearms++
		}
		if cancelled || discard {
			continue
		}
		var ev Events
		if res < 0 {
			if res == -int32(unix.ECANCELED) {
				continue
			}
			ev = Error // e.g. the descriptor cannot be polled
		} else {
			m := uint32(res)
			if m&unix.EPOLLIN != 0 {
				ev |= Readable
			}
			if m&unix.EPOLLOUT != 0 {
				ev |= Writable
			}
			if m&(unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
				ev |= Hangup
			}
			if m&unix.EPOLLERR != 0 {
				ev |= Error
			}
		}
		*dst = append(*dst, uringEvent{tok: tok, ev: ev})
	}
	atomic.StoreUint32(u.cqHead, head)
	if dst == &u.out {
		return len(u.out)
	}
	return taken
}

func (u *uring) event(i int) (uint64, Events) {
	e := u.out[i]
	if e.tok == wakeToken {
		return wakeToken, 0
	}
	return e.tok, e.ev
}

// wake makes the loop's wait return. Safe from any goroutine.
func (u *uring) wake() error {
	u.wakeMu.RLock()
	defer u.wakeMu.RUnlock()
	if u.wakefd < 0 {
		return nil // closed: there is no loop left to wake
	}
	one := uint64(1)
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(u.wakefd), uintptr(unsafe.Pointer(&one)), 8)
	if e != 0 && e != unix.EAGAIN {
		return &OpError{Op: "eventfd write", Fd: u.wakefd, Err: e}
	}
	return nil
}

func (u *uring) drainWake() {
	var v uint64
	unix.RawSyscall(unix.SYS_READ, uintptr(u.wakefd), uintptr(unsafe.Pointer(&v)), 8)
}

// close removes every request and waits for their last completions before
// the ring goes: tearing a ring down is asynchronous in the kernel, and
// until its requests end they hold references to the files they poll (a
// TUN device the loop closed would outlive Close).
func (u *uring) close() error {
	u.wakeMu.Lock()
	defer u.wakeMu.Unlock()
	if u.fd < 0 {
		return nil
	}
	for id := range u.reqs {
		u.cancelReq(uint32(id))
	}
	var err error
	if serr := u.submit(); serr != nil {
		err = serr
	}
	for tries := 0; u.inflight > 0 && tries < 100; tries++ {
		ts := iouTimespec{nsec: int64(10 * time.Millisecond)}
		arg := iouGeteventsArg{ts: uint64(uintptr(unsafe.Pointer(&ts)))}
		unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(u.fd), 0, uintptr(u.inflight),
			iouEnterGetEvents|iouEnterExtArg, uintptr(unsafe.Pointer(&arg)), unsafe.Sizeof(arg))
		u.reapInto(&u.spill, true)
	}
	if u.inflight > 0 && err == nil {
		err = &OpError{Op: "io_uring close: requests still held by the kernel", Fd: u.fd, Err: unix.EBUSY}
	}
	if cerr := unix.Close(u.wakefd); cerr != nil && err == nil {
		err = &OpError{Op: "close eventfd", Fd: -1, Err: cerr}
	}
	u.wakefd = -1
	if uerr := u.unmap(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

func (u *uring) unmap() error {
	unix.Munmap(u.sqeMem)
	unix.Munmap(u.ring)
	u.sqes, u.cqes = nil, nil
	err := unix.Close(u.fd)
	u.fd = -1
	if err != nil {
		return &OpError{Op: "close io_uring", Fd: -1, Err: err}
	}
	return nil
}
