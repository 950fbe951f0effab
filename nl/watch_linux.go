package nl

import (
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// linkEventSocket is the eventSource over a real netlink socket bound to
// RTNLGRP_LINK.
//
// It waits with poll(2) on the socket and on an eventfd, rather than
// through the Go netpoller. The socket is a control-plane one that sees a
// handful of datagrams; a goroutine blocked in poll costs one OS thread
// while it waits, which is acceptable here, and in exchange the wait needs
// no runtime machinery: the timeout is poll's, Close interrupts it by
// making the eventfd readable, and the socket stays a plain descriptor the
// package reads with recvmsg like the request socket (peek for the size,
// sender address checked). The socket is non-blocking, so a wakeup that
// finds nothing to read goes back to poll instead of blocking in recvmsg.
type linkEventSocket struct {
	fd  int // the netlink socket
	efd int // eventfd, written by wake
}

var _ eventSource = (*linkEventSocket)(nil)

// watchRcvBuf is the receive buffer asked for (the kernel caps it at
// net.core.rmem_max): notifications of a busy host come in bursts, and
// every one lost costs the caller a full dump.
const watchRcvBuf = 1 << 20

func dialLinkEvents() (eventSource, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, sysErr("socket", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, sysErr("eventfd", err)
	}
	s := &linkEventSocket{fd: fd, efd: efd}
	if err := s.setup(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *linkEventSocket) setup() error {
	// A failure to enlarge the buffer only makes overruns likelier.
	_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, watchRcvBuf)
	// nl_groups is the legacy bitmask of groups 1 to 32: bit
	// RTNLGRP_LINK-1 is RTMGRP_LINK. Port id 0 lets the kernel choose.
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}
	if err := unix.Bind(s.fd, sa); err != nil {
		return sysErr("bind RTNLGRP_LINK", err)
	}
	return nil
}

func (s *linkEventSocket) recv(timeout time.Duration) ([]byte, uint32, error) {
	ms := -1
	if timeout >= 0 {
		// Round up, so that a wait shorter than a millisecond sleeps
		// rather than spins with poll(0).
		ms = int(min((timeout+time.Millisecond-1)/time.Millisecond, math.MaxInt32))
	}
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.efd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, ms)
	if err == unix.EINTR {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if n == 0 || fds[1].Revents != 0 || fds[0].Revents == 0 {
		return nil, 0, nil
	}
	// POLLIN, or POLLERR for a pending ENOBUFS, which the read returns.
	b, from, err := readDatagram(s.fd, unix.MSG_DONTWAIT)
	if err == unix.EAGAIN {
		return nil, 0, nil
	}
	return b, from, err
}

func (s *linkEventSocket) wake() error {
	var one [8]byte
	nativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(s.efd, one[:])
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The counter is full, so it is already readable.
			return nil
		}
		return err
	}
}

func (s *linkEventSocket) close() error {
	err := unix.Close(s.fd)
	if eerr := unix.Close(s.efd); err == nil {
		err = eerr
	}
	return err
}
