package replay

import (
	"encoding/binary"
	"strings"

	"github.com/tundra-go/tundra/vnet"
)

// Checksums is a set of the checksums a packet carries.
type Checksums uint8

// The checksums the package computes and checks.
const (
	ChecksumIPv4   Checksums = 1 << iota // the IPv4 header checksum
	ChecksumTCP                          // TCP over IPv4 or IPv6
	ChecksumUDP                          // UDP over IPv4 or IPv6
	ChecksumICMP                         // ICMP (IPv4)
	ChecksumICMPv6                       // ICMPv6
)

// String lists the set, e.g. "ipv4+udp", or "none".
func (c Checksums) String() string {
	if c == 0 {
		return "none"
	}
	var parts []string
	for i, name := range []string{"ipv4", "tcp", "udp", "icmp", "icmpv6"} {
		if c&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	return strings.Join(parts, "+")
}

func checksumKind(proto uint8) Checksums {
	switch proto {
	case protoTCP:
		return ChecksumTCP
	case protoUDP:
		return ChecksumUDP
	case protoICMP:
		return ChecksumICMP
	case protoICMPv6:
		return ChecksumICMPv6
	}
	return 0
}

// sum adds b to the ones'-complement sum s (not yet folded), with vnet's
// checksum. Every piece but a packet's last has an even length, so the
// folded pieces add up to the sum of the whole.
func sum(s uint32, b []byte) uint32 {
	return s + uint32(vnet.Checksum(b, 0))
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// ipv4HeaderChecksum computes the header checksum of an IPv4 header with
// its checksum field taken as zero.
func ipv4HeaderChecksum(h []byte) uint16 {
	s := sum(0, h[:10])
	s = sum(s, h[12:])
	return ^fold(s)
}

// pseudoSum starts the upper-layer sum of a packet: the pseudo-header for
// TCP, UDP and ICMPv6, nothing for ICMPv4.
func pseudoSum(ip *ipInfo, p []byte, segLen int) uint32 {
	if !usesPseudoHeader(ip.proto) {
		return 0
	}
	var s uint32
	if ip.version == 4 {
		s = sum(s, p[12:16])
		s = sum(s, p[ip.pseudoDstOff:ip.pseudoDstOff+4])
		return s + uint32(ip.proto) + uint32(segLen)
	}
	s = sum(s, p[8:24])
	s = sum(s, p[ip.pseudoDstOff:ip.pseudoDstOff+16])
	return s + uint32(segLen>>16) + uint32(segLen&0xffff) + uint32(ip.proto)
}

// l4Checksum computes the upper-layer checksum of a complete packet, with
// the checksum field taken as zero, and says where the field is. ok is
// false when the packet has no whole upper-layer header or its protocol has
// no checksum.
func l4Checksum(ip *ipInfo, p []byte) (cs uint16, at int, ok bool) {
	off := checksumOffset(ip.proto, ip.version)
	seg := ip.l4(p)
	if off < 0 || len(seg) < off+2 {
		return 0, 0, false
	}
	s := pseudoSum(ip, p, len(seg))
	s = sum(s, seg[:off])
	s = sum(s, seg[off+2:])
	cs = ^fold(s)
	if ip.proto == protoUDP && cs == 0 {
		cs = 0xffff // zero means "no checksum" for UDP
	}
	return cs, ip.l4off + off, true
}

// l4Valid reports whether the upper-layer checksum of a complete packet
// verifies the way a receiver checks it: the sum over pseudo-header and
// segment, checksum included, is all ones (so 0x0000 and 0xffff, the two
// forms of zero, are both right). An IPv4 UDP checksum of zero is "none"
// and valid; over IPv6 zero is not allowed.
func l4Valid(ip *ipInfo, p []byte) (valid, ok bool) {
	off := checksumOffset(ip.proto, ip.version)
	seg := ip.l4(p)
	if off < 0 || len(seg) < off+2 {
		return false, false
	}
	field := binary.BigEndian.Uint16(seg[off:])
	if ip.proto == protoUDP && field == 0 {
		return ip.version == 4, true
	}
	return fold(sum(pseudoSum(ip, p, len(seg)), seg)) == 0xffff, true
}

// badChecksums returns the checksums of the IP packet p that are wrong.
// Only what can be verified is checked: the IPv4 header always, the
// upper-layer checksum only for a complete, unfragmented datagram. A UDP
// checksum of zero over IPv4 means "none" and is not wrong. Pure; safe from
// any goroutine.
func badChecksums(p []byte) Checksums {
	ip, ok := parseIP(p)
	if !ok {
		return 0
	}
	var bad Checksums
	if ip.version == 4 && fold(sum(0, p[:ip.hdrLen])) != 0xffff {
		bad |= ChecksumIPv4
	}
	if !ip.complete() {
		return bad
	}
	if valid, ok := l4Valid(&ip, p); ok && !valid {
		bad |= checksumKind(ip.proto)
	}
	return bad
}

// fixChecksums recomputes, in place, the wrong checksums of the IP packet
// p: the IPv4 header checksum, and the TCP, UDP, ICMP or ICMPv6 checksum of
// a complete datagram (a fragment's upper-layer checksum covers bytes that
// are not in it, so it is left alone, as is a packet whose length field
// claims more than it holds). An IPv4 UDP checksum of zero ("none") stays
// zero. It returns the checksums it changed; afterwards badChecksums(p) is
// empty. Pure; safe from any goroutine that owns p.
func fixChecksums(p []byte) Checksums {
	ip, ok := parseIP(p)
	if !ok {
		return 0
	}
	var fixed Checksums
	if ip.version == 4 && fold(sum(0, p[:ip.hdrLen])) != 0xffff {
		binary.BigEndian.PutUint16(p[10:12], ipv4HeaderChecksum(p[:ip.hdrLen]))
		fixed |= ChecksumIPv4
	}
	if !ip.complete() {
		return fixed
	}
	if valid, ok := l4Valid(&ip, p); ok && !valid {
		cs, at, _ := l4Checksum(&ip, p)
		binary.BigEndian.PutUint16(p[at:at+2], cs)
		fixed |= checksumKind(ip.proto)
	}
	return fixed
}

// adjustChecksum updates checksum cs for a change of the covered bytes from
// old to new (equal lengths, even), as RFC 1624 does it: a checksum that was
// right stays right, one that was wrong stays wrong by the same amount.
func adjustChecksum(cs uint16, old, new []byte) uint16 {
	s := uint32(^cs)
	for i := 0; i+1 < len(old); i += 2 {
		s += uint32(^(uint16(old[i])<<8 | uint16(old[i+1])))
		s += uint32(uint16(new[i])<<8 | uint16(new[i+1]))
	}
	return ^fold(s)
}
