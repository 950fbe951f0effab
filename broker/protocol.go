package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// The wire format, specified in PROTOCOL.md. Everything here is pure: no
// I/O, no allocation sized by an unchecked length.

const (
	// ProtocolVersion is the version this package speaks, in every frame
	// header it writes.
	ProtocolVersion = 1

	// MaxFrameSize caps a frame, header included. Nothing larger is ever
	// read or written; a header announcing more is refused before a byte
	// of the body is read.
	MaxFrameSize = 1024

	// MaxMessageLen caps the human-readable error text of a response, in
	// bytes. The server cuts longer text at a UTF-8 boundary.
	MaxMessageLen = 512

	headerLen  = 12
	maxBodyLen = MaxFrameSize - headerLen
	attrHdrLen = 4
)

// magic opens every frame.
var magic = [4]byte{'T', 'N', 'D', 'R'}

// Frame types (header byte 5).
const (
	typeCreateRequest  = 1
	typeCreateResponse = 2
)

// Request attributes.
const (
	attrReqAddress = 1 // IPv4 (4) or IPv6 (16) address bytes + 1 prefix-length byte
	attrReqPeer    = 2 // 4 or 16 address bytes, same family as the address
	attrReqMTU     = 3 // u32
	attrReqName    = 4 // 1..15 bytes
	attrReqFlags   = 5 // u32: reqFlag* bits
	attrReqQueues  = 6 // u16
)

// Request flag bits (attrReqFlags).
const (
	reqFlagTAP        = 1 << 0
	reqFlagPacketInfo = 1 << 1
	reqFlagExclusive  = 1 << 2
	reqFlagsKnown     = reqFlagTAP | reqFlagPacketInfo | reqFlagExclusive
)

// Response attributes.
const (
	attrRespStatus  = 1 // u16
	attrRespMessage = 2 // UTF-8, at most MaxMessageLen bytes
	attrRespErrno   = 3 // u32, nonzero
	attrRespName    = 4 // 1..15 bytes
	attrRespIndex   = 5 // u32, nonzero
	attrRespFds     = 6 // u16: descriptors attached to the frame
)

// Decoding failures. Every decode error wraps errMalformed, and, for
// headers, errVersion or errTooLarge when that is what is wrong, so the
// server can pick the status.
var (
	errMalformed = errors.New("malformed frame")
	errVersion   = errors.New("unsupported protocol version")
	errTooLarge  = errors.New("frame larger than the cap")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// header is a decoded frame header.
type header struct {
	Version uint8
	Type    uint8
	BodyLen int // checked against maxBodyLen
}

// parseHeader decodes the first headerLen bytes of a frame. It checks the
// magic, the reserved bytes, and the body length against the cap; a
// version other than ProtocolVersion is reported (wrapping errVersion)
// together with the decoded header, so the caller can still answer.
func parseHeader(b []byte) (header, error) {
	if len(b) < headerLen {
		return header{}, malformed("header is %d bytes, want %d", len(b), headerLen)
	}
	if [4]byte(b[0:4]) != magic {
		return header{}, malformed("bad magic % x (want %q)", b[0:4], magic[:])
	}
	h := header{Version: b[4], Type: b[5]}
	if r := binary.BigEndian.Uint16(b[6:8]); r != 0 {
		return header{}, malformed("reserved header bytes are 0x%04x, want 0", r)
	}
	n := binary.BigEndian.Uint32(b[8:12])
	if n > maxBodyLen {
		return header{}, fmt.Errorf("%w: %w: body length %d exceeds the cap of %d bytes", errMalformed, errTooLarge, n, maxBodyLen)
	}
	h.BodyLen = int(n)
	if h.Version != ProtocolVersion {
		return h, fmt.Errorf("%w: %w: version %d (this side speaks %d)", errMalformed, errVersion, h.Version, ProtocolVersion)
	}
	return h, nil
}

// encoder builds a frame. Attributes must be added in increasing type
// order, as decoders require.
type encoder struct {
	b   []byte
	err error
}

func newEncoder(typ uint8) *encoder {
	e := &encoder{b: make([]byte, headerLen, 128)}
	copy(e.b, magic[:])
	e.b[4] = ProtocolVersion
	e.b[5] = typ
	return e
}

func (e *encoder) attr(typ uint16, v []byte) {
	if len(v) > 0xffff {
		e.err = fmt.Errorf("attribute %d is %d bytes", typ, len(v))
		return
	}
	e.b = binary.BigEndian.AppendUint16(e.b, typ)
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) u16(typ uint16, v uint16) { e.attr(typ, binary.BigEndian.AppendUint16(nil, v)) }
func (e *encoder) u32(typ uint16, v uint32) { e.attr(typ, binary.BigEndian.AppendUint32(nil, v)) }

func (e *encoder) finish() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	if len(e.b) > MaxFrameSize {
		return nil, fmt.Errorf("frame is %d bytes, the cap is %d", len(e.b), MaxFrameSize)
	}
	binary.BigEndian.PutUint32(e.b[8:12], uint32(len(e.b)-headerLen))
	return e.b, nil
}

