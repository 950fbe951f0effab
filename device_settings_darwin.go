package tundra

import (
	"fmt"
	"net/netip"
	"os"
)

// On macOS the settings go through the utun socket's ioctls; a utun device
// has no owner or group, and listing addresses is not implemented.

func (d *Device) utunCheck(op string) error {
	if d.closed.Load() {
		return &Error{Op: op, Name: d.name, Err: os.ErrClosed}
	}
	return nil
}

func (d *Device) utunErr(op string, err error) error {
	if err != nil {
		return &Error{Op: op, Name: d.name, Err: err}
	}
	return nil
}

// SetMTU sets the link MTU, 68..65535 as the MTU option. Safe from any
// goroutine.
func (d *Device) SetMTU(mtu int) error {
	if err := checkMTU(mtu); err != nil {
		return d.settingError("set mtu", "mtu", err)
	}
	if err := d.utunCheck("set mtu"); err != nil {
		return err
	}
	return d.utunErr("set mtu", d.sys.u.SetMTU(mtu))
}

// AddAddr gives the device an address, checked as Create checks it; IPv6
// addresses skip duplicate address detection. Safe from any goroutine.
func (d *Device) AddAddr(p netip.Prefix, peer netip.Addr) error {
	if arg, err := checkLinkAddr(p, peer); err != nil {
		return d.settingError("add address", arg, err)
	}
	if err := d.utunCheck("add address"); err != nil {
		return err
	}
	return d.utunErr("add address", d.sys.u.AddAddr(p, peer, p.Addr().Is6()))
}

// DelAddr removes an address. Safe from any goroutine.
func (d *Device) DelAddr(p netip.Prefix, peer netip.Addr) error {
	if arg, err := checkLinkAddr(p, peer); err != nil {
		return d.settingError("delete address", arg, err)
	}
	if err := d.utunCheck("delete address"); err != nil {
		return err
	}
	return d.utunErr("delete address", d.sys.u.DeleteAddr(p))
}

// Addrs fails with ErrNotSupported on macOS.
func (d *Device) Addrs() ([]LinkAddr, error) {
	return nil, &Error{Op: "addresses", Name: d.name, Err: fmt.Errorf("%w: listing a utun device's addresses", ErrNotSupported)}
}

// Up sets the link up. Safe from any goroutine.
func (d *Device) Up() error {
	if err := d.utunCheck("set up"); err != nil {
		return err
	}
	return d.utunErr("set up", d.sys.u.SetUp(true))
}

// Down sets the link down. Safe from any goroutine.
func (d *Device) Down() error {
	if err := d.utunCheck("set down"); err != nil {
		return err
	}
	return d.utunErr("set down", d.sys.u.SetUp(false))
}

// SetOwner fails with ErrNotSupported: a utun device belongs to its socket.
func (d *Device) SetOwner(int) error {
	return &Error{Op: "set owner", Name: d.name, Err: fmt.Errorf("%w: utun devices have no owner", ErrNotSupported)}
}

// SetGroup fails with ErrNotSupported: a utun device belongs to its socket.
func (d *Device) SetGroup(int) error {
	return &Error{Op: "set group", Name: d.name, Err: fmt.Errorf("%w: utun devices have no group", ErrNotSupported)}
}
