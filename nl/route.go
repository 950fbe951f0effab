package nl

import (
	"net/netip"
)

// Route is a unicast route through a link or a gateway.
type Route struct {
	// Dst is the destination prefix, IPv4 or IPv6. The kernel rejects an
	// IPv4 prefix with host bits set; use netip.Prefix.Masked.
	Dst netip.Prefix
	// Index is the output link (RTA_OIF), or 0 to let the kernel find it
	// from Gateway.
	Index int
	// Gateway is the next hop (RTA_GATEWAY), of Dst's family, or the zero
	// Addr for a route straight onto the link. Its zone, if any, is
	// ignored: Index selects the link.
	Gateway netip.Addr
	// Priority is the route's metric (RTA_PRIORITY); 0 is the default.
	Priority uint32
	// Table is the routing table, 0 meaning the main table (254).
	Table uint32
}

// rtmsg is struct rtmsg, the fixed header of route messages.
type rtmsg struct {
	Family   uint8
	DstLen   uint8
	SrcLen   uint8
	TOS      uint8
	Table    uint8
	Protocol uint8
	Scope    uint8
	Type     uint8
	Flags    uint32
}

func (m rtmsg) marshal() []byte {
	b := make([]byte, sizeofRtmsg)
	b[0], b[1], b[2], b[3] = m.Family, m.DstLen, m.SrcLen, m.TOS
	b[4], b[5], b[6], b[7] = m.Table, m.Protocol, m.Scope, m.Type
	nativeEndian.PutUint32(b[8:12], m.Flags)
	return b
}

// validate checks a Route before it is encoded. A new route needs a way
// out, a link or a gateway; a deletion may name only the destination.
func (r Route) validate(op string, add bool) *Error {
	if !r.Dst.IsValid() {
		return invalid(op, "Route.Dst %v is not a valid prefix", r.Dst)
	}
	if err := checkIP(op, "Route.Dst", r.Dst.Addr()); err != nil {
		return err
	}
	if r.Index != 0 {
		if err := validIndex(op, "Route.Index", r.Index); err != nil {
			return err
		}
	}
	if r.Gateway.IsValid() {
		if err := checkIP(op, "Route.Gateway", r.Gateway); err != nil {
			return err
		}
		if r.Gateway.Is4() != r.Dst.Addr().Is4() {
			return invalid(op, "Route.Gateway %v and Route.Dst %v are of different families", r.Gateway, r.Dst)
		}
	} else if add && r.Index == 0 {
		return invalid(op, "Route to %v has neither Index nor Gateway", r.Dst)
	}
	return nil
}

// routeRequest builds the payload of RTM_NEWROUTE (add) or RTM_DELROUTE.
//
// A new route is a static unicast route (RTPROT_STATIC, so that it shows as
// added by an administrator rather than by the kernel), with link scope when
// it has no gateway, as the kernel requires for a directly connected
// destination. A deletion leaves protocol and type unset and the scope at
// RT_SCOPE_NOWHERE, which the kernel reads as "any", so that it matches the
// route whoever added it.
func routeRequest(r Route, add bool) []byte {
	table := r.Table
	if table == 0 {
		table = rtTableMain
	}
	m := rtmsg{
		Family: family(r.Dst.Addr()),
		DstLen: uint8(r.Dst.Bits()),
		Scope:  rtScopeNowhere,
	}
	// rtm_table has 8 bits; larger ids travel only in RTA_TABLE, which
	// the kernel prefers anyway.
	if table < 256 {
		m.Table = uint8(table)
	} else {
		m.Table = rtTableUnspec
	}
	if add {
		m.Protocol = rtprotStatic
		m.Type = rtnUnicast
		m.Scope = rtScopeUniverse
		if !r.Gateway.IsValid() {
			m.Scope = rtScopeLink
		}
	}
	e := encoder{b: m.marshal()}
	if r.Dst.Bits() > 0 {
		e.bytes(rtaDst, ipBytes(r.Dst.Addr()))
	}
	if r.Index != 0 {
		e.u32(rtaOIF, uint32(r.Index))
	}
	if r.Gateway.IsValid() {
		e.bytes(rtaGateway, ipBytes(r.Gateway))
	}
	if r.Priority != 0 {
		e.u32(rtaPriority, r.Priority)
	}
	e.u32(rtaTable, table)
	return e.b
}

// Route types (enum in include/uapi/linux/rtnetlink.h), as RouteGet reports
// them.
const (
	RouteUnicast     = 1 // RTN_UNICAST: forwarded through a link
	RouteLocal       = 2 // RTN_LOCAL: delivered to this host
	RouteBroadcast   = 3 // RTN_BROADCAST
	RouteMulticast   = 5 // RTN_MULTICAST
	RouteBlackhole   = 6 // RTN_BLACKHOLE
	RouteUnreachable = 7 // RTN_UNREACHABLE
	RouteProhibit    = 8 // RTN_PROHIBIT
)

// RouteLookup is the kernel's routing decision for one destination.
type RouteLookup struct {
	// Type is the route type: RouteLocal when the destination is one of
	// this host's addresses, ready to receive; RouteUnicast when it leaves
	// through Index.
	Type uint8
	// Index is the link the decision names (RTA_OIF); for a local address,
	// the loopback link.
	Index int
	// Table is the table the route came from.
	Table uint32
}

// routeGetRequest builds an RTM_GETROUTE for one address.
func routeGetRequest(dst netip.Addr) []byte {
	m := rtmsg{Family: family(dst), DstLen: uint8(dst.BitLen())}
	e := encoder{b: m.marshal()}
	e.bytes(rtaDst, ipBytes(dst))
	return e.b
}

// parseRouteLookup reads the RTM_NEWROUTE that answers an RTM_GETROUTE.
func parseRouteLookup(b []byte) (RouteLookup, error) {
	if len(b) < sizeofRtmsg {
		return RouteLookup{}, malformed("route message of %d bytes, want at least %d", len(b), sizeofRtmsg)
	}
	r := RouteLookup{Type: b[7], Table: uint32(b[4])}
	attrs, err := parseAttrs(b[sizeofRtmsg:])
	if err != nil {
		return RouteLookup{}, err
	}
	for _, at := range attrs {
		switch at.kind() {
		case rtaOIF:
			v, err := attrU32(at)
			if err != nil {
				return RouteLookup{}, err
			}
			r.Index = int(v)
		case rtaTable:
			v, err := attrU32(at)
			if err != nil {
				return RouteLookup{}, err
			}
			r.Table = v
		}
	}
	return r, nil
}