// attrs walks the attributes of a body. It enforces the framing: every
// attribute fits, types strictly increase (so none repeats), and the body
// is consumed exactly.
type attrs struct {
	b    []byte
	last uint16
}

// next returns the next attribute, ok=false at the end of the body, or an
// error.
func (a *attrs) next() (typ uint16, v []byte, ok bool, err error) {
	if len(a.b) == 0 {
		return 0, nil, false, nil
	}
	if len(a.b) < attrHdrLen {
		return 0, nil, false, malformed("%d stray bytes after the last attribute", len(a.b))
	}
	typ = binary.BigEndian.Uint16(a.b[0:2])
	n := int(binary.BigEndian.Uint16(a.b[2:4]))
	if n > len(a.b)-attrHdrLen {
		return 0, nil, false, malformed("attribute %d claims %d bytes, %d remain", typ, n, len(a.b)-attrHdrLen)
	}
	if typ == 0 {
		// Types start at 1; without this check a leading type 0 would be
		// reported as following a previous "attribute 0" that was never
		// sent (a.last starts at 0).
		return 0, nil, false, malformed("attribute type 0 is not defined (types start at 1)")
	}
	if typ <= a.last {
		return 0, nil, false, malformed("attribute %d follows attribute %d (types must strictly increase)", typ, a.last)
	}
	a.last = typ
	v = a.b[attrHdrLen : attrHdrLen+n]
	a.b = a.b[attrHdrLen+n:]
	return typ, v, true, nil
}

// body checks a whole frame's header and type and returns its body.
func frameBody(frame []byte, wantType uint8) ([]byte, error) {
	h, err := parseHeader(frame)
	if err != nil {
		return nil, err
	}
	if h.Type != wantType {
		return nil, malformed("frame type %d, want %d", h.Type, wantType)
	}
	if len(frame)-headerLen != h.BodyLen {
		return nil, malformed("header announces a %d-byte body, frame carries %d", h.BodyLen, len(frame)-headerLen)
	}
	return frame[headerLen:], nil
}

func wantLen(typ uint16, v []byte, n int) error {
	if len(v) != n {
		return malformed("attribute %d is %d bytes, want %d", typ, len(v), n)
	}
	return nil
}

// marshalRequest encodes r as a create-request frame. It checks only what
// the format needs (an address, a peer of the same family, values that
// fit their fields); Request.Validate checks the rest.
func marshalRequest(r Request) ([]byte, error) {
	if !r.Addr.IsValid() {
		return nil, fmt.Errorf("address: missing or invalid (%v)", r.Addr)
	}
	a := r.Addr.Addr()
	if a.Is4In6() || a.Zone() != "" {
		return nil, fmt.Errorf("address: %v has no wire form (IPv4-mapped or zoned)", a)
	}
	if r.Peer.IsValid() && (r.Peer.Is4() != a.Is4() || r.Peer.Zone() != "" || r.Peer.Is4In6()) {
		return nil, fmt.Errorf("peer: %v has no wire form (IPv4-mapped, zoned, or not of the family of %v)", r.Peer, a)
	}
	if r.MTU < 0 || r.MTU > MaxMTU {
		return nil, fmt.Errorf("mtu: %d is outside 0..%d", r.MTU, MaxMTU)
	}
	if len(r.Name) > MaxNameLen {
		return nil, fmt.Errorf("name: %d bytes, the limit is %d", len(r.Name), MaxNameLen)
	}
	if r.Queues < 0 || r.Queues > MaxQueues {
		return nil, fmt.Errorf("queues: %d is outside 0..%d", r.Queues, MaxQueues)
	}
	e := newEncoder(typeCreateRequest)
	e.attr(attrReqAddress, append(a.AsSlice(), byte(r.Addr.Bits())))
	if r.Peer.IsValid() {
		e.attr(attrReqPeer, r.Peer.AsSlice())
	}
	if r.MTU != 0 {
		e.u32(attrReqMTU, uint32(r.MTU))
	}
	if r.Name != "" {
		e.attr(attrReqName, []byte(r.Name))
	}
	var flags uint32
	if r.TAP {
		flags |= reqFlagTAP
	}
	if r.PacketInfo {
		flags |= reqFlagPacketInfo
	}
	if r.Exclusive {
		flags |= reqFlagExclusive
	}
	if flags != 0 {
		e.u32(attrReqFlags, flags)
	}
	if r.Queues > 1 {
		e.u16(attrReqQueues, uint16(r.Queues))
	}
	return e.finish()
}

