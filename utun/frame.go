package utun

import (
	"encoding/binary"
	"fmt"

	"github.com/tundra-go/tundra/loop"
)

// HeaderLen is the length of the header in front of every packet read from
// or written to a utun descriptor: the packet's address family as a 32-bit
// integer in network byte order (bsd/net/if_utun.c: "The userland ABI
// requires the first four bytes have the protocol family in network byte
// order").
const HeaderLen = 4

// Framer adds and strips utun's 4-byte address-family header for a
// loop.PacketFD: pass Framer{} as loop.PacketConfig.Framer. On send the
// loop asks PutHeader for the header, chosen from the packet's IP version,
// and writes it from its own iovec (Send) or into the headroom in front of
// the packet (SendBatch); on receive it reads the header into its own
// buffer or leaves it in the headroom and hands over the packet alone. The
// packet itself is never copied.
//
// Framer has no state: the zero value is ready, and it is safe from any
// goroutine.
type Framer struct{}

var _ loop.Framer = Framer{}

// HeaderLen returns HeaderLen.
func (Framer) HeaderLen() int { return HeaderLen }

// PutHeader writes the address-family header for packet into hdr; see
// PutFamilyHeader. It allocates nothing unless it fails.
func (Framer) PutHeader(hdr, packet []byte) error { return PutFamilyHeader(hdr, packet) }

// FamilyOf returns the Darwin address family of an IP packet, AFInet or
// AFInet6, judged by the version nibble of its first byte as the kernel
// does (utun_demux reads ip_v). Any other packet, including an empty one,
// gives an *OpError wrapping ErrNotIP. Pure, safe from any goroutine; it
// keeps no reference to packet.
func FamilyOf(packet []byte) (uint32, error) {
	if len(packet) == 0 {
		return 0, &OpError{Op: "frame", Err: fmt.Errorf("%w: empty packet", ErrNotIP)}
	}
	switch packet[0] >> 4 {
	case 4:
		return AFInet, nil
	case 6:
		return AFInet6, nil
	}
	return 0, &OpError{Op: "frame", Err: fmt.Errorf("%w: IP version nibble is %d (first byte 0x%02x)", ErrNotIP, packet[0]>>4, packet[0])}
}

// PutFamilyHeader writes the utun header for packet into hdr[0:4]: the
// family FamilyOf(packet) in network byte order, so 00 00 00 02 for IPv4
// and 00 00 00 1e for IPv6. packet needs only its first byte. It fails with
// an *OpError if hdr is shorter than HeaderLen or packet is not IPv4 or
// IPv6 (wrapping ErrNotIP), and then leaves hdr unchanged. It writes only
// hdr[0:4], keeps no reference to either slice, and is safe from any
// goroutine that owns hdr.
//
// This is the header Darwin wants on a utun descriptor, not the Linux TUN
// packet-information header (flags and an EtherType), which a utun device
// would misread.
func PutFamilyHeader(hdr, packet []byte) error {
	if len(hdr) < HeaderLen {
		return &OpError{Op: "frame", Err: fmt.Errorf("%w: header buffer has %d bytes, need %d", ErrInvalidArgument, len(hdr), HeaderLen)}
	}
	fam, err := FamilyOf(packet)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(hdr, fam)
	return nil
}

// ParseFamilyHeader decodes the utun header at the start of b, usually the
// first bytes of what a read from the descriptor returned, and returns the
// family: AFInet or AFInet6. A shorter b, or any other family, gives an
// *OpError (the latter wrapping ErrNotIP) and 0. It only reads b and is safe
// from any goroutine.
func ParseFamilyHeader(b []byte) (uint32, error) {
	if len(b) < HeaderLen {
		return 0, &OpError{Op: "parse family header", Err: fmt.Errorf("%w: have %d bytes, need %d", ErrInvalidArgument, len(b), HeaderLen)}
	}
	switch fam := binary.BigEndian.Uint32(b); fam {
	case AFInet, AFInet6:
		return fam, nil
	default:
		return 0, &OpError{Op: "parse family header", Err: fmt.Errorf("%w: family %d (bytes % x), want %d (AF_INET) or %d (AF_INET6)", ErrNotIP, fam, b[:HeaderLen], AFInet, AFInet6)}
	}
}
