package broker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/tundra-go/tundra/tun"
)

// Limits of a Request that hold whatever the Policy says.
const (
	// MinMTU and MaxMTU bound Request.MTU (when it is not 0): 68 is the
	// smallest MTU every IPv4 link must carry, 65535 the IP total length
	// limit.
	MinMTU = 68
	MaxMTU = 65535
	// MinIPv6MTU is the smallest MTU of a link that carries IPv6 (RFC 8200);
	// the kernel refuses an IPv6 address on a link with a smaller one.
	MinIPv6MTU = 1280
	// MaxQueues bounds Request.Queues: one descriptor per queue travels in
	// a single SCM_RIGHTS message, and the kernel passes at most 253
	// (SCM_MAX_FD) in one.
	MaxQueues = 253
	// MaxNameLen is the longest interface name: IFNAMSIZ (16) less the NUL.
	MaxNameLen = 15
)

// Request is everything a client may ask the broker for: one TUN or TAP
// device with one address, brought up. It mirrors the options of
// tundra.Create that make sense for a device whose life is tied to the
// client's descriptors (persistence, owner and group are not brokered).
//
// Request is a plain value, safe to copy and to use from any goroutine.
type Request struct {
	// Addr is the device's local address with its prefix length, for
	// example fd00:1::1/64 or 10.1.2.1/24. It is required, must be an
	// IPv4 or (unmapped, zone-less) IPv6 unicast address, and the prefix
	// length must be at least 1: a /0 would route every address through
	// the device.
	Addr netip.Prefix
	// Peer is the other end of a point-to-point link, or the zero Addr.
	// It must be of Addr's family and differ from it.
	Peer netip.Addr
	// MTU is the link MTU, MinMTU..MaxMTU (at least MinIPv6MTU for an
	// IPv6 address); 0 keeps the kernel's default.
	MTU int
	// Name is the interface name; "" lets the kernel choose (tunN, tapN)
	// and a pattern with one "%d" lets it fill in the number. Names
	// follow tun.ValidateName.
	Name string
	// TAP asks for a layer-2 (Ethernet) device instead of a layer-3 TUN.
	TAP bool
	// PacketInfo keeps the kernel's 4-byte packet-information header on
	// every packet.
	PacketInfo bool
	// Queues is the number of queues (descriptors), 1..MaxQueues; more
	// than one makes a multi-queue device. 0 means 1.
	Queues int
	// Exclusive is carried for completeness: the broker always creates a
	// new device (IFF_TUN_EXCL) and never attaches a client to an
	// existing one, whatever this field says.
	Exclusive bool
}

// Created is what a CreateFunc or Client.Create returns: the device's
// queue descriptors and identity. The holder owns the descriptors and must
// close them (Close does); the device disappears when the last one is
// closed.
type Created struct {
	// Fds holds one open descriptor per queue, close-on-exec and
	// non-blocking.
	Fds []int
	// Name is the interface name the kernel gave the device.
	Name string
	// Index is the interface index.
	Index int
}

// CreateFunc creates and configures the device r describes: open it with
// IFF_TUN_EXCL, set the MTU, add the address, bring it up. On error it
// must leave nothing behind: no device, no open descriptor. The Server
// calls it from many goroutines at once and validates r with
// Request.Validate first. DirectCreate is the production implementation.
type CreateFunc func(ctx context.Context, r Request) (Created, error)

// queues returns r.Queues with 0 read as 1.
func (r Request) queues() int {
	if r.Queues == 0 {
		return 1
	}
	return r.Queues
}

