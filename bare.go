package tundra

import (
	"errors"
	"net/netip"
)

// CreateBare makes a TUN (or, with TAP, a TAP) device with no address and
// leaves it down: what tunctl(8) makes for a user, who then opens it
// without privilege. It takes Create's options that concern the device
// itself: Name, TAP, PacketInfo, Persist, Owner, Group, Queues, Exclusive,
// MTU, Offloads, CloneDevice and Mode; those that only make sense with an
// address (Peer, Netmask, PrefixLen, KeepDAD) are refused, and so is
// Mode(BrokerOnly): the broker only makes devices with an address, so a
// bare device is always made directly. Every option is checked as Create
// checks it, before anything reaches the kernel.
//
// A persistent device outlives the returned Device: Close it, and the
// device stays for whoever Owner and Group let attach. A non-persistent one
// goes with its last descriptor, as Create's do. The Device's methods
// (SetMTU, AddAddr, Up, ...) configure it further; Addr and Peer are zero.
// With Offloads, the kernel's super-packets are split on reads but writes
// are not coalesced: with no address there is nothing to probe coalesced
// writes with (see OffloadNotes).
//
// On any error nothing is left behind; a device that existed before, reused
// by name, is left as it was found. Needs CAP_NET_ADMIN. Safe from any
// goroutine; the device is made in the network namespace of the calling
// goroutine's thread.
func CreateBare(opts ...Option) (*Device, error) {
	s, err := resolveBare(opts)
	if err != nil {
		return nil, err
	}
	return createBare(s)
}

// CloneDevice sets the TUN/TAP clone device that Create and CreateBare
// open (tun.Config.CloneDevice), for systems that keep it elsewhere than
// /dev/net/tun. The broker ignores it: it opens its own.
func CloneDevice(path string) Option {
	return Option{func(c *rawOptions) { c.cloneDevice = path }}
}

// bareAddr stands in for the address in resolveBare, so that the other
// options go through resolve's checks, kept in one place. It is never
// configured anywhere. IPv4, so that MTUs below 1280 are allowed, as they
// are on a link without IPv6 addresses.
var bareAddr = netip.AddrFrom4([4]byte{192, 0, 2, 1})

// resolveBare checks CreateBare's options: it refuses the address options,
// then runs resolve with a placeholder address. Pure, like resolve.
func resolveBare(opts []Option) (plan, error) {
	c := collect(opts)
	noAddr := func(arg string) error {
		return argError(arg, errors.New("a bare device has no address: add one with Device.AddAddr, or use Create"))
	}
	switch {
	case c.peerSet:
		return plan{}, noAddr("peer")
	case c.netmaskSet:
		return plan{}, noAddr("netmask")
	case c.prefixSet:
		return plan{}, noAddr("prefix length")
	case c.keepDAD:
		return plan{}, noAddr("keep DAD")
	case c.mode == BrokerOnly:
		return plan{}, argError("mode", errors.New("the broker makes devices only with an address; a bare device is made directly"))
	}
	s, err := c.check(bareAddr)
	if err != nil {
		return plan{}, err
	}
	s.local, s.bits, s.nodad = netip.Addr{}, 0, false
	return s, nil
}
