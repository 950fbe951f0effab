package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrVnetByteOrder is wrapped by the error returned when offloads are
// asked for on a big-endian host whose kernel cannot switch the device's
// virtio-net header to little-endian (TUNSETVNETLE fails). Package vnet,
// which decodes and encodes that header, reads its 16-bit fields
// little-endian only; with the header in the host's big-endian order every
// GSO size and checksum offset would be misread, so offloads are refused
// instead.
var ErrVnetByteOrder = errors.New("the virtio-net header cannot be switched to little-endian on this big-endian host")

// vnetNeedsLE reports whether a host of byte order native must switch the
// device's virtio-net header to little-endian before using offloads. TUN
// writes the header in the host's order unless told otherwise
// (drivers/net/tun_vnet.h: tun_vnet_is_little_endian), and package vnet
// speaks little-endian only. The order is a parameter so that the
// big-endian branch is tested on the little-endian hosts this runs on.
func vnetNeedsLE(native binary.ByteOrder) bool {
	var b [2]byte
	native.PutUint16(b[:], 1)
	return b[0] == 0
}

// vnetByteOrder makes the virtio-net header of device name little-endian
// on a host of byte order native: nothing on a little-endian host; on a
// big-endian one it calls setLE (TUNSETVNETLE with 1) and, if the kernel
// refuses, returns an *OpError wrapping both ErrVnetByteOrder and the
// kernel's error. Kernels since Linux 4.0 have TUNSETVNETLE.
func vnetByteOrder(native binary.ByteOrder, name string, setLE func() error) error {
	if !vnetNeedsLE(native) {
		return nil
	}
	if err := setLE(); err != nil {
		return &OpError{Op: "TUNSETVNETLE", Name: name, Err: fmt.Errorf("%w: %w", ErrVnetByteOrder, err)}
	}
	return nil
}
