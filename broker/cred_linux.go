package broker

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxPeerGroups bounds the supplementary group list read from the kernel
// (NGROUPS_MAX is 65536).
const maxPeerGroups = 65536

// peerCredentials reads SO_PEERCRED and SO_PEERGROUPS: the uid, gid, pid
// and supplementary groups the peer had when it called connect(2), mapped
// into this process's user namespace.
func peerCredentials(c *net.UnixConn) (peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var p peer
	var opErr error
	err = rc.Control(func(fd uintptr) {
		uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = fmt.Errorf("getsockopt SO_PEERCRED: %w", err)
			return
		}
		p.uid, p.gid, p.pid = uc.Uid, uc.Gid, uc.Pid
		p.groups, err = peerGroups(int(fd))
		if err != nil {
			opErr = fmt.Errorf("getsockopt SO_PEERGROUPS: %w", err)
		}
	})
	if err == nil {
		err = opErr
	}
	return p, err
}

// peerGroups reads SO_PEERGROUPS, growing the buffer once if the kernel
// says (ERANGE, with the needed length) that it is too small.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for range 2 {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == 0:
			if n%4 != 0 || int(n/4) > len(buf) {
				return nil, fmt.Errorf("kernel returned %d bytes", n)
			}
			return buf[: n/4 : n/4], nil
		case e == unix.ERANGE && n/4 > uint32(len(buf)) && n/4 <= maxPeerGroups:
			buf = make([]uint32, n/4)
		default:
			return nil, e
		}
	}
	return nil, unix.ERANGE
}