// Validate checks that r is a request the kernel can carry out, whatever
// the policy: a valid unicast address and prefix length, a peer of the same
// family, an MTU in range, a valid name and queue count. The error names
// the field. Validate is pure and safe from any goroutine.
func (r Request) Validate() error {
	if !r.Addr.IsValid() {
		return fmt.Errorf("address: missing or invalid (%v)", r.Addr)
	}
	a := r.Addr.Addr()
	if err := checkUnicast("address", a); err != nil {
		return err
	}
	if r.Addr.Bits() < 1 {
		return fmt.Errorf("address: prefix length /0 would route every address through the device")
	}
	if r.Peer.IsValid() {
		if err := checkUnicast("peer", r.Peer); err != nil {
			return err
		}
		if r.Peer.Is4() != a.Is4() {
			return fmt.Errorf("peer: %v and address %v are of different families", r.Peer, a)
		}
		if r.Peer == a {
			return fmt.Errorf("peer: %v is the device's own address", r.Peer)
		}
	}
	if r.MTU != 0 {
		if r.MTU < MinMTU || r.MTU > MaxMTU {
			return fmt.Errorf("mtu: %d is outside %d..%d", r.MTU, MinMTU, MaxMTU)
		}
		if a.Is6() && r.MTU < MinIPv6MTU {
			return fmt.Errorf("mtu: %d is below %d, the minimum for an IPv6 address", r.MTU, MinIPv6MTU)
		}
	}
	if r.Name != "" {
		if err := tun.ValidateName(r.Name); err != nil {
			return fmt.Errorf("name: %w", err)
		}
		if err := checkNameBytes(r.Name); err != nil {
			return err
		}
	}
	if r.Queues < 0 || r.Queues > MaxQueues {
		return fmt.Errorf("queues: %d is outside 1..%d", r.Queues, MaxQueues)
	}
	return nil
}

// checkNameBytes allows only [A-Za-z0-9._-] and the '%' of a "%d" (whose
// single use tun.ValidateName has checked already).
func checkNameBytes(name string) error {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		case c == '%' && i+1 < len(name) && name[i+1] == 'd':
		default:
			return fmt.Errorf("name: %s: byte 0x%02x at offset %d is not allowed (only A-Z, a-z, 0-9, '.', '_', '-' and one %%d)", quoteName(name), c, i)
		}
	}
	return nil
}

// checkUnicast refuses addresses no device can own.
func checkUnicast(what string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%s: invalid", what)
	case a.Zone() != "":
		return fmt.Errorf("%s: %v has a zone", what, a)
	case a.Is4In6():
		return fmt.Errorf("%s: %v is IPv4-mapped; give the IPv4 address", what, a)
	case a.IsUnspecified():
		return fmt.Errorf("%s: %v is the unspecified address", what, a)
	case a.IsMulticast():
		return fmt.Errorf("%s: %v is a multicast address", what, a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s: %v is the broadcast address", what, a)
	}
	return nil
}

// String describes r for logs and errors, e.g.
// "tun fd00::1/64 peer fd00::2 mtu 1400 name tun%d queues 1".
func (r Request) String() string {
	var b strings.Builder
	if r.TAP {
		b.WriteString("tap ")
	} else {
		b.WriteString("tun ")
	}
	b.WriteString(r.Addr.String())
	if r.Peer.IsValid() {
		b.WriteString(" peer " + r.Peer.String())
	}
	if r.MTU != 0 {
		fmt.Fprintf(&b, " mtu %d", r.MTU)
	}
	if r.Name != "" {
		fmt.Fprintf(&b, " name %s", quoteName(r.Name))
	}
	fmt.Fprintf(&b, " queues %d", r.queues())
	if r.PacketInfo {
		b.WriteString(" pi")
	}
	return b.String()
}

// quoteName quotes a name holding anything but printable, non-space ASCII.
func quoteName(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}

// Close closes every descriptor in c.Fds and sets them to -1. It is safe to
// call twice; it must not race with other use of the descriptors.
func (c *Created) Close() error {
	var first error
	for i, fd := range c.Fds {
		if fd < 0 {
			continue
		}
		if err := closeFD(fd); err != nil && first == nil {
			first = fmt.Errorf("broker: close fd %d: %w", fd, err)
		}
		c.Fds[i] = -1
	}
	return first
}
