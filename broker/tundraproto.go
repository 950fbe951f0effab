package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// Tundra's client protocol: what the Elixir Tundra library's NIF sends to
// its C daemon, tundra_server, on the same default socket path. The server
// speaks it too, so that a Tundra application can use this server without
// a change (PROTOCOL.md, "Tundra's client protocol"). Everything here is
// pure: no I/O, safe from any goroutine.
//
// The messages are C structs sent as they lie in memory, so their layout is
// the C ABI's: native byte order, LP64 sizes (Linux amd64/arm64, macOS), and
// padding C does not promise to zero. The offsets are within the whole
// message.
const (
	// tundraRequestLen is sizeof(struct request_t): a 4-byte int type, 4
	// bytes of padding, then the 152-byte struct create_tun_request_t.
	tundraRequestLen = 160
	// tundraRequestSize is the request's size field: sizeof(struct
	// create_tun_request_t), a size_t (8 bytes) + 3 x 46 chars + 2 bytes
	// of padding + a 4-byte int.
	tundraRequestSize = 152
	// tundraResponseLen is sizeof(struct response_t): a 4-byte int type, 4
	// bytes of padding, an 8-byte size, a 16-byte name.
	tundraResponseLen = 32
	// tundraResponseSize is the response's size field: sizeof(struct
	// create_tun_response_t).
	tundraResponseSize = 24
	// tundraStrLen is INET6_ADDRSTRLEN, the size of each address field,
	// NUL included: the longest IPv6 text form is 45 characters.
	tundraStrLen = 46
	// tundraNameLen is IF_NAMESIZE, the size of the response's name field,
	// NUL included.
	tundraNameLen = 16

	tundraOffType    = 0   // int32; 0 = REQUEST_TYPE_CREATE_TUN
	tundraOffSize    = 8   // uint64 (size_t)
	tundraOffAddr    = 16  // char[46]
	tundraOffDstaddr = 62  // char[46]
	tundraOffNetmask = 108 // char[46], then 2 bytes of padding
	tundraOffMTU     = 156 // int32
	tundraOffName    = 16  // response: char[16]

	tundraTypeCreateTun = 0 // REQUEST_TYPE_CREATE_TUN
)

// tundraPacketInfo is whether a device made for a Tundra client keeps the
// 4-byte packet-information header. Tundra's own server opens Linux devices
// with IFF_TUN alone (no IFF_NO_PI), and its library strips and prepends
// that 4-byte header on every packet (Tundra 0.4.0 and later), so the
// header is part of what its clients expect. A macOS utun device carries
// its own 4-byte family header instead, which the library handles there;
// the Linux PI option does not exist on macOS.
const tundraPacketInfo = runtime.GOOS == "linux"

// protoTundra tags the audit record of a connection that spoke Tundra's
// protocol.
const protoTundra = "tundra"

// errTundra is wrapped by every error of decodeTundraRequest.
var errTundra = errors.New("invalid Tundra request")

func tundraInvalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errTundra, fmt.Sprintf(format, args...))
}

