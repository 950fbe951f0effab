package vnet

import "encoding/binary"

// HeaderLen is the length of struct virtio_net_hdr, the header a TUN device
// opened with IFF_VNET_HDR puts in front of every packet (without the
// num_buffers field of virtio_net_hdr_mrg_rxbuf: TUN uses 10 bytes unless
// TUNSETVNETHDRSZ sets more).
const HeaderLen = 10

// Header flags (include/uapi/linux/virtio_net.h, VIRTIO_NET_HDR_F_*).
const (
	// FlagNeedsCsum: the transport checksum is incomplete. The checksum
	// field at CsumStart+CsumOffset holds the sum of the pseudo-header,
	// and the receiver completes it over the bytes from CsumStart to the
	// end (the kernel's CHECKSUM_PARTIAL).
	FlagNeedsCsum uint8 = 1
	// FlagDataValid: the checksum was verified (CHECKSUM_UNNECESSARY).
	// TUN does not set it on packets it hands out; it is carried through.
	FlagDataValid uint8 = 2
)

// GSO types (VIRTIO_NET_HDR_GSO_*).
const (
	GSONone  uint8 = 0    // a single packet
	GSOTCPv4 uint8 = 1    // TCP over IPv4 (TSO)
	GSOUDP   uint8 = 3    // UDP fragmentation offload (UFO): not supported, see Split
	GSOTCPv6 uint8 = 4    // TCP over IPv6
	GSOUDPL4 uint8 = 5    // UDP segmentation over IPv4 or IPv6 (USO), Linux 6.2 and later
	GSOECN   uint8 = 0x80 // bit or'ed into a TCP type: the first segment carries CWR
)

// Header is a decoded struct virtio_net_hdr.
type Header struct {
	Flags   uint8 // FlagNeedsCsum, FlagDataValid
	GSOType uint8 // GSONone, GSOTCPv4, ..., possibly | GSOECN
	// HdrLen is, on packets from the kernel, only a hint of how many bytes
	// it kept linear (virtio_net_hdr_from_skb sets skb_headlen); the
	// package never locates anything with it and only checks that it does
	// not point past the packet. On packets this package builds it is the
	// exact length of the IP and transport headers.
	HdrLen uint16
	// GSOSize is the payload length of every segment but the last.
	GSOSize    uint16
	CsumStart  uint16 // offset of the transport header, with FlagNeedsCsum
	CsumOffset uint16 // offset of the checksum field from CsumStart: 16 for TCP, 6 for UDP
}

// Encode writes h into b[:HeaderLen], little-endian (see the package
// documentation for the byte order). It panics if b is shorter, like
// encoding/binary's Put functions: the caller sizes the buffer.
func (h Header) Encode(b []byte) {
	_ = b[HeaderLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// DecodeHeader decodes the header at the start of b. It only checks that b
// holds HeaderLen bytes; what the fields say is checked against the packet
// by Split, Inspect and PrepareForward.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, &Error{Op: "decode", Err: ErrTruncated,
			Reason: itoa(len(b)) + " bytes, the virtio-net header has " + itoa(HeaderLen)}
	}
	return Header{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.LittleEndian.Uint16(b[2:]),
		GSOSize:    binary.LittleEndian.Uint16(b[4:]),
		CsumStart:  binary.LittleEndian.Uint16(b[6:]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:]),
	}, nil
}

// IsGSO reports whether h describes a super-packet.
func (h Header) IsGSO() bool { return h.GSOType != GSONone }
