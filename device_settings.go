package tundra

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrBrokered is wrapped by the errors of SetPersist, SetOwner and
// SetGroup on a device the broker made: the broker promises that its
// devices live exactly as long as the client's descriptors, and a
// persistent device, or one handed to another owner or group, would
// outlive them. The same errors also match ErrInvalidArgument.
var ErrBrokered = errors.New("brokered devices cannot outlive their descriptors")

// LinkAddr is one address of a device, as Device.Addrs reports it and as
// AddAddr and DelAddr take it.
type LinkAddr struct {
	// Prefix is the device's own address with the prefix length of its
	// subnet, e.g. 10.0.0.1/24 (not masked).
	Prefix netip.Prefix
	// Peer is the other end of a point-to-point link, or the zero Addr.
	Peer netip.Addr
	// Broadcast is the IPv4 broadcast address, or the zero Addr (always
	// for IPv6, and for an IPv4 address with a peer or a /31 or /32).
	Broadcast netip.Addr
}

// settingError is an argument refused by a Device method: it names the
// operation, the device and the argument, and matches ErrInvalidArgument.
func (d *Device) settingError(op, arg string, reason error) error {
	return &Error{Op: op, Name: d.name, Arg: arg, Err: invalid{reason}}
}

// checkMTU applies Create's MTU rule (the MTU option) to SetMTU.
func checkMTU(mtu int) error {
	if mtu < minMTU || mtu > maxMTU {
		return fmt.Errorf("%d is outside %d..%d", mtu, minMTU, maxMTU)
	}
	return nil
}

// checkLinkAddr applies Create's rules for the address, its prefix length
// and the peer (see resolve) to AddAddr and DelAddr.
func checkLinkAddr(p netip.Prefix, peer netip.Addr) (arg string, err error) {
	if !p.IsValid() {
		return "address", errors.New("the zero or invalid netip.Prefix is not an address")
	}
	local := p.Addr()
	if err := checkUnicast("address", local); err != nil {
		return "address", err
	}
	if p.Bits() == 0 {
		family := "IPv4"
		if local.Is6() {
			family = "IPv6"
		}
		return "prefix length", fmt.Errorf("/0 would claim every %s address for the device; add a route instead", family)
	}
	if !peer.IsValid() {
		return "", nil
	}
	if err := checkUnicast("peer", peer); err != nil {
		return "peer", err
	}
	if peer.Is6() != local.Is6() {
		return "peer", fmt.Errorf("peer %s and address %s are of different families", peer, local)
	}
	if peer == local {
		return "peer", fmt.Errorf("peer %s is the device's own address", peer)
	}
	return "", nil
}
