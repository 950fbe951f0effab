package vnet

import "encoding/binary"

// IP protocol numbers and TCP flag bits used throughout.
const (
	protoTCP = 6
	protoUDP = 17

	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80

	csumOffTCP = 16 // offset of the checksum in the TCP header
	csumOffUDP = 6  // offset of the checksum in the UDP header

	// maxIPLen bounds a super-packet this package builds: the IPv4 total
	// length and the IPv6 payload length are 16-bit fields, and the
	// kernel's GRO stops below 64 KiB (GRO_LEGACY_MAX_SIZE) for both.
	maxIPLen = 0xffff
)

// Layout is what Inspect learned about a packet and its virtio-net header.
type Layout struct {
	// IPVersion is 4 or 6 for a super-packet, 0 for a single packet (whose
	// IP header Inspect does not parse).
	IPVersion int
	// Protocol is 6 (TCP) or 17 (UDP) for a super-packet, 0 otherwise.
	Protocol uint8
	// TransportOffset is where the TCP or UDP header starts: the IP header
	// length, extension headers and options included. For a single packet
	// it is CsumStart with FlagNeedsCsum, 0 without.
	TransportOffset int
	// HeaderLen is the length of the IP and transport headers that every
	// segment of a super-packet repeats; 0 for a single packet.
	HeaderLen int
	// SegmentSize is the payload length of every segment but the last.
	SegmentSize int
	// Segments is the number of packets the buffer carries: 1 for a single
	// packet.
	Segments int
}

// Inspect checks a packet read together with its virtio-net header h, the
// way Split does before it writes anything, and describes it. It reads pkt
// and keeps no reference to it.
//
// The checks: no flag but FlagNeedsCsum and FlagDataValid; HdrLen not past
// the packet (it is only a hint from the kernel, never used to find
// anything); with FlagNeedsCsum, the checksum field inside the packet. For
// a super-packet, also: a GSO type this package segments (TCPv4, TCPv6,
// UDP-L4), a GSO size above 0, an IP version matching the type, IP lengths
// agreeing with the buffer, an IPv4 packet that is not a fragment, an IPv6
// packet whose extension headers are only hop-by-hop and destination
// options, the transport protocol of the type with a header that fits, and
// with FlagNeedsCsum a CsumStart/CsumOffset pointing at that protocol's
// checksum.
func Inspect(pkt []byte, h Header) (Layout, error) {
	return inspect("inspect", pkt, h)
}

