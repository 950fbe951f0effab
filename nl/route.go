package nl

import (
	"fmt"
	"net/netip"
)

// Route is a route of the kernel's routing tables: what AddRoute adds and
// DeleteRoute removes, and what Routes lists.
//
// AddRoute always adds a static unicast route (RTPROT_STATIC, scope link
// without a gateway and universe with one) and ignores Type, Scope and
// Protocol; DeleteRoute ignores them too, so that a Route from Routes can be
// handed to it as it is.
type Route struct {
	// Dst is the destination prefix, IPv4 or IPv6. The kernel rejects an
	// IPv4 prefix with host bits set; use netip.Prefix.Masked. Routes
	// reports a default route as 0.0.0.0/0 or ::/0.
	Dst netip.Prefix
	// Index is the output link (RTA_OIF), or 0 to let the kernel find it
	// from Gateway. Routes reports 0 for routes without one, such as
	// blackhole and unreachable routes.
	Index int
	// Gateway is the next hop (RTA_GATEWAY), of Dst's family, or the zero
	// Addr for a route straight onto the link. Its zone, if any, is
	// ignored: Index selects the link.
	Gateway netip.Addr
	// Priority is the route's metric (RTA_PRIORITY); 0 is the default.
	Priority uint32
	// Table is the routing table, 0 meaning the main table (254) when
	// adding or deleting. Routes fills it from RTA_TABLE, which carries
	// ids above 255 that the 8-bit rtm_table cannot: 254 is main, 255
	// local.
	Table uint32
	// Type is the route type (rtm_type), one of the Route* constants
	// such as RouteUnicast or RouteLocal. Filled by Routes.
	Type uint8
	// Scope is the route's scope (rtm_scope, RT_SCOPE_*): 0 universe,
	// 253 link, 254 host. Filled by Routes.
	Scope uint8
	// Protocol says who added the route (rtm_protocol, RTPROT_*): 2 the
	// kernel, 3 boot (ip's default), 4 static (AddRoute), others for
	// routing daemons. Filled by Routes.
	Protocol uint8
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

// Route types (enum in include/uapi/linux/rtnetlink.h), as RouteGet and
// Routes report them.
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

// dumpRoutesRequest builds the RTM_GETROUTE dump of one family. Without
// strict checking the kernel ignores rtm_table and sends every table; with
// rtm_flags 0 it sends the FIB, not the cache of cloned routes.
func dumpRoutesRequest(fam uint8) []byte {
	return rtmsg{Family: fam}.marshal()
}

// parseRoutes decodes one RTM_NEWROUTE of a dump. ok is false for families
// other than IPv4 and IPv6.
//
// A multipath route (RTA_MULTIPATH) becomes one Route per next hop, each
// with the route's Dst, Table, Type, Scope, Protocol and Priority and the
// hop's own link and gateway, so that every link a destination is routed
// through is seen. A hop's gateway of another family (RTA_VIA, an IPv4
// route through an IPv6 neighbour) is left out, as is the source prefix of
// IPv6 source-specific routes (RTA_SRC): Route has no field for either.
func parseRoutes(b []byte) (routes []Route, ok bool, err error) {
	if len(b) < sizeofRtmsg {
		return nil, false, malformed("route message of %d bytes, want at least %d", len(b), sizeofRtmsg)
	}
	fam, dstLen := b[0], int(b[1])
	size, ok, err := familySize(fam, dstLen, "route destination length")
	if !ok || err != nil {
		return nil, false, err
	}
	r := Route{Table: uint32(b[4]), Protocol: b[5], Scope: b[6], Type: b[7]}
	attrs, err := parseAttrs(b[sizeofRtmsg:])
	if err != nil {
		return nil, false, err
	}
	dst := netip.IPv4Unspecified()
	if fam == afInet6 {
		dst = netip.IPv6Unspecified()
	}
	var multipath []byte
	for _, at := range attrs {
		switch at.kind() {
		case rtaDst:
			if len(at.Data) != size {
				return nil, false, malformed("RTA_DST of %d bytes in a family-%d route", len(at.Data), fam)
			}
			dst, _ = netip.AddrFromSlice(at.Data)
		case rtaGateway:
			if r.Gateway, err = routeAddr(at, size, fam); err != nil {
				return nil, false, err
			}
		case rtaOIF:
			v, err := attrU32(at)
			if err != nil {
				return nil, false, err
			}
			r.Index = int(v)
		case rtaPriority:
			if r.Priority, err = attrU32(at); err != nil {
				return nil, false, err
			}
		case rtaTable:
			if r.Table, err = attrU32(at); err != nil {
				return nil, false, err
			}
		case rtaMultipath:
			multipath = at.Data
		}
	}
	r.Dst = netip.PrefixFrom(dst, dstLen)
	if multipath == nil {
		return []Route{r}, true, nil
	}
	routes, err = parseNexthops(r, multipath, size, fam)
	if err != nil {
		return nil, false, err
	}
	return routes, true, nil
}

// routeAddr decodes an address attribute of a family-fam route.
func routeAddr(at attr, size int, fam uint8) (netip.Addr, error) {
	if len(at.Data) != size {
		return netip.Addr{}, malformed("route attribute %d of %d bytes in a family-%d route", at.kind(), len(at.Data), fam)
	}
	a, _ := netip.AddrFromSlice(at.Data)
	return a, nil
}

// parseNexthops splits the value of RTA_MULTIPATH, a run of struct
// rtnexthop (rtnh_len covering the struct and its attributes, flags, hops,
// ifindex), each followed by its attributes, into one Route per hop built
// on base. An empty list yields base alone.
func parseNexthops(base Route, b []byte, size int, fam uint8) ([]Route, error) {
	var routes []Route
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < sizeofRtnexthop {
			return nil, malformed("next hop at byte %d of RTA_MULTIPATH: %d bytes left, rtnexthop needs %d", off, len(rest), sizeofRtnexthop)
		}
		l := int(nativeEndian.Uint16(rest[0:2]))
		if l < sizeofRtnexthop || l > len(rest) {
			return nil, malformed("next hop at byte %d of RTA_MULTIPATH: rtnh_len %d outside [%d, %d]", off, l, sizeofRtnexthop, len(rest))
		}
		r := base
		r.Gateway = netip.Addr{}
		r.Index = int(int32(nativeEndian.Uint32(rest[4:8])))
		attrs, err := parseAttrs(rest[sizeofRtnexthop:l])
		if err != nil {
			return nil, fmt.Errorf("next hop at byte %d of RTA_MULTIPATH: %w", off, err)
		}
		for _, at := range attrs {
			if at.kind() == rtaGateway {
				if r.Gateway, err = routeAddr(at, size, fam); err != nil {
					return nil, err
				}
			}
		}
		routes = append(routes, r)
		off += min(nlaAlign(l), len(rest)) // RTNH_ALIGN is 4, as NLA_ALIGN
	}
	if len(routes) == 0 {
		routes = append(routes, base)
	}
	return routes, nil
}
