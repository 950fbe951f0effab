package loop

import (
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wakeToken marks the eventfd that other goroutines write to wake the loop.
const wakeToken = ^uint64(0)

// poller is the epoll backend. Loop-only, except wake.
type poller struct {
	epfd     int
	wakefd   int // eventfd, non-blocking
	events   []unix.EpollEvent
	noPwait2 bool // epoll_pwait2 returned ENOSYS: fall back to millisecond waits

	// wakeMu keeps wake (any goroutine) from writing to a descriptor that
	// close has released and the kernel may have handed to someone else.
	wakeMu sync.RWMutex
}

func newPoller(maxEvents int) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, &OpError{Op: "epoll_create1", Fd: -1, Err: err}
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, &OpError{Op: "eventfd", Fd: -1, Err: err}
	}
	p := &poller{epfd: epfd, wakefd: wakefd, events: make([]unix.EpollEvent, maxEvents)}
	// The wake eventfd is level-triggered: it stays readable until drained,
	// so a wakeup can never be lost between a drain and the next wait.
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := p.ctl(unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// lazyWriteInterest: PacketFDs ask epoll for Writable only after a write
// found the descriptor full (see PacketFD.writeInterest).
const lazyWriteInterest = true

// The 64-bit epoll_data carries the registration token: x/sys/unix splits
// it into Fd (low 32 bits) and Pad (high 32 bits) on every Linux arch.
func setToken(ev *unix.EpollEvent, tok uint64) {
	ev.Fd = int32(uint32(tok))
	ev.Pad = int32(uint32(tok >> 32))
}

func epollEvents(ev Events) uint32 {
	e := uint32(unix.EPOLLET | unix.EPOLLRDHUP)
	if ev&Readable != 0 {
		e |= unix.EPOLLIN
	}
	if ev&Writable != 0 {
		e |= unix.EPOLLOUT
	}
	return e
}

func (p *poller) ctl(op, fd int, ev *unix.EpollEvent) error {
	// epoll_ctl never sleeps: a raw call.
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(p.epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		name := map[int]string{unix.EPOLL_CTL_ADD: "epoll_ctl add", unix.EPOLL_CTL_MOD: "epoll_ctl mod", unix.EPOLL_CTL_DEL: "epoll_ctl del"}[op]
		return &OpError{Op: name, Fd: fd, Err: e}
	}
	return nil
}

func (p *poller) add(fd int, tok uint64, ev Events) error {
	e := unix.EpollEvent{Events: epollEvents(ev)}
	setToken(&e, tok)
	return p.ctl(unix.EPOLL_CTL_ADD, fd, &e)
}

func (p *poller) mod(fd int, tok uint64, ev Events) error {
	e := unix.EpollEvent{Events: epollEvents(ev)}
	setToken(&e, tok)
	return p.ctl(unix.EPOLL_CTL_MOD, fd, &e)
}

func (p *poller) del(fd int) error {
	var e unix.EpollEvent // ignored, but kernels before 2.6.9 wanted non-nil
	return p.ctl(unix.EPOLL_CTL_DEL, fd, &e)
}

// wait collects readiness. A caller that may not sleep (timeout 0: work
// is requeued) gets one raw zero-timeout epoll_pwait, with no scheduler
// hand-off. Any other wait goes straight to the blocking, scheduler-aware
// epoll_pwait2, which returns at once when something is already ready: a
// zero-timeout pass before it finds nothing whenever the loop had drained
// every descriptor, which is the case at partial load, and then costs a
// system call per wakeup (issue 18's profile of rx at 64 bytes: 150-200 ns
// of the 930-980 ns a packet cost). A negative timeout waits forever. It returns the
// number of events and of system calls made.
func (p *poller) wait(timeout time.Duration) (int, int, error) {
	evs := unsafe.Pointer(&p.events[0])
	if timeout == 0 {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(evs), uintptr(len(p.events)), 0, 0, 0)
		if e == unix.EINTR {
			return 0, 1, nil
		}
		if e != 0 {
			return 0, 1, &OpError{Op: "epoll_pwait", Fd: p.epfd, Err: e}
		}
		return int(n), 1, nil
	}
	if !p.noPwait2 {
		var ts *unix.Timespec
		if timeout > 0 {
			t := unix.NsecToTimespec(int64(timeout))
			ts = &t
		}
		n, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(p.epfd), uintptr(evs), uintptr(len(p.events)),
			uintptr(unsafe.Pointer(ts)), 0, 0)
		if e != unix.ENOSYS {
			if e != 0 && e != unix.EINTR {
				return 0, 1, &OpError{Op: "epoll_pwait2", Fd: p.epfd, Err: e}
			}
			if e == unix.EINTR {
				n = 0
			}
			return int(n), 1, nil
		}
		p.noPwait2 = true
	}
	ms := -1
	if timeout > 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond) // never early
	}
	n, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(evs), uintptr(len(p.events)), uintptr(ms), 0, 0)
	if e == unix.EINTR {
		return 0, 1, nil
	}
	if e != 0 {
		return 0, 1, &OpError{Op: "epoll_pwait", Fd: p.epfd, Err: e}
	}
	return int(n), 1, nil
}

func (p *poller) event(i int) (uint64, Events) {
	e := &p.events[i]
	tok := uint64(uint32(e.Fd)) | uint64(uint32(e.Pad))<<32
	var ev Events
	if e.Events&unix.EPOLLIN != 0 {
		ev |= Readable
	}
	if e.Events&unix.EPOLLOUT != 0 {
		ev |= Writable
	}
	if e.Events&(unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
		ev |= Hangup
	}
	if e.Events&unix.EPOLLERR != 0 {
		ev |= Error
	}
	return tok, ev
}

// wake makes the loop's wait return. Safe from any goroutine.
func (p *poller) wake() error {
	p.wakeMu.RLock()
	defer p.wakeMu.RUnlock()
	if p.wakefd < 0 {
		return nil // closed: there is no loop left to wake
	}
	one := uint64(1)
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(p.wakefd), uintptr(unsafe.Pointer(&one)), 8)
	if e != 0 && e != unix.EAGAIN { // EAGAIN: the counter is saturated, the loop is awake anyway
		return &OpError{Op: "eventfd write", Fd: p.wakefd, Err: e}
	}
	return nil
}

func (p *poller) drainWake() {
	var v uint64
	unix.RawSyscall(unix.SYS_READ, uintptr(p.wakefd), uintptr(unsafe.Pointer(&v)), 8)
}

func (p *poller) close() error {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	err1 := unix.Close(p.wakefd)
	err2 := unix.Close(p.epfd)
	p.wakefd, p.epfd = -1, -1
	if err2 != nil {
		return &OpError{Op: "close epoll", Fd: -1, Err: err2}
	}
	if err1 != nil {
		return &OpError{Op: "close eventfd", Fd: -1, Err: err1}
	}
	return nil
}

func closeFD(fd int) { unix.Close(fd) }

// pinThread binds the calling OS thread to one CPU.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return &OpError{Op: "sched_setaffinity cpu " + itoa(cpu), Fd: -1, Err: err}
	}
	return nil
}
