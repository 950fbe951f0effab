package nl

import (
	"net/netip"
)

// Addr is an IPv4 or IPv6 address assigned to a link.
type Addr struct {
	Index int // link index (ifa_index)
	// Prefix is the local address (IFA_LOCAL) with the prefix length of
	// its subnet, e.g. 10.0.0.1/24; it is not masked.
	Prefix netip.Prefix
	// Peer is the other end of a point-to-point link (IFA_ADDRESS), or the
	// zero Addr for none. It must be of Prefix's family.
	Peer netip.Addr
	// Flags holds IFA_F_* bits such as IFA_F_NODAD. They are sent in the
	// IFA_FLAGS attribute, and their low 8 bits in ifa_flags for kernels
	// that predate it.
	Flags uint32
	// Scope is the RT_SCOPE_* of the address (ifa_scope); 0 is global.
	// The kernel computes the scope of IPv6 addresses itself.
	Scope uint8
	// Broadcast is the IPv4 broadcast address of the subnet
	// (IFA_BROADCAST), or the zero Addr for none. AddAddr and ReplaceAddr
	// send it when it is valid; nothing computes it for the caller (ip's
	// "broadcast +" is the prefix with every host bit set). IPv6 has no
	// broadcast: a valid Broadcast on an IPv6 Addr is refused. DeleteAddr
	// ignores it.
	Broadcast netip.Addr
}

// ifAddrmsg is struct ifaddrmsg, the fixed header of address messages.
type ifAddrmsg struct {
	Family    uint8
	PrefixLen uint8
	Flags     uint8
	Scope     uint8
	Index     uint32
}

func (m ifAddrmsg) marshal() []byte {
	b := make([]byte, sizeofIfAddrmsg)
	b[0], b[1], b[2], b[3] = m.Family, m.PrefixLen, m.Flags, m.Scope
	nativeEndian.PutUint32(b[4:8], m.Index)
	return b
}

// family returns AF_INET or AF_INET6 for a valid, unmapped address.
func family(a netip.Addr) uint8 {
	if a.Is4() {
		return afInet
	}
	return afInet6
}

