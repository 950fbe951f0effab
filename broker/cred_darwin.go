package broker

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCredentials reads LOCAL_PEERCRED (a struct xucred: the effective uid
// and the group list the peer had when it called connect(2)) and
// LOCAL_PEERPID.
//
// What xucred's group list means for the group check: XNU fills it from
// the credential's cr_groups, whose first entry is the effective gid, and
// cuts it at NGROUPS (16). A member whose authorized group comes after the
// sixteenth of its groups is therefore not seen as a member and is refused:
// the check fails closed. (macOS resolves group membership lazily through
// opendirectoryd; the kernel list holds what the login set up.) Put the
// tundra group early in such a user's groups, or run the client with it as
// its primary group.
func peerCredentials(c *net.UnixConn) (peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var p peer
	var opErr error
	err = rc.Control(func(fd uintptr) {
		xu, err := unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if err != nil {
			opErr = fmt.Errorf("getsockopt LOCAL_PEERCRED: %w", err)
			return
		}
		if xu.Version != 0 { // XUCRED_VERSION
			opErr = fmt.Errorf("LOCAL_PEERCRED: xucred version %d, want 0", xu.Version)
			return
		}
		n := int(xu.Ngroups)
		if n < 1 || n > len(xu.Groups) {
			opErr = fmt.Errorf("LOCAL_PEERCRED: %d groups", n)
			return
		}
		p.uid, p.gid = xu.Uid, xu.Groups[0]
		p.groups = append([]uint32(nil), xu.Groups[1:n]...)
		pid, err := unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
		if err != nil {
			opErr = fmt.Errorf("getsockopt LOCAL_PEERPID: %w", err)
			return
		}
		p.pid = int32(pid)
	})
	if err == nil {
		err = opErr
	}
	return p, err
}
