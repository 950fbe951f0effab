package replay

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Packets built with gopacket for the pure tests.

var (
	tA4 = netip.MustParseAddr("192.0.2.1")
	tB4 = netip.MustParseAddr("192.0.2.2")
	tA6 = netip.MustParseAddr("2001:db8::1")
	tB6 = netip.MustParseAddr("2001:db8::2")
)

func ser(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func mkIP(src, dst netip.Addr, proto layers.IPProtocol) gopacket.NetworkLayer {
	if src.Is4() {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 7, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func udpPkt(t testing.TB, src, dst netip.Addr, sport, dport uint16, payload string) []byte {
	ip := mkIP(src, dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	u.SetNetworkLayerForChecksum(ip)
	return ser(t, ip.(gopacket.SerializableLayer), u, gopacket.Payload(payload))
}

func tcpPkt(t testing.TB, src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags string, payload string) []byte {
	ip := mkIP(src, dst, layers.IPProtocolTCP)
	tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, Ack: ack, Window: 1000}
	for _, f := range flags {
		switch f {
		case 'S':
			tc.SYN = true
		case 'A':
			tc.ACK = true
		case 'R':
			tc.RST = true
		case 'F':
			tc.FIN = true
		case 'P':
			tc.PSH = true
		}
	}
	tc.SetNetworkLayerForChecksum(ip)
	return ser(t, ip.(gopacket.SerializableLayer), tc, gopacket.Payload(payload))
}

func echoPkt(t testing.TB, src, dst netip.Addr, reply bool, id, seq uint16) []byte {
	if src.Is4() {
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if reply {
			typ = layers.ICMPv4TypeEchoReply
		}
		return ser(t, mkIP(src, dst, layers.IPProtocolICMPv4).(gopacket.SerializableLayer),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: seq}, gopacket.Payload("ping"))
	}
	typ := uint8(layers.ICMPv6TypeEchoRequest)
	if reply {
		typ = layers.ICMPv6TypeEchoReply
	}
	ip := mkIP(src, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	return ser(t, ip.(gopacket.SerializableLayer), icmp, &layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}, gopacket.Payload("ping"))
}

// icmpError builds an ICMP or ICMPv6 error from dst back to the sender of
// quoted.
func icmpError(t testing.TB, quoted []byte, typ, code uint8) []byte {
	q, _ := parseIP(quoted)
	if q.version == 4 {
		return ser(t, mkIP(q.dst, q.src, layers.IPProtocolICMPv4).(gopacket.SerializableLayer),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}, gopacket.Payload(quoted))
	}
	ip := mkIP(q.dst, q.src, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	icmp.SetNetworkLayerForChecksum(ip)
	return ser(t, ip.(gopacket.SerializableLayer), icmp, gopacket.Payload(append([]byte{0, 0, 0, 0}, quoted...)))
}

// pcapOf writes packets as a classic pcap of the given link type.
func pcapOf(t testing.TB, lt layers.LinkType, frames ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, lt); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 0), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func ethFrame(t testing.TB, et layers.EthernetType, payload []byte) []byte {
	return ser(t, &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: et}, gopacket.Payload(payload))
}

// ngBlock encodes one little-endian pcapng block.
func ngBlock(typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	b := make([]byte, 8, 12+len(body))
	binary.LittleEndian.PutUint32(b[0:], typ)
	binary.LittleEndian.PutUint32(b[4:], uint32(12+len(body)))
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, uint32(12+len(body)))
}

func ngSection() []byte {
	body := make([]byte, 16)
	binary.LittleEndian.PutUint32(body[0:], 0x1a2b3c4d)
	binary.LittleEndian.PutUint16(body[4:], 1)
	binary.LittleEndian.PutUint16(body[6:], 0)
	binary.LittleEndian.PutUint64(body[8:], ^uint64(0))
	return ngBlock(ngSHB, body)
}

func ngIDBlock(lt uint16, options []byte) []byte {
	body := make([]byte, 8)
	binary.LittleEndian.PutUint16(body[0:], lt)
	binary.LittleEndian.PutUint32(body[4:], 0)
	return ngBlock(ngIDB, append(body, options...))
}

func ngEPBlock(iface uint32, ts uint64, data []byte) []byte {
	body := make([]byte, 20)
	binary.LittleEndian.PutUint32(body[0:], iface)
	binary.LittleEndian.PutUint32(body[4:], uint32(ts>>32))
	binary.LittleEndian.PutUint32(body[8:], uint32(ts))
	binary.LittleEndian.PutUint32(body[12:], uint32(len(data)))
	binary.LittleEndian.PutUint32(body[16:], uint32(len(data)))
	return ngBlock(ngEPB, append(body, data...))
}