func inspect(op string, pkt []byte, h Header) (Layout, error) {
	if h.Flags&^(FlagNeedsCsum|FlagDataValid) != 0 {
		return Layout{}, errorf(op, ErrUnsupported, "virtio-net flags "+hex8(h.Flags)+" (only NEEDS_CSUM and DATA_VALID are known)")
	}
	if int(h.HdrLen) > len(pkt) {
		return Layout{}, errorf(op, ErrMalformed, "hdr_len "+itoa(int(h.HdrLen))+" past the "+itoa(len(pkt))+"-byte packet")
	}
	needsCsum := h.Flags&FlagNeedsCsum != 0
	if h.GSOType == GSONone {
		lay := Layout{Segments: 1}
		if needsCsum {
			start, off := int(h.CsumStart), int(h.CsumOffset)
			if start+off+2 > len(pkt) {
				return Layout{}, errorf(op, ErrMalformed, "checksum at csum_start "+itoa(start)+" + csum_offset "+itoa(off)+" past the "+itoa(len(pkt))+"-byte packet")
			}
			lay.TransportOffset = start
		}
		return lay, nil
	}

	kind := h.GSOType &^ GSOECN
	var proto uint8
	switch kind {
	case GSOTCPv4, GSOTCPv6:
		proto = protoTCP
	case GSOUDPL4:
		if h.GSOType&GSOECN != 0 {
			return Layout{}, errorf(op, ErrMalformed, "ECN bit on the UDP-L4 GSO type")
		}
		proto = protoUDP
	case GSOUDP:
		return Layout{}, errorf(op, ErrUnsupported, "GSO type 3 is UDP fragmentation offload (UFO), which the kernel no longer produces; do not enable TUN_F_UFO")
	default:
		return Layout{}, errorf(op, ErrUnsupported, "unknown GSO type "+hex8(h.GSOType))
	}
	if h.GSOSize == 0 {
		return Layout{}, errorf(op, ErrMalformed, "GSO size 0")
	}
	if len(pkt) == 0 {
		return Layout{}, errorf(op, ErrTruncated, "empty super-packet")
	}

	var l4 int
	switch v := pkt[0] >> 4; v {
	case 4:
		if kind == GSOTCPv6 {
			return Layout{}, errorf(op, ErrMalformed, "GSO type TCPv6 on an IPv4 packet")
		}
		if len(pkt) < 20 {
			return Layout{}, errorf(op, ErrTruncated, itoa(len(pkt))+" bytes, shorter than an IPv4 header")
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 {
			return Layout{}, errorf(op, ErrMalformed, "IPv4 header length "+itoa(ihl))
		}
		if len(pkt) < ihl {
			return Layout{}, errorf(op, ErrTruncated, itoa(len(pkt))+" bytes, IPv4 header says "+itoa(ihl))
		}
		// BIG TCP (a gso_max_size raised past 64 KiB) sends a zero total
		// length for packets that do not fit the field.
		if tot := int(binary.BigEndian.Uint16(pkt[2:])); tot != len(pkt) && (tot != 0 || len(pkt) <= maxIPLen) {
			return Layout{}, errorf(op, ErrMalformed, "IPv4 total length "+itoa(tot)+" for a "+itoa(len(pkt))+"-byte packet")
		}
		if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
			return Layout{}, errorf(op, ErrMalformed, "IPv4 fragment (MF or offset set) in a super-packet")
		}
		if pkt[9] != proto {
			return Layout{}, errorf(op, ErrMalformed, "IPv4 protocol "+itoa(int(pkt[9]))+" under GSO type "+hex8(h.GSOType))
		}
		l4 = ihl
	case 6:
		if kind == GSOTCPv4 {
			return Layout{}, errorf(op, ErrMalformed, "GSO type TCPv4 on an IPv6 packet")
		}
		if len(pkt) < 40 {
			return Layout{}, errorf(op, ErrTruncated, itoa(len(pkt))+" bytes, shorter than an IPv6 header")
		}
		next, off := pkt[6], 40
		for next != proto {
			switch {
			case next == 0 && off == 40, next == 60: // hop-by-hop (first only), destination options
			default:
				return Layout{}, errorf(op, ErrUnsupported, "IPv6 next header "+itoa(int(next))+" at offset "+itoa(off)+" in a super-packet (only hop-by-hop and destination options are carried)")
			}
			if off+2 > len(pkt) {
				return Layout{}, errorf(op, ErrTruncated, "IPv6 extension header at "+itoa(off)+" past the "+itoa(len(pkt))+"-byte packet")
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
			if off > len(pkt) {
				return Layout{}, errorf(op, ErrTruncated, "IPv6 extension header ending at "+itoa(off)+" past the "+itoa(len(pkt))+"-byte packet")
			}
		}
		// BIG TCP without the hop-by-hop jumbo option: payload length 0.
		if pl := int(binary.BigEndian.Uint16(pkt[4:])); pl != len(pkt)-40 && (pl != 0 || off != 40 || len(pkt)-40 <= maxIPLen) {
			return Layout{}, errorf(op, ErrMalformed, "IPv6 payload length "+itoa(pl)+" for a "+itoa(len(pkt))+"-byte packet")
		}
		l4 = off
	default:
		return Layout{}, errorf(op, ErrMalformed, "IP version "+itoa(int(v)))
	}

	var thl, csumOff int
	if proto == protoTCP {
		if len(pkt) < l4+20 {
			return Layout{}, errorf(op, ErrTruncated, "TCP header at "+itoa(l4)+" past the "+itoa(len(pkt))+"-byte packet")
		}
		thl = int(pkt[l4+12]>>4) * 4
		if thl < 20 {
			return Layout{}, errorf(op, ErrMalformed, "TCP header length "+itoa(thl))
		}
		if len(pkt) < l4+thl {
			return Layout{}, errorf(op, ErrTruncated, "TCP header of "+itoa(thl)+" bytes at "+itoa(l4)+" past the "+itoa(len(pkt))+"-byte packet")
		}
		csumOff = csumOffTCP
	} else {
		if len(pkt) < l4+8 {
			return Layout{}, errorf(op, ErrTruncated, "UDP header at "+itoa(l4)+" past the "+itoa(len(pkt))+"-byte packet")
		}
		thl, csumOff = 8, csumOffUDP
	}
	if needsCsum && (int(h.CsumStart) != l4 || int(h.CsumOffset) != csumOff) {
		return Layout{}, errorf(op, ErrMalformed, "csum_start "+itoa(int(h.CsumStart))+"/csum_offset "+itoa(int(h.CsumOffset))+
			" where the transport header is at "+itoa(l4)+" with its checksum at +"+itoa(csumOff))
	}
	hl := l4 + thl
	gso := int(h.GSOSize)
	segs := 1
	if payload := len(pkt) - hl; payload > gso {
		segs = (payload + gso - 1) / gso
	}
	return Layout{
		IPVersion:       int(pkt[0] >> 4),
		Protocol:        proto,
		TransportOffset: l4,
		HeaderLen:       hl,
		SegmentSize:     gso,
		Segments:        segs,
	}, nil
}

func hex8(b uint8) string {
	const digits = "0123456789abcdef"
	return string([]byte{'0', 'x', digits[b>>4], digits[b&0x0f]})
}
