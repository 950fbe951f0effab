//go:build !linux && !darwin

package tundra

import "net/netip"

// SetMTU fails with ErrNotSupported.
func (d *Device) SetMTU(int) error { return notSupported("set mtu") }

// AddAddr fails with ErrNotSupported.
func (d *Device) AddAddr(netip.Prefix, netip.Addr) error { return notSupported("add address") }

// DelAddr fails with ErrNotSupported.
func (d *Device) DelAddr(netip.Prefix, netip.Addr) error { return notSupported("delete address") }

// Addrs fails with ErrNotSupported.
func (d *Device) Addrs() ([]LinkAddr, error) { return nil, notSupported("addresses") }

// Up fails with ErrNotSupported.
func (d *Device) Up() error { return notSupported("set up") }

// Down fails with ErrNotSupported.
func (d *Device) Down() error { return notSupported("set down") }

// SetOwner fails with ErrNotSupported.
func (d *Device) SetOwner(int) error { return notSupported("set owner") }

// SetGroup fails with ErrNotSupported.
func (d *Device) SetGroup(int) error { return notSupported("set group") }
