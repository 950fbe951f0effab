package broker

import "golang.org/x/sys/unix"

// keeperRequired: on Linux a member can make its device persistent or
// give it away (TUNSETPERSIST, TUNSETOWNER, TUNSETGROUP need no capability
// on an attached descriptor), so the Server must watch its devices.
const keeperRequired = true

// setOwner sets a TUN device's owner through one of its queues.
func setOwner(fd int, uid uint32) error {
	return unix.IoctlSetInt(fd, unix.TUNSETOWNER, int(uid))
}