// ipBytes is the address as it goes in an attribute: 4 bytes for IPv4, 16
// for IPv6. A zone has no place on the wire and is dropped.
func ipBytes(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// checkIP rejects an address the kernel would misread: an IPv4-mapped IPv6
// address (::ffff:a.b.c.d) would be configured as IPv6, which is rarely what
// was meant, so the caller has to say which with Unmap.
func checkIP(op, field string, a netip.Addr) *Error {
	if a.Is4In6() {
		return invalid(op, "%s %v is an IPv4-mapped IPv6 address; use its Unmap() for IPv4", field, a)
	}
	return nil
}

// validate checks an Addr before it is encoded.
func (a Addr) validate(op string) *Error {
	if err := validIndex(op, "Addr.Index", a.Index); err != nil {
		return err
	}
	if !a.Prefix.IsValid() {
		return invalid(op, "Addr.Prefix %v is not a valid prefix", a.Prefix)
	}
	if err := checkIP(op, "Addr.Prefix", a.Prefix.Addr()); err != nil {
		return err
	}
	if a.Peer.IsValid() {
		if err := checkIP(op, "Addr.Peer", a.Peer); err != nil {
			return err
		}
		if a.Peer.Is4() != a.Prefix.Addr().Is4() {
			return invalid(op, "Addr.Peer %v and Addr.Prefix %v are of different families", a.Peer, a.Prefix)
		}
	}
	if a.Broadcast.IsValid() {
		if err := checkIP(op, "Addr.Broadcast", a.Broadcast); err != nil {
			return err
		}
		if !a.Broadcast.Is4() || !a.Prefix.Addr().Is4() {
			return invalid(op, "Addr.Broadcast %v with Addr.Prefix %v: only IPv4 has broadcast addresses", a.Broadcast, a.Prefix)
		}
	}
	return nil
}

// addrRequest builds the payload of RTM_NEWADDR or RTM_DELADDR. IFA_LOCAL
// is the address itself; IFA_ADDRESS is the peer, or the address again when
// there is none, which is how the kernel tells the two cases apart. Flags
// and the broadcast address go only in RTM_NEWADDR (withFlags): the kernel
// does not match on them when it deletes.
func addrRequest(a Addr, withFlags bool) []byte {
	local := a.Prefix.Addr()
	m := ifAddrmsg{
		Family:    family(local),
		PrefixLen: uint8(a.Prefix.Bits()),
		Scope:     a.Scope,
		Index:     uint32(a.Index),
	}
	if withFlags {
		m.Flags = uint8(a.Flags)
	}
	e := encoder{b: m.marshal()}
	e.bytes(ifaLocal, ipBytes(local))
	peer := local
	if a.Peer.IsValid() {
		peer = a.Peer
	}
	e.bytes(ifaAddress, ipBytes(peer))
	if withFlags && a.Broadcast.IsValid() {
		e.bytes(ifaBroadcast, ipBytes(a.Broadcast))
	}
	if withFlags && a.Flags != 0 {
		e.u32(ifaFlags, a.Flags)
	}
	return e.b
}

// dumpAddrsRequest builds the payload of the RTM_GETADDR dump of both
// families. The kernel does not filter by index unless the socket enables
// strict checking, so Addrs filters the replies itself.
func dumpAddrsRequest() []byte {
	return ifAddrmsg{Family: afUnspec}.marshal()
}

// parseAddr decodes the payload of an RTM_NEWADDR message. ok is false for
// families other than IPv4 and IPv6, which an AF_UNSPEC dump may include.
func parseAddr(b []byte) (a Addr, ok bool, err error) {
	if len(b) < sizeofIfAddrmsg {
		return Addr{}, false, malformed("address message of %d bytes, want at least %d", len(b), sizeofIfAddrmsg)
	}
	fam, plen := b[0], int(b[1])
	size, ok, err := familySize(fam, plen, "address prefix length")
	if !ok || err != nil {
		return Addr{}, false, err
	}
	a.Flags = uint32(b[2])
	a.Scope = b[3]
	a.Index = int(nativeEndian.Uint32(b[4:8]))
	attrs, err := parseAttrs(b[sizeofIfAddrmsg:])
	if err != nil {
		return Addr{}, false, err
	}
	var local, address netip.Addr
	for _, at := range attrs {
		switch at.kind() {
		case ifaLocal, ifaAddress:
			if len(at.Data) != size {
				return Addr{}, false, malformed("address attribute %d of %d bytes in a family-%d message", at.kind(), len(at.Data), fam)
			}
			ip, _ := netip.AddrFromSlice(at.Data)
			if at.kind() == ifaLocal {
				local = ip
			} else {
				address = ip
			}
		case ifaBroadcast:
			if len(at.Data) != size {
				return Addr{}, false, malformed("IFA_BROADCAST of %d bytes in a family-%d message", len(at.Data), fam)
			}
			a.Broadcast, _ = netip.AddrFromSlice(at.Data)
		case ifaFlags:
			if a.Flags, err = attrU32(at); err != nil {
				return Addr{}, false, err
			}
		}
	}
	// IPv6 without a peer reports only IFA_ADDRESS; otherwise IFA_LOCAL
	// is ours and a different IFA_ADDRESS is the peer.
	switch {
	case local.IsValid():
		if address.IsValid() && address != local {
			a.Peer = address
		}
	case address.IsValid():
		local = address
	default:
		return Addr{}, false, malformed("address message for link %d carries no address", a.Index)
	}
	a.Prefix = netip.PrefixFrom(local, plen)
	return a, true, nil
}

// familySize is the address size of an IPv4 or IPv6 message, checking its
// prefix length (named what in the error) against it; ok is false for
// other families, which a dump of AF_UNSPEC may include.
func familySize(fam uint8, bits int, what string) (size int, ok bool, err error) {
	switch fam {
	case afInet:
		size = 4
	case afInet6:
		size = 16
	default:
		return 0, false, nil
	}
	if bits > size*8 {
		return 0, false, malformed("%s %d exceeds %d bits", what, bits, size*8)
	}
	return size, true, nil
}
