package replay

import (
	"encoding/binary"
	"strconv"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// LinkType is a pcap LINKTYPE_ value: what kind of header precedes the
// network-layer packet in each record. It is 16 bits wide, as in the pcap
// and pcapng formats (gopacket's layers.LinkType is only 8 bits, too narrow
// for LINUX_SLL2, so the package reads the value itself).
type LinkType uint16

// The link types the capture reader turns into bare IP packets.
const (
	linkTypeNull     LinkType = 0   // BSD loopback: a 4-byte address family in the capturing host's byte order
	linkTypeEthernet LinkType = 1   // Ethernet II, with optional 802.1Q/802.1ad tags
	linkTypeRaw      LinkType = 101 // bare IPv4 or IPv6
	linkTypeLoop     LinkType = 108 // OpenBSD loopback: a 4-byte address family in network byte order
	linkTypeLinuxSLL LinkType = 113 // Linux cooked capture v1 (16-byte header)
	linkTypeIPv4     LinkType = 228 // bare IPv4
	linkTypeIPv6     LinkType = 229 // bare IPv6
	linkTypeSLL2     LinkType = 276 // Linux cooked capture v2 (20-byte header)
)

// String names the link type the way libpcap does ("EN10MB", "RAW", ...),
// or gives its number.
func (t LinkType) String() string {
	switch t {
	case linkTypeNull:
		return "NULL"
	case linkTypeEthernet:
		return "EN10MB"
	case linkTypeRaw:
		return "RAW"
	case linkTypeLoop:
		return "LOOP"
	case linkTypeLinuxSLL:
		return "LINUX_SLL"
	case linkTypeIPv4:
		return "IPV4"
	case linkTypeIPv6:
		return "IPV6"
	case linkTypeSLL2:
		return "LINUX_SLL2"
	}
	return "LINKTYPE_" + strconv.Itoa(int(t))
}

// supported reports whether the capture reader can take IP packets out of records of
// this link type.
func (t LinkType) supported() bool {
	switch t {
	case linkTypeNull, linkTypeEthernet, linkTypeRaw, linkTypeLoop,
		linkTypeLinuxSLL, linkTypeIPv4, linkTypeIPv6, linkTypeSLL2:
		return true
	}
	return false
}

// SkipReason says why a record of a capture is not replayed (Outcome.Skip,
// Summary.SkippedBy, and the skipped lines of an expectation file):
// "non-ip" (the link header names another protocol: ARP, LLDP, 802.3 LLC,
// ...), "short" (the record ends inside the link-layer header), "empty" (no
// bytes after it), "wrong-family" (a LINKTYPE_IPV4/IPV6 record whose
// version nibble says otherwise), "link-type" (a link type this package
// does not decode) or "canceled" (Run was stopped before writing it). The
// empty reason means the record holds an IP packet (of any version: a
// version nibble other than 4 or 6 is the kernel's business, not the
// reader's).
type SkipReason string

// Reasons for skipping a record.
const (
	skipNone        SkipReason = ""
	skipNonIP       SkipReason = "non-ip"       // the link header names another protocol (ARP, LLDP, 802.3 LLC, ...)
	skipShort       SkipReason = "short"        // the record ends inside the link-layer header
	skipEmpty       SkipReason = "empty"        // no bytes after the link-layer header
	skipWrongFamily SkipReason = "wrong-family" // LINKTYPE_IPV4/IPV6 record whose version nibble says otherwise
	skipLinkType    SkipReason = "link-type"    // a link type this package does not decode
)

// Address families seen in NULL and LOOP headers: AF_INET is 2 everywhere;
// AF_INET6 differs between systems.
const (
	afInet         = 2
	afInet6Linux   = 10
	afInet6BSD     = 24 // NetBSD, OpenBSD
	afInet6FreeBSD = 28
	afInet6Darwin  = 30
)

func isAFInet6(v uint32) bool {
	switch v {
	case afInet6Linux, afInet6BSD, afInet6FreeBSD, afInet6Darwin:
		return true
	}
	return false
}

// stripLink takes the link-layer header off one record of link type lt and
// returns the network-layer packet, a sub-slice of frame, or the reason the
// record carries no IP packet. Ethernet padding after the IP packet (short
// frames are padded to 60 bytes) is cut off when the IP length field says
// where the packet ends. Pure; safe from any goroutine; it keeps no
// reference to frame.
func stripLink(lt LinkType, frame []byte) ([]byte, SkipReason) {
	switch lt {
	case linkTypeRaw:
		return nonEmpty(frame)
	case linkTypeIPv4, linkTypeIPv6:
		p, why := nonEmpty(frame)
		if why != skipNone {
			return nil, why
		}
		want := 4
		if lt == linkTypeIPv6 {
			want = 6
		}
		if int(p[0]>>4) != want {
			return nil, skipWrongFamily
		}
		return p, skipNone
	case linkTypeEthernet:
		return stripEthernet(frame)
	case linkTypeLinuxSLL:
		// packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
		if len(frame) < 16 {
			return nil, skipShort
		}
		return byEtherType(binary.BigEndian.Uint16(frame[14:16]), frame[16:], false)
	case linkTypeSLL2:
		// protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1)
		// address length(1) address(8)
		if len(frame) < 20 {
			return nil, skipShort
		}
		return byEtherType(binary.BigEndian.Uint16(frame[0:2]), frame[20:], false)
	case linkTypeNull, linkTypeLoop:
		if len(frame) < 4 {
			return nil, skipShort
		}
		var af uint32
		if lt == linkTypeLoop {
			af = binary.BigEndian.Uint32(frame[:4])
		} else {
			// Host byte order of the capturing machine, which the file does
			// not record: the family fits in one byte, so whichever end
			// holds it gives it away.
			af = binary.LittleEndian.Uint32(frame[:4])
			if af > 0xff {
				af = binary.BigEndian.Uint32(frame[:4])
			}
		}
		switch {
		case af == afInet, isAFInet6(af):
			return nonEmpty(frame[4:])
		}
		return nil, skipNonIP
	}
	return nil, skipLinkType
}

func nonEmpty(p []byte) ([]byte, SkipReason) {
	if len(p) == 0 {
		return nil, skipEmpty
	}
	return p, skipNone
}

// stripEthernet decodes the Ethernet header and any VLAN tags with
// gopacket's layers.
func stripEthernet(frame []byte) ([]byte, SkipReason) {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil {
		return nil, skipShort
	}
	et, payload := eth.EthernetType, eth.Payload
	for range 8 { // QinQ stacks are shallow; 8 is generous
		if et != layers.EthernetTypeDot1Q && et != layers.EthernetTypeQinQ && et != 0x9100 {
			break
		}
		var tag layers.Dot1Q
		if err := tag.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
			return nil, skipShort
		}
		et, payload = tag.Type, tag.Payload
	}
	return byEtherType(uint16(et), payload, true)
}

// byEtherType keeps IPv4 and IPv6 payloads; trimPad cuts link-layer
// padding off the end.
func byEtherType(et uint16, payload []byte, trimPad bool) ([]byte, SkipReason) {
	if et != 0x0800 && et != 0x86dd {
		return nil, skipNonIP
	}
	p, why := nonEmpty(payload)
	if why != skipNone || !trimPad {
		return p, why
	}
	return trimPadding(p), skipNone
}

// trimPadding cuts bytes past the end the IP length field gives, when the
// field is plausible. A length field that claims more than the record holds
// is left for the kernel to judge.
func trimPadding(p []byte) []byte {
	switch p[0] >> 4 {
	case 4:
		if len(p) >= 20 {
			if n := int(binary.BigEndian.Uint16(p[2:4])); n >= 20 && n < len(p) {
				return p[:n]
			}
		}
	case 6:
		if len(p) >= 40 {
			if n := 40 + int(binary.BigEndian.Uint16(p[4:6])); n > 40 && n < len(p) {
				return p[:n]
			}
		}
	}
	return p
}
