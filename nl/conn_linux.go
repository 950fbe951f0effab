package nl

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// recvTimeout bounds the wait for each reply datagram, so that a lost reply
// fails the request instead of hanging it.
const recvTimeout = 10 * time.Second

// socket is the transport over a real AF_NETLINK socket. The descriptor is
// blocking: requests are rare control-path calls, and SO_RCVTIMEO bounds
// every wait.
type socket struct {
	fd  int
	pid uint32
}

var _ Transport = (*socket)(nil)

func dialTransport() (Transport, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, &Error{Op: "socket", Errno: errnoOf(err), Err: nonErrno(err)}
	}
	s := &socket{fd: fd}
	if err := s.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

func (s *socket) setup() error {
	// Extended acks carry the kernel's explanation of an error; capped
	// acks spare echoing the whole request back. Kernels before 4.12
	// lack one or both, which only costs detail.
	for _, opt := range []struct {
		name string
		opt  int
	}{{"NETLINK_EXT_ACK", unix.NETLINK_EXT_ACK}, {"NETLINK_CAP_ACK", unix.NETLINK_CAP_ACK}} {
		err := unix.SetsockoptInt(s.fd, unix.SOL_NETLINK, opt.opt, 1)
		if err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
			return sysErr("setsockopt "+opt.name, err)
		}
	}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return sysErr("setsockopt SO_RCVTIMEO", err)
	}
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return sysErr("setsockopt SO_SNDTIMEO", err)
	}
	// Port id 0 lets the kernel choose a unique one, learned back from
	// getsockname: replies are addressed to it.
	if err := unix.Bind(s.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return sysErr("bind", err)
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return sysErr("getsockname", err)
	}
	nsa, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return &Error{Op: "getsockname", Err: fmt.Errorf("address of type %T, not netlink", sa)}
	}
	s.pid = nsa.Pid
	return nil
}

func (s *socket) PortID() uint32 { return s.pid }

func (s *socket) Send(b []byte) error {
	to := &unix.SockaddrNetlink{Family: unix.AF_NETLINK} // port id 0: the kernel
	for {
		err := unix.Sendto(s.fd, b, 0, to)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// Recv reads one datagram whole (see readDatagram). With SO_RCVTIMEO set,
// a peek that finds nothing within recvTimeout fails with EAGAIN.
func (s *socket) Recv() ([]byte, uint32, error) {
	b, from, err := readDatagram(s.fd, 0)
	if err == unix.EAGAIN {
		return nil, 0, &Error{Errno: unix.EAGAIN, Err: fmt.Errorf("no reply from the kernel within %v", recvTimeout)}
	}
	return b, from, err
}

// readDatagram reads one datagram whole from a netlink socket, with the
// port id of its sender. It first peeks with MSG_TRUNC, which makes the
// kernel return the datagram's full length, to size the buffer; dumps may
// send datagrams larger than a page. A datagram still truncated after that
// is an error, never parsed. flags are added to both calls (MSG_DONTWAIT
// for a caller that polled first). Errors of the peek, such as EAGAIN or
// ENOBUFS, are returned as bare errnos.
func readDatagram(fd, flags int) ([]byte, uint32, error) {
	n, err := recvmsg(fd, nil, flags|unix.MSG_PEEK|unix.MSG_TRUNC)
	if err != nil {
		return nil, 0, err
	}
	b := make([]byte, max(n, nlmsgHdrLen))
	var (
		rflags int
		from   unix.Sockaddr
	)
	for {
		n, _, rflags, from, err = unix.Recvmsg(fd, b, nil, flags)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, 0, err
	}
	if rflags&unix.MSG_TRUNC != 0 {
		return nil, 0, ErrTruncated
	}
	sa, ok := from.(*unix.SockaddrNetlink)
	if !ok {
		return nil, 0, fmt.Errorf("%w: datagram from %T, not a netlink address", ErrMalformed, from)
	}
	return b[:n], sa.Pid, nil
}

// recvmsg retries calls interrupted by signals: with SO_RCVTIMEO set, the
// kernel does not restart them, and the Go runtime sends signals freely.
func recvmsg(fd int, b []byte, flags int) (int, error) {
	for {
		n, _, _, _, err := unix.Recvmsg(fd, b, nil, flags)
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

func (s *socket) Close() error {
	return unix.Close(s.fd)
}

// sysErr reports a failed setup call.
func sysErr(call string, err error) *Error {
	return &Error{Op: call, Errno: errnoOf(err), Err: nonErrno(err)}
}

func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	errors.As(err, &errno)
	return errno
}

func nonErrno(err error) error {
	if errnoOf(err) != 0 {
		return nil
	}
	return err
}
