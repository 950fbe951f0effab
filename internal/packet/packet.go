// Package packet builds and inspects IPv4 and IPv6 packets for tests,
// benchmarks and tools: valid UDP datagrams with correct checksums, and the
// few fields the tools read back. It is pure byte work, safe from any
// goroutine.
package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tundra-go/tundra/vnet"
)

// Protocol numbers (IANA).
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// UDP builds an IPv4 or IPv6 packet carrying a UDP datagram from src to
// dst with payload, every checksum correct. The families must match.
func UDP(src, dst netip.AddrPort, payload []byte) ([]byte, error) {
	return AppendUDP(nil, src, dst, payload)
}

// AppendUDP is UDP appending to b, to build into a caller's buffer.
func AppendUDP(b []byte, src, dst netip.AddrPort, payload []byte) ([]byte, error) {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() != d.Is4() || !s.IsValid() || !d.IsValid() {
		return nil, errors.New("packet: source and destination must be valid addresses of one family")
	}
	udpLen := 8 + len(payload)
	start := len(b)
	var udpAt int
	if s.Is4() {
		total := 20 + udpLen
		if total > 0xffff {
			return nil, errors.New("packet: datagram too long for IPv4")
		}
		b = append(b, 0x45, 0, byte(total>>8), byte(total), 0, 0, 0x40, 0, 64, ProtoUDP, 0, 0)
		b = append(b, s.AsSlice()...)
		b = append(b, d.AsSlice()...)
		binary.BigEndian.PutUint16(b[start+10:], ^vnet.Checksum(b[start:start+20], 0))
		udpAt = start + 20
	} else {
		if udpLen > 0xffff {
			return nil, errors.New("packet: datagram too long (no jumbograms)")
		}
		b = append(b, 0x60, 0, 0, 0, byte(udpLen>>8), byte(udpLen), ProtoUDP, 64)
		b = append(b, s.AsSlice()...)
		b = append(b, d.AsSlice()...)
		udpAt = start + 40
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
	b = append(b, 0, 0)
	b = append(b, payload...)
	sum := ^vnet.Checksum(b[udpAt:], vnet.PseudoHeaderChecksum(ProtoUDP, s.AsSlice(), d.AsSlice(), udpLen))
	if sum == 0 {
		sum = 0xffff // RFC 768: zero means "no checksum"
	}
	binary.BigEndian.PutUint16(b[udpAt+6:], sum)
	return b, nil
}

// Info is what Parse reads from an IP packet.
type Info struct {
	Version  int
	Src, Dst netip.Addr
	Proto    uint8 // the next header after IPv6's fixed header, no extension walking
	Payload  []byte
	// SrcPort and DstPort are set for UDP and TCP.
	SrcPort, DstPort uint16
}

// Parse reads the addresses, protocol and ports of an IPv4 or IPv6
// packet. It checks lengths, not checksums; Payload aliases p.
func Parse(p []byte) (Info, error) {
	var in Info
	if len(p) < 1 {
		return in, errors.New("packet: empty")
	}
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0xf) * 4
		if len(p) < 20 || ihl < 20 || len(p) < ihl {
			return in, errors.New("packet: short IPv4 header")
		}
		total := int(binary.BigEndian.Uint16(p[2:]))
		if total < ihl || total > len(p) {
			return in, errors.New("packet: IPv4 total length disagrees with the packet")
		}
		in.Version, in.Proto, in.Payload = 4, p[9], p[ihl:total]
		in.Src, in.Dst = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	case 6:
		if len(p) < 40 {
			return in, errors.New("packet: short IPv6 header")
		}
		plen := int(binary.BigEndian.Uint16(p[4:]))
		if 40+plen > len(p) {
			return in, errors.New("packet: IPv6 payload length past the packet")
		}
		in.Version, in.Proto, in.Payload = 6, p[6], p[40:40+plen]
		in.Src, in.Dst = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
	default:
		return in, errors.New("packet: not IPv4 or IPv6")
	}
	if (in.Proto == ProtoUDP || in.Proto == ProtoTCP) && len(in.Payload) >= 4 {
		in.SrcPort = binary.BigEndian.Uint16(in.Payload)
		in.DstPort = binary.BigEndian.Uint16(in.Payload[2:])
	}
	return in, nil
}

// UDPPayload returns the data of a UDP packet, or an error.
func UDPPayload(p []byte) ([]byte, error) {
	in, err := Parse(p)
	if err != nil {
		return nil, err
	}
	if in.Proto != ProtoUDP || len(in.Payload) < 8 {
		return nil, errors.New("packet: not a UDP datagram")
	}
	n := int(binary.BigEndian.Uint16(in.Payload[4:]))
	if n < 8 || n > len(in.Payload) {
		return nil, errors.New("packet: UDP length disagrees with the packet")
	}
	return in.Payload[8:n], nil
}

// TCP flags.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// TCP builds an IPv4 or IPv6 packet carrying a TCP segment (a 20-byte
// header, no options) with every checksum correct.
func TCP(src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte) ([]byte, error) {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() != d.Is4() || !s.IsValid() || !d.IsValid() {
		return nil, errors.New("packet: source and destination must be valid addresses of one family")
	}
	tcpLen := 20 + len(payload)
	var b []byte
	if s.Is4() {
		total := 20 + tcpLen
		if total > 0xffff {
			return nil, errors.New("packet: segment too long for IPv4")
		}
		b = append(b, 0x45, 0, byte(total>>8), byte(total), 0, 1, 0x40, 0, 64, ProtoTCP, 0, 0)
		b = append(b, s.AsSlice()...)
		b = append(b, d.AsSlice()...)
		binary.BigEndian.PutUint16(b[10:], ^vnet.Checksum(b[:20], 0))
	} else {
		if tcpLen > 0xffff {
			return nil, errors.New("packet: segment too long")
		}
		b = append(b, 0x60, 0, 0, 0, byte(tcpLen>>8), byte(tcpLen), ProtoTCP, 64)
		b = append(b, s.AsSlice()...)
		b = append(b, d.AsSlice()...)
	}
	at := len(b)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, ack)
	b = append(b, 5<<4, flags, 0xff, 0xff, 0, 0, 0, 0) // offset, flags, window, checksum, urgent
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[at+16:], ^vnet.Checksum(b[at:], vnet.PseudoHeaderChecksum(ProtoTCP, s.AsSlice(), d.AsSlice(), tcpLen)))
	return b, nil
}
