package replay

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers the package looks at.
const (
	protoHopByHop = 0
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoICMPv6   = 58
	protoNone     = 59
	protoDstOpts  = 60
	protoMobility = 135
)

// ipInfo is what the package needs to know about one IP packet: where the
// addresses are, which upper-layer protocol it carries and where its header
// starts, and whether the packet is a complete datagram. It is filled by
// parseIP from the bytes alone and never trusts a length field further than
// the bytes go.
type ipInfo struct {
	version int
	hdrLen  int // IPv4: IHL*4; IPv6: 40 (extension headers not included)
	src     netip.Addr
	dst     netip.Addr
	// pseudoDst is the destination the upper-layer checksum covers: the
	// final destination of a routing header with segments left, else dst.
	// pseudoDstOff is its offset in the packet.
	pseudoDst    netip.Addr
	pseudoDstOff int
	proto        uint8 // upper-layer protocol (after IPv6 extension headers)
	l4off        int   // offset of the upper-layer header, or -1 (non-first fragment, truncated chain, ESP)
	// end is where the packet ends according to its length field; lenOK
	// reports that the bytes reach that far.
	end   int
	lenOK bool
	// Fragmentation: a fragment is a packet that is part of a larger
	// datagram (an IPv6 atomic fragment, offset 0 without M, is not).
	fragment  bool
	fragOff   int // in bytes
	fragMore  bool
	fragID    uint32
	hasFragHd bool // IPv6 Fragment header present (atomic or not)
}

// complete reports whether the packet is a whole datagram whose bytes are
// all here, so that upper-layer checksums can be computed over it.
func (ip *ipInfo) complete() bool {
	return ip.lenOK && !ip.fragment && ip.l4off >= 0
}

// l4 returns the upper-layer bytes up to the end given by the length field
// (or to the end of the data, if that comes first).
func (ip *ipInfo) l4(p []byte) []byte {
	if ip.l4off < 0 {
		return nil
	}
	end := min(ip.end, len(p))
	if ip.l4off > end {
		return nil
	}
	return p[ip.l4off:end]
}

// parseIP decodes the IP header chain of p. ok is false when p is not an
// IPv4 or IPv6 packet with a whole fixed header.
func parseIP(p []byte) (ip ipInfo, ok bool) {
	ip.l4off = -1
	if len(p) == 0 {
		return ip, false
	}
	switch p[0] >> 4 {
	case 4:
		return parseIPv4(p)
	case 6:
		return parseIPv6(p)
	}
	return ip, false
}

func parseIPv4(p []byte) (ip ipInfo, ok bool) {
	ip.l4off = -1
	if len(p) < 20 {
		return ip, false
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || ihl > len(p) {
		return ip, false
	}
	ip.version, ip.hdrLen = 4, ihl
	ip.src = netip.AddrFrom4([4]byte(p[12:16]))
	ip.dst = netip.AddrFrom4([4]byte(p[16:20]))
	ip.pseudoDst, ip.pseudoDstOff = ip.dst, 16
	ip.proto = p[9]
	total := int(binary.BigEndian.Uint16(p[2:4]))
	ip.end = total
	ip.lenOK = total >= ihl && total <= len(p)
	if total < ihl {
		ip.end = len(p)
	}
	frag := binary.BigEndian.Uint16(p[6:8])
	ip.fragOff = int(frag&0x1fff) * 8
	ip.fragMore = frag&0x2000 != 0
	ip.fragID = uint32(binary.BigEndian.Uint16(p[4:6]))
	ip.fragment = ip.fragOff != 0 || ip.fragMore
	if ip.fragOff == 0 {
		ip.l4off = ihl
	}
	return ip, true
}

func parseIPv6(p []byte) (ip ipInfo, ok bool) {
	ip.l4off = -1
	if len(p) < 40 {
		return ip, false
	}
	ip.version, ip.hdrLen = 6, 40
	ip.src = netip.AddrFrom16([16]byte(p[8:24]))
	ip.dst = netip.AddrFrom16([16]byte(p[24:40]))
	ip.pseudoDst, ip.pseudoDstOff = ip.dst, 24
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	ip.end = 40 + plen
	ip.lenOK = plen != 0 && ip.end <= len(p) // 0: a jumbogram, not handled
	if plen == 0 {
		ip.end = len(p)
	}
	next, off := p[6], 40
	for range 16 { // a chain longer than this is not worth following
		switch next {
		case protoHopByHop, protoDstOpts, protoRouting, protoMobility:
			if off+8 > len(p) {
				ip.proto = next
				return ip, true
			}
			n := (int(p[off+1]) + 1) * 8
			if off+n > len(p) {
				ip.proto = next
				return ip, true
			}
			if next == protoRouting {
				ip.routingDst(p, off, n)
			}
			next, off = p[off], off+n
		case protoAH:
			if off+8 > len(p) {
				ip.proto = next
				return ip, true
			}
			n := (int(p[off+1]) + 2) * 4
			if off+n > len(p) {
				ip.proto = next
				return ip, true
			}
			next, off = p[off], off+n
		case protoFragment:
			if off+8 > len(p) {
				ip.proto = next
				return ip, true
			}
			ip.hasFragHd = true
			fo := binary.BigEndian.Uint16(p[off+2 : off+4])
			ip.fragOff = int(fo & 0xfff8) // already in bytes: offset<<3
			ip.fragMore = fo&1 != 0
			ip.fragID = binary.BigEndian.Uint32(p[off+4 : off+8])
			ip.fragment = ip.fragOff != 0 || ip.fragMore
			next, off = p[off], off+8
			if ip.fragOff != 0 {
				ip.proto = next
				return ip, true
			}
		default:
			ip.proto = next
			if next != protoESP && next != protoNone {
				ip.l4off = off
			}
			return ip, true
		}
	}
	ip.proto = next
	return ip, true
}

// routingDst records the final destination of a routing header that still
// has segments left: RFC 8200 says the upper-layer checksum covers it.
func (ip *ipInfo) routingDst(p []byte, off, n int) {
	typ, left := p[off+2], p[off+3]
	if left == 0 {
		return
	}
	addrs := (n - 8) / 16
	if addrs == 0 {
		return
	}
	var at int
	switch typ {
	case 0, 2: // RH0 (deprecated) and the Mobile IPv6 type 2: the last address
		at = off + 8 + (addrs-1)*16
	case 4: // Segment Routing: segment list[0] is the final segment
		at = off + 8
	default:
		return
	}
	ip.pseudoDst = netip.AddrFrom16([16]byte(p[at : at+16]))
	ip.pseudoDstOff = at
}

// checksumOffset is where the upper-layer checksum sits inside its header,
// or -1 for protocols without one the package maintains.
func checksumOffset(proto uint8, version int) int {
	switch proto {
	case protoTCP:
		return 16
	case protoUDP:
		return 6
	case protoICMPv6:
		return 2
	case protoICMP:
		if version == 4 {
			return 2
		}
	}
	return -1
}

// usesPseudoHeader reports whether the protocol's checksum covers the IP
// pseudo-header (ICMPv4's does not).
func usesPseudoHeader(proto uint8) bool {
	return proto == protoTCP || proto == protoUDP || proto == protoICMPv6
}