// unmarshalRequest decodes a whole create-request frame. It never panics
// and accepts only the canonical encoding's structure (increasing
// attribute types, exact sizes, known flag bits); the values are then
// checked by Request.Validate. Errors wrap errMalformed.
func unmarshalRequest(frame []byte) (Request, error) {
	body, err := frameBody(frame, typeCreateRequest)
	if err != nil {
		return Request{}, err
	}
	var r Request
	it := attrs{b: body}
	for {
		typ, v, ok, err := it.next()
		if err != nil {
			return Request{}, err
		}
		if !ok {
			break
		}
		switch typ {
		case attrReqAddress:
			if len(v) != 5 && len(v) != 17 {
				return Request{}, malformed("address attribute is %d bytes, want 5 (IPv4) or 17 (IPv6)", len(v))
			}
			ip, _ := netip.AddrFromSlice(v[:len(v)-1])
			if ip.Is4In6() {
				return Request{}, malformed("address %v is IPv4-mapped; IPv4 travels as 4 bytes", ip)
			}
			bits := int(v[len(v)-1])
			if bits > ip.BitLen() {
				return Request{}, malformed("prefix length %d exceeds %d", bits, ip.BitLen())
			}
			r.Addr = netip.PrefixFrom(ip, bits)
		case attrReqPeer:
			if len(v) != 4 && len(v) != 16 {
				return Request{}, malformed("peer attribute is %d bytes, want 4 or 16", len(v))
			}
			r.Peer, _ = netip.AddrFromSlice(v)
			if r.Peer.Is4In6() {
				return Request{}, malformed("peer %v is IPv4-mapped; IPv4 travels as 4 bytes", r.Peer)
			}
		case attrReqMTU:
			if err := wantLen(typ, v, 4); err != nil {
				return Request{}, err
			}
			mtu := binary.BigEndian.Uint32(v)
			if mtu == 0 || mtu > MaxMTU {
				return Request{}, malformed("mtu %d is outside 1..%d (omit the attribute for the default)", mtu, MaxMTU)
			}
			r.MTU = int(mtu)
		case attrReqName:
			if len(v) == 0 || len(v) > MaxNameLen {
				return Request{}, malformed("name attribute is %d bytes, want 1..%d", len(v), MaxNameLen)
			}
			r.Name = string(v)
		case attrReqFlags:
			if err := wantLen(typ, v, 4); err != nil {
				return Request{}, err
			}
			f := binary.BigEndian.Uint32(v)
			if f&^reqFlagsKnown != 0 {
				return Request{}, malformed("unknown flag bits 0x%x", f&^reqFlagsKnown)
			}
			r.TAP = f&reqFlagTAP != 0
			r.PacketInfo = f&reqFlagPacketInfo != 0
			r.Exclusive = f&reqFlagExclusive != 0
		case attrReqQueues:
			if err := wantLen(typ, v, 2); err != nil {
				return Request{}, err
			}
			q := binary.BigEndian.Uint16(v)
			if q == 0 || q > MaxQueues {
				return Request{}, malformed("queues %d is outside 1..%d", q, MaxQueues)
			}
			r.Queues = int(q)
		default:
			return Request{}, malformed("unknown request attribute %d", typ)
		}
	}
	if !r.Addr.IsValid() {
		return Request{}, malformed("no address attribute")
	}
	if r.Peer.IsValid() && r.Peer.Is4() != r.Addr.Addr().Is4() {
		return Request{}, malformed("peer %v and address %v are of different families", r.Peer, r.Addr.Addr())
	}
	if r.Queues == 0 {
		r.Queues = 1
	}
	return r, nil
}