// isTundraStart reports whether b, the first bytes a client sent (at least
// one), can only be the start of a Tundra request: its first field is the
// int32 request type, and the only type, CREATE_TUN, is 0, so its first
// four bytes are zero in any byte order. Our frames start with "TNDR", so
// a zero byte anywhere there settles it. Whether it really is a Tundra
// request is then decided by the size field (decodeTundraSize).
func isTundraStart(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b[:min(len(b), 4)] {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeTundraSize checks the first 16 bytes of a Tundra request: type
// CREATE_TUN and size 152. The padding after the type is ignored: C does
// not promise to zero it.
func decodeTundraSize(b []byte) error {
	if len(b) < tundraOffSize+8 {
		return tundraInvalid("%d bytes, want at least %d", len(b), tundraOffSize+8)
	}
	if t := int32(binary.NativeEndian.Uint32(b[tundraOffType:])); t != tundraTypeCreateTun {
		return tundraInvalid("type %d, want %d (CREATE_TUN)", t, tundraTypeCreateTun)
	}
	if n := binary.NativeEndian.Uint64(b[tundraOffSize:]); n != tundraRequestSize {
		return tundraInvalid("size field %d at offset %d, want %d (an LP64 struct create_tun_request_t)", n, tundraOffSize, tundraRequestSize)
	}
	return nil
}

// decodeTundraRequest decodes a whole Tundra request, exactly
// tundraRequestLen bytes, into the Request it stands for, so that it meets
// the same validation, policy and quota as ours:
//
//   - addr is the device's address, IPv6 in practice, IPv4 accepted;
//   - netmask is an address-form mask of addr's family with contiguous
//     ones ("ffff:ffff:ffff:ffff::" is /64); it is required, as it is for
//     Tundra's own server;
//   - dstaddr, if not empty, is the point-to-point peer, of addr's family;
//     the unspecified address ("::", "0.0.0.0") means none, as it does for
//     Tundra's server;
//   - mtu 0 keeps the kernel's default; a negative one is refused;
//   - the rest is the server's defaults: a TUN device whose name the
//     kernel chooses (tunN, utunN on macOS), one queue, not persistent, and
//     the packet-information header on Linux (tundraPacketInfo).
//
// Each string must end with a NUL within its 46 bytes and hold only
// printable ASCII before it. What follows the NUL is ignored, as C ignores
// it, and so is the padding. The error, wrapping errTundra, names the field.
// Request.Validate is left to the caller.
func decodeTundraRequest(b []byte) (Request, error) {
	if len(b) != tundraRequestLen {
		return Request{}, tundraInvalid("%d bytes, want %d", len(b), tundraRequestLen)
	}
	if err := decodeTundraSize(b); err != nil {
		return Request{}, err
	}
	addrS, err := tundraString("addr", b[tundraOffAddr:tundraOffAddr+tundraStrLen])
	if err != nil {
		return Request{}, err
	}
	dstS, err := tundraString("dstaddr", b[tundraOffDstaddr:tundraOffDstaddr+tundraStrLen])
	if err != nil {
		return Request{}, err
	}
	maskS, err := tundraString("netmask", b[tundraOffNetmask:tundraOffNetmask+tundraStrLen])
	if err != nil {
		return Request{}, err
	}
	mtu := int32(binary.NativeEndian.Uint32(b[tundraOffMTU:]))

	addr, err := tundraAddr("addr", addrS)
	if err != nil {
		return Request{}, err
	}
	if maskS == "" {
		return Request{}, tundraInvalid("netmask: empty; Tundra's address needs a netmask such as ffff:ffff:ffff:ffff::")
	}
	mask, err := tundraAddr("netmask", maskS)
	if err != nil {
		return Request{}, err
	}
	if mask.Is4() != addr.Is4() {
		return Request{}, tundraInvalid("netmask: %v and addr %v are of different families", mask, addr)
	}
	bits, ok := maskBits(mask)
	if !ok {
		return Request{}, tundraInvalid("netmask: %v is not contiguous (ones, then zeros)", mask)
	}
	r := Request{
		Addr:       netip.PrefixFrom(addr, bits),
		PacketInfo: tundraPacketInfo,
	}
	if dstS != "" {
		dst, err := tundraAddr("dstaddr", dstS)
		if err != nil {
			return Request{}, err
		}
		if dst.Is4() != addr.Is4() {
			return Request{}, tundraInvalid("dstaddr: %v and addr %v are of different families", dst, addr)
		}
		if !dst.IsUnspecified() {
			r.Peer = dst
		}
	}
	if mtu < 0 {
		return Request{}, tundraInvalid("mtu: %d is negative", mtu)
	}
	r.MTU = int(mtu)
	return r, nil
}

// tundraString returns the C string in field: the bytes before the first
// NUL, which must exist and be preceded by printable ASCII only.
func tundraString(name string, field []byte) (string, error) {
	end := bytes.IndexByte(field, 0)
	if end < 0 {
		return "", tundraInvalid("%s: no NUL within its %d bytes", name, len(field))
	}
	for i, c := range field[:end] {
		if c <= ' ' || c >= 0x7f {
			return "", tundraInvalid("%s: byte %d is 0x%02x, not printable ASCII (%+q)", name, i, c, field[:end])
		}
	}
	return string(field[:end]), nil
}

// tundraAddr parses s as an IPv4 or IPv6 address without a zone.
func tundraAddr(name, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, tundraInvalid("%s: empty", name)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, tundraInvalid("%s: %q is not an IPv4 or IPv6 address", name, s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, tundraInvalid("%s: %v has a zone", name, a)
	}
	return a, nil
}

// maskBits returns the prefix length of an address-form netmask, and
// false when its ones are not contiguous from the left.
func maskBits(m netip.Addr) (int, bool) {
	b := m.AsSlice()
	bits := 0
	for bits < 8*len(b) && b[bits/8]&(0x80>>(bits%8)) != 0 {
		bits++
	}
	for i := bits; i < 8*len(b); i++ {
		if b[i/8]&(0x80>>(i%8)) != 0 {
			return 0, false
		}
	}
	return bits, true
}

// encodeTundraResponse builds the 32-byte response that announces the
// device name; the device's descriptor travels with it in SCM_RIGHTS. The
// padding is zero; the name is NUL-terminated and 1..15 bytes long.
func encodeTundraResponse(name string) ([tundraResponseLen]byte, error) {
	var b [tundraResponseLen]byte
	if name == "" || len(name) >= tundraNameLen || bytes.IndexByte([]byte(name), 0) >= 0 {
		return b, fmt.Errorf("device name %q does not fit Tundra's %d-byte name field", name, tundraNameLen)
	}
	binary.NativeEndian.PutUint32(b[tundraOffType:], tundraTypeCreateTun)
	binary.NativeEndian.PutUint64(b[tundraOffSize:], tundraResponseSize)
	copy(b[tundraOffName:], name)
	return b, nil
}
