package tun

import (
	"encoding/binary"
	"fmt"
)

// PIHeaderLen is the size of struct tun_pi, the packet-information header
// that precedes every packet on a device opened without IFF_NO_PI
// (Config.PacketInfo).
const PIHeaderLen = 4

// PIFlagTruncated is TUN_PKT_STRIP: the kernel sets it in PIHeader.Flags
// when the read buffer was shorter than the packet and the tail was cut off
// (and dropped: the rest cannot be read later).
const PIFlagTruncated = 0x0001

// EtherTypes that PIHeader.Proto carries for IP packets on a TUN device.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86DD
)

// PIHeader is struct tun_pi decoded into host values.
//
// On the wire the kernel lays it out as { __u16 flags; __be16 proto; }: Proto
// is an EtherType in network (big-endian) byte order, while Flags is a
// plain __u16 in the host's own byte order. Some old tools (tunctl among
// them) byte-swapped proto the wrong way; this package does not. PIHeader is
// a plain value: safe to copy and use from any goroutine.
type PIHeader struct {
	Flags uint16 // TUN_PKT_STRIP (PIFlagTruncated) or 0
	Proto uint16 // EtherType in host order, e.g. 0x86DD for IPv6
}

// PutPIHeader encodes h into b[0:4]: Flags in host byte order, Proto in
// network byte order. b must have len(b) >= PIHeaderLen; like
// binary.BigEndian.PutUint16 it panics otherwise, because a short buffer is
// a programming error, not a runtime condition. It writes only b[0:4] and
// keeps no reference to b; safe from any goroutine that owns b.
func PutPIHeader(b []byte, h PIHeader) {
	_ = b[3] // one bounds check, and the panic names index 3
	binary.NativeEndian.PutUint16(b[0:2], h.Flags)
	binary.BigEndian.PutUint16(b[2:4], h.Proto)
}

// ParsePIHeader decodes the PI header at the start of b, which is usually
// what Queue.Read returned from a device opened with Config.PacketInfo. It
// returns an *OpError if b is shorter than PIHeaderLen. It only reads b and
// keeps no reference to it; safe from any goroutine.
func ParsePIHeader(b []byte) (PIHeader, error) {
	if len(b) < PIHeaderLen {
		return PIHeader{}, &OpError{Op: "parse PI header", Err: fmt.Errorf("have %d bytes, need %d", len(b), PIHeaderLen)}
	}
	return PIHeader{
		Flags: binary.NativeEndian.Uint16(b[0:2]),
		Proto: binary.BigEndian.Uint16(b[2:4]),
	}, nil
}

// IPVersion returns the IP version in the high nibble of the packet's first
// byte if it is 4 or 6, and 0 for an empty packet or any other version. It
// looks at nothing else: a truncated header still reports its version.
// Pure, safe from any goroutine; it keeps no reference to packet.
func IPVersion(packet []byte) int {
	if len(packet) == 0 {
		return 0
	}
	switch v := packet[0] >> 4; v {
	case 4, 6:
		return int(v)
	}
	return 0
}

// EtherTypeOf returns the EtherType of an IP packet, 0x0800 for IPv4 and
// 0x86DD for IPv6, judged by the version nibble as the kernel does for a TUN
// device without the PI header. Any other packet gives an *OpError naming
// the nibble it found. Pure, safe from any goroutine; it keeps no reference
// to packet.
func EtherTypeOf(packet []byte) (uint16, error) {
	switch IPVersion(packet) {
	case 4:
		return EtherTypeIPv4, nil
	case 6:
		return EtherTypeIPv6, nil
	}
	if len(packet) == 0 {
		return 0, &OpError{Op: "EtherTypeOf", Err: fmt.Errorf("empty packet has no IP version")}
	}
	return 0, &OpError{Op: "EtherTypeOf", Err: fmt.Errorf("IP version nibble is %d (first byte 0x%02x), want 4 or 6", packet[0]>>4, packet[0])}
}

// PIHeaderFor returns the header to put in front of an IP packet written to
// a TUN device opened with Config.PacketInfo: Flags 0 and the packet's
// EtherType. The kernel uses Proto to hand the packet to the right protocol
// (a TAP device ignores it and reads the Ethernet header instead). Pure,
// safe from any goroutine; it keeps no reference to packet.
func PIHeaderFor(packet []byte) (PIHeader, error) {
	et, err := EtherTypeOf(packet)
	if err != nil {
		return PIHeader{}, err
	}
	return PIHeader{Proto: et}, nil
}

// PIFramer adds the PI header to packets written to a device opened with
// Config.PacketInfo, as the event loop's framer (loop.Framer): the proto
// field comes from the packet itself. For a TUN device it is the EtherType
// of the IP version in the packet's first nibble; for a TAP device (TAP
// set) it is the EtherType in the frame's Ethernet header. It holds no
// state and is safe from any goroutine.
type PIFramer struct {
	TAP bool
}

// HeaderLen is PIHeaderLen.
func (PIFramer) HeaderLen() int { return PIHeaderLen }

// PutHeader writes the PI header for packet into hdr (PIHeaderLen bytes).
// It fails for a TUN packet that is neither IPv4 nor IPv6, and for a TAP
// frame shorter than an Ethernet header.
func (f PIFramer) PutHeader(hdr, packet []byte) error {
	if f.TAP {
		if len(packet) < 14 {
			return fmt.Errorf("tun: %d-byte frame is shorter than an Ethernet header", len(packet))
		}
		PutPIHeader(hdr, PIHeader{Proto: uint16(packet[12])<<8 | uint16(packet[13])})
		return nil
	}
	h, err := PIHeaderFor(packet)
	if err != nil {
		return err
	}
	PutPIHeader(hdr, h)
	return nil
}
