package nl

import (
	"encoding/binary"
	"fmt"
)

// Netlink is host-endian: the kernel reads and writes its own byte order.
var nativeEndian = binary.NativeEndian

// header is struct nlmsghdr.
type header struct {
	Len   uint32 // nlmsg_len: header plus payload, without trailing padding
	Type  uint16 // nlmsg_type
	Flags uint16 // nlmsg_flags
	Seq   uint32 // nlmsg_seq
	Pid   uint32 // nlmsg_pid: port id of the destination (replies) or sender
}

// message is one netlink message: its header and its payload, the bytes
// from the end of the header to nlmsg_len (padding excluded).
type message struct {
	Header header
	Data   []byte
}

func nlmsgAlign(n int) int { return (n + nlmsgAlignTo - 1) &^ (nlmsgAlignTo - 1) }
func nlaAlign(n int) int   { return (n + nlaAlignTo - 1) &^ (nlaAlignTo - 1) }

// marshalMessage encodes one message with nlmsg_len computed from payload,
// padded to NLMSG_ALIGNTO so that messages can be concatenated.
func marshalMessage(h header, payload []byte) []byte {
	n := nlmsgHdrLen + len(payload)
	b := make([]byte, nlmsgAlign(n))
	nativeEndian.PutUint32(b[0:4], uint32(n))
	nativeEndian.PutUint16(b[4:6], h.Type)
	nativeEndian.PutUint16(b[6:8], h.Flags)
	nativeEndian.PutUint32(b[8:12], h.Seq)
	nativeEndian.PutUint32(b[12:16], h.Pid)
	copy(b[nlmsgHdrLen:], payload)
	return b
}

func unmarshalHeader(b []byte) header {
	return header{
		Len:   nativeEndian.Uint32(b[0:4]),
		Type:  nativeEndian.Uint16(b[4:6]),
		Flags: nativeEndian.Uint16(b[6:8]),
		Seq:   nativeEndian.Uint32(b[8:12]),
		Pid:   nativeEndian.Uint32(b[12:16]),
	}
}

// parseMessages splits one received datagram into its messages. It never
// reads past b and fails on anything that does not fit exactly: a header cut
// short, an nlmsg_len smaller than the header or larger than what is left.
// The payloads alias b.
func parseMessages(b []byte) ([]message, error) {
	var msgs []message
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < nlmsgHdrLen {
			return nil, malformed("message at byte %d: %d bytes left, a header needs %d", off, len(rest), nlmsgHdrLen)
		}
		h := unmarshalHeader(rest)
		if h.Len < nlmsgHdrLen {
			return nil, malformed("message at byte %d: nlmsg_len %d is shorter than the header", off, h.Len)
		}
		if uint64(h.Len) > uint64(len(rest)) {
			return nil, malformed("message at byte %d: nlmsg_len %d runs past the %d bytes left", off, h.Len, len(rest))
		}
		msgs = append(msgs, message{Header: h, Data: rest[nlmsgHdrLen:h.Len:h.Len]})
		// The last message of a datagram may lack its padding.
		off += min(nlmsgAlign(int(h.Len)), len(rest))
	}
	return msgs, nil
}

// attr is one netlink attribute (struct nlattr and its value). Type keeps
// the NLA_F_NESTED and NLA_F_NET_BYTEORDER bits; use kind to compare.
type attr struct {
	Type uint16
	Data []byte
}

// kind is the attribute type without its flag bits.
func (a attr) kind() uint16 { return a.Type & nlaTypeMask }

// parseAttrs decodes a run of attributes, such as the tail of a message after
// its fixed header or the value of a nested attribute. Like parseMessages it
// is strict: a short header, an nla_len below 4 or past the end, or stray
// bytes after the last attribute are errors. The values alias b.
func parseAttrs(b []byte) ([]attr, error) {
	var attrs []attr
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < nlaHdrLen {
			return nil, malformed("attribute at byte %d: %d bytes left, a header needs %d", off, len(rest), nlaHdrLen)
		}
		l := int(nativeEndian.Uint16(rest[0:2]))
		if l < nlaHdrLen {
			return nil, malformed("attribute at byte %d: nla_len %d is shorter than its header", off, l)
		}
		if l > len(rest) {
			return nil, malformed("attribute at byte %d: nla_len %d runs past the %d bytes left", off, l, len(rest))
		}
		attrs = append(attrs, attr{Type: nativeEndian.Uint16(rest[2:4]), Data: rest[nlaHdrLen:l:l]})
		off += min(nlaAlign(l), len(rest))
	}
	return attrs, nil
}

// attrU32 decodes a u32 attribute value, which must be exactly 4 bytes.
func attrU32(a attr) (uint32, error) {
	if len(a.Data) != 4 {
		return 0, malformed("attribute %d: %d bytes, want 4 for a u32", a.kind(), len(a.Data))
	}
	return nativeEndian.Uint32(a.Data), nil
}

// attrU8 decodes a u8 attribute value.
func attrU8(a attr) (uint8, error) {
	if len(a.Data) != 1 {
		return 0, malformed("attribute %d: %d bytes, want 1 for a u8", a.kind(), len(a.Data))
	}
	return a.Data[0], nil
}

// attrString decodes a NUL-terminated string attribute. The kernel always
// terminates strings, but the NUL is not trusted to be there: the value
// ends at the first NUL or at the end of the attribute.
func attrString(a attr) string {
	for i, c := range a.Data {
		if c == 0 {
			return string(a.Data[:i])
		}
	}
	return string(a.Data)
}

// encoder appends netlink attributes, each aligned to NLA_ALIGNTO, after a
// fixed-size family header.
type encoder struct {
	b []byte
}

// bytes appends an attribute with a raw value.
func (e *encoder) bytes(typ uint16, v []byte) {
	l := nlaHdrLen + len(v)
	if l > 0xffff {
		// nla_len is 16 bits. No request of this package comes near;
		// reaching this is a programming error, not a runtime condition.
		panic(fmt.Sprintf("nl: attribute %d of %d bytes does not fit nla_len", typ, len(v)))
	}
	start := len(e.b)
	e.b = append(e.b, make([]byte, nlaAlign(l))...)
	nativeEndian.PutUint16(e.b[start:], uint16(l))
	nativeEndian.PutUint16(e.b[start+2:], typ)
	copy(e.b[start+nlaHdrLen:], v)
}

func (e *encoder) u32(typ uint16, v uint32) {
	var b [4]byte
	nativeEndian.PutUint32(b[:], v)
	e.bytes(typ, b[:])
}

// str appends a string attribute with its terminating NUL, which the kernel
// requires for NLA_STRING/NLA_NUL_STRING values such as IFLA_IFNAME.
func (e *encoder) str(typ uint16, s string) {
	v := make([]byte, len(s)+1)
	copy(v, s)
	e.bytes(typ, v)
}

// nested appends an attribute whose value is the attributes fn appends;
// NLA_F_NESTED is set, as the kernel's strict validation expects.
func (e *encoder) nested(typ uint16, fn func(*encoder)) {
	start := len(e.b)
	e.b = append(e.b, make([]byte, nlaHdrLen)...)
	fn(e)
	l := len(e.b) - start
	if l > 0xffff {
		panic(fmt.Sprintf("nl: nested attribute %d of %d bytes does not fit nla_len", typ, l))
	}
	nativeEndian.PutUint16(e.b[start:], uint16(l))
	nativeEndian.PutUint16(e.b[start+2:], typ|nlaFNested)
}