// response is a decoded create-response frame.
type response struct {
	Status  Status
	Message string
	Errno   uint32
	Name    string
	Index   int
	Fds     int // descriptors that travel with the frame
}

// marshalResponse encodes r. A message longer than MaxMessageLen, or not
// valid UTF-8, is repaired and cut rather than refused: the server must
// always be able to answer.
func marshalResponse(r response) ([]byte, error) {
	if len(r.Name) > MaxNameLen {
		return nil, fmt.Errorf("name: %d bytes, the limit is %d", len(r.Name), MaxNameLen)
	}
	if r.Index < 0 || int64(r.Index) > 0xffffffff {
		return nil, fmt.Errorf("index: %d does not fit 32 bits", r.Index)
	}
	if r.Fds < 0 || r.Fds > MaxQueues {
		return nil, fmt.Errorf("fds: %d is outside 0..%d", r.Fds, MaxQueues)
	}
	e := newEncoder(typeCreateResponse)
	e.u16(attrRespStatus, uint16(r.Status))
	if r.Message != "" {
		e.attr(attrRespMessage, []byte(cutMessage(r.Message)))
	}
	if r.Errno != 0 {
		e.u32(attrRespErrno, r.Errno)
	}
	if r.Name != "" {
		e.attr(attrRespName, []byte(r.Name))
	}
	if r.Index != 0 {
		e.u32(attrRespIndex, uint32(r.Index))
	}
	if r.Fds != 0 {
		e.u16(attrRespFds, uint16(r.Fds))
	}
	return e.finish()
}

// cutMessage makes s valid UTF-8 of at most MaxMessageLen bytes.
func cutMessage(s string) string {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // replaces invalid bytes with U+FFFD
	}
	if len(s) <= MaxMessageLen {
		return s
	}
	const ellipsis = "..."
	cut := MaxMessageLen - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// unmarshalResponse decodes a whole create-response frame. It never panics;
// errors wrap errMalformed.
func unmarshalResponse(frame []byte) (response, error) {
	body, err := frameBody(frame, typeCreateResponse)
	if err != nil {
		return response{}, err
	}
	var r response
	seenStatus := false
	it := attrs{b: body}
	for {
		typ, v, ok, err := it.next()
		if err != nil {
			return response{}, err
		}
		if !ok {
			break
		}
		switch typ {
		case attrRespStatus:
			if err := wantLen(typ, v, 2); err != nil {
				return response{}, err
			}
			r.Status = Status(binary.BigEndian.Uint16(v))
			seenStatus = true
		case attrRespMessage:
			if len(v) > MaxMessageLen || !utf8.Valid(v) {
				return response{}, malformed("message is %d bytes or not UTF-8 (cap %d)", len(v), MaxMessageLen)
			}
			r.Message = string(v)
		case attrRespErrno:
			if err := wantLen(typ, v, 4); err != nil {
				return response{}, err
			}
			r.Errno = binary.BigEndian.Uint32(v)
			if r.Errno == 0 {
				return response{}, malformed("errno attribute is 0")
			}
		case attrRespName:
			if len(v) == 0 || len(v) > MaxNameLen {
				return response{}, malformed("name attribute is %d bytes, want 1..%d", len(v), MaxNameLen)
			}
			r.Name = string(v)
		case attrRespIndex:
			if err := wantLen(typ, v, 4); err != nil {
				return response{}, err
			}
			idx := binary.BigEndian.Uint32(v)
			if idx == 0 || idx > 0x7fffffff {
				return response{}, malformed("index %d is outside 1..2147483647", idx)
			}
			r.Index = int(idx)
		case attrRespFds:
			if err := wantLen(typ, v, 2); err != nil {
				return response{}, err
			}
			n := binary.BigEndian.Uint16(v)
			if n == 0 || n > MaxQueues {
				return response{}, malformed("fd count %d is outside 1..%d", n, MaxQueues)
			}
			r.Fds = int(n)
		default:
			return response{}, malformed("unknown response attribute %d", typ)
		}
	}
	if !seenStatus {
		return response{}, malformed("no status attribute")
	}
	if r.Status == StatusOK && (r.Name == "" || r.Index == 0 || r.Fds == 0) {
		return response{}, malformed("success response without name, index or fd count")
	}
	if r.Status != StatusOK && r.Fds != 0 {
		return response{}, malformed("failure response announces %d descriptors", r.Fds)
	}
	return r, nil
}
