package tun

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// prepareVnetOrder switches the virtio-net header of the device whose
// queue is fd to little-endian when the host is big-endian (see
// vnetByteOrder); on a little-endian host it makes no system call. The
// switch is per device, like the offloads it serves, so SetOffload calls
// it with the queue fd it is about to use, under d.mu.
func prepareVnetOrder(fd int, name string) error {
	return vnetByteOrder(binary.NativeEndian, name, func() error {
		return unix.IoctlSetPointerInt(fd, unix.TUNSETVNETLE, 1)
	})
}
