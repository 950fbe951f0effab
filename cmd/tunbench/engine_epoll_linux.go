//go:build linux

package main

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// epollEngine is the floor under tundra's loop: the smallest epoll loop a
// Go program can have, so that every run shows the gap between "our loop"
// and "epoll itself". One locked, pinned OS thread; the job's non-blocking
// descriptors in one level-triggered epoll set; one blocking epoll_pwait
// per wakeup (the scheduler-aware Syscall, as any Go program blocking in
// the kernel must), then raw read(2)s until EAGAIN or 64 packets, each
// packet written at once with a raw write(2). No budgets across
// descriptors, no timers, no posted functions, no statistics beyond the
// counters every engine keeps.
type epollEngine struct{}

func (epollEngine) name() string { return "epoll" }

func (epollEngine) open(s devSpec) (device, error) { return openTundraDev(s, false, 1) }

// epollBudget bounds the reads per descriptor per wakeup, so that one busy
// descriptor cannot starve the other when forwarding.
const epollBudget = 64

type epollRunner struct {
	stopFd  int // eventfd in the epoll set: written by stop
	stopped atomic.Bool
	st      ioStats
	done    chan struct{}
	errs    failures
	ended   atomic.Bool
	stopErr error
}

func (epollEngine) start(j job, cpu int) (runner, error) {
	a := j.a.(*tundraDev).d.Queues()[0].Fd()
	out := map[int]int{} // read descriptor -> write descriptor (-1: discard)
	swap := false
	switch j.kind {
	case jobDrain:
		out[a] = -1
	case jobReflect:
		out[a], swap = a, true
	case jobForward:
		b := j.b.(*tundraDev).d.Queues()[0].Fd()
		out[a], out[b] = b, a
	}
	stopFd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	r := &epollRunner{stopFd: stopFd, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if _, err := lockThread(cpu); err != nil {
			r.errs.record(err)
			return
		}
		if j.kind == jobBlast {
			r.blast(a, j.pkts)
			return
		}
		if err := r.loop(out, swap); err != nil {
			r.errs.record(err)
		}
	}()
	return r, nil
}

func (r *epollRunner) loop(out map[int]int, swap bool) error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	defer unix.Close(epfd)
	var fds [2]int32 // epoll token -> descriptor; token 2 is stop
	var outs [2]int
	i := 0
	for in, o := range out {
		fds[i], outs[i] = int32(in), o
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, in, &ev); err != nil {
			return fmt.Errorf("epoll_ctl: %w", err)
		}
		i++
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 2}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, r.stopFd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	buf := make([]byte, readBufSize)
	var evs [4]unix.EpollEvent
	for {
		n, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)),
			^uintptr(0), 0, 0) // timeout -1: sleep until ready
		r.st.calls.inc()
		if e != 0 && e != unix.EINTR {
			return fmt.Errorf("epoll_pwait: %w", e)
		}
		for k := range int(n) {
			tok := evs[k].Fd
			if tok == 2 {
				return nil
			}
			in, o := uintptr(fds[tok]), outs[tok]
			for range epollBudget {
				m, _, e := unix.RawSyscall(unix.SYS_READ, in, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
				r.st.calls.inc()
				if e != 0 {
					if e != unix.EAGAIN && e != unix.EINTR {
						return fmt.Errorf("read: %w", e)
					}
					break
				}
				r.st.pktsIn.inc()
				r.st.bytesIn.add(uint64(m))
				if o < 0 {
					continue
				}
				if swap {
					turnAround(buf[:m])
				}
				r.write(o, buf[:m])
			}
		}
	}
}

// blast writes pkts round and round with raw write(2)s: a TUN write never
// blocks, so there is nothing to wait for.
func (r *epollRunner) blast(fd int, pkts [][]byte) {
	for i := 0; !r.stopped.Load(); i++ {
		r.write(fd, pkts[i%len(pkts)])
	}
}

// write writes pk to fd with one raw write(2), counting it.
func (r *epollRunner) write(fd int, pk []byte) {
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&pk[0])), uintptr(len(pk)))
	r.st.calls.inc()
	if e != 0 {
		r.st.errs.inc()
		r.errs.record(fmt.Errorf("write: %w", e))
		return
	}
	r.st.pktsOut.inc()
	r.st.bytesOut.add(uint64(len(pk)))
}

func (r *epollRunner) counters() engineCounters { return sumStats(true, &r.st) }

// stop raises the flag, wakes the loop through its eventfd and waits for
// the thread.
func (r *epollRunner) stop() error {
	if r.ended.Swap(true) {
		return r.stopErr
	}
	r.stopped.Store(true)
	one := uint64(1)
	unix.Write(r.stopFd, (*[8]byte)(unsafe.Pointer(&one))[:])
	<-r.done
	unix.Close(r.stopFd)
	r.stopErr = r.errs.err()
	return r.stopErr
}
