package tun

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/netnstest"
)

// TestVnetByteOrderKernel runs the decision against a real device and reads
// the kernel's flag back with TUNGETVNETLE: on this (little-endian) host
// prepareVnetOrder leaves the device alone, and the big-endian branch's
// ioctl really switches the device to little-endian.
func TestVnetByteOrderKernel(t *testing.T) {
	ns := netnstest.New(t)
	var dev *Device
	if err := ns.Do(func() (err error) {
		dev, err = Open(Config{Name: "tvle0", VnetHdr: true})
		return err
	}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer dev.Close()
	le := func() int {
		t.Helper()
		v, err := unix.IoctlGetInt(dev.Fd(), unix.TUNGETVNETLE)
		if err != nil {
			t.Fatalf("TUNGETVNETLE: %v", err)
		}
		return v
	}
	if le() != 0 {
		t.Fatal("a new device already has TUN_VNET_LE set")
	}
	if err := prepareVnetOrder(dev.Fd(), dev.Name()); err != nil {
		t.Fatalf("prepareVnetOrder: %v", err)
	}
	if got := le(); got != 0 {
		t.Fatalf("on a little-endian host prepareVnetOrder set TUN_VNET_LE (%d)", got)
	}
	if err := vnetByteOrder(binary.BigEndian, dev.Name(), func() error {
		return unix.IoctlSetPointerInt(dev.Fd(), unix.TUNSETVNETLE, 1)
	}); err != nil {
		t.Fatalf("big-endian branch: %v", err)
	}
	if got := le(); got != 1 {
		t.Fatalf("after the big-endian branch TUNGETVNETLE = %d, want 1", got)
	}
}
