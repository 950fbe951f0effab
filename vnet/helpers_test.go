package vnet

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// flow describes the packets of one flow built with gopacket.
type flow struct {
	v6           bool
	udp          bool
	src, dst     net.IP
	sport, dport uint16
	ttl, tos     uint8
	df           bool
	flowLabel    uint32
	id           uint16 // IPv4 identification of the first packet
	fixedID      bool   // every packet carries id
	seq, ack     uint32
	window       uint16
	opts         []layers.TCPOption
	ipOpts       []layers.IPv4Option
	v6ext        bool // add an empty destination options header
}

func tcp4Flow() flow {
	return flow{
		src: net.IPv4(10, 0, 0, 1).To4(), dst: net.IPv4(10, 0, 0, 2).To4(),
		sport: 40000, dport: 443, ttl: 64, df: true, id: 0x1234,
		seq: 1000000, ack: 777, window: 502,
		opts: tsOpts(1111, 2222),
	}
}

func tcp6Flow() flow {
	f := tcp4Flow()
	f.v6 = true
	f.src, f.dst = net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	f.flowLabel = 0x12345
	return f
}

func udp4Flow() flow {
	return flow{
		udp: true,
		src: net.IPv4(192, 168, 1, 10).To4(), dst: net.IPv4(192, 168, 1, 20).To4(),
		sport: 5000, dport: 51820, ttl: 64, df: true, id: 0xfff0,
	}
}

func udp6Flow() flow {
	f := udp4Flow()
	f.v6 = true
	f.src, f.dst = net.ParseIP("fd00::a"), net.ParseIP("fd00::b")
	return f
}

func tsOpts(val, ecr uint32) []layers.TCPOption {
	ts := make([]byte, 8)
	binary.BigEndian.PutUint32(ts, val)
	binary.BigEndian.PutUint32(ts[4:], ecr)
	return []layers.TCPOption{
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
	}
}

// tcpFlags for build.
type tcpFlags struct{ syn, fin, psh, rst, urg, cwr, ece bool }

// build serializes one packet of f with gopacket: the i-th packet of the
// flow (IPv4 identification id+i unless fixedID), sequence number seq,
// flags and payload, all checksums computed.
func (f flow) build(t testing.TB, i int, seq uint32, fl tcpFlags, payload []byte) []byte {
	t.Helper()
	var net gopacket.NetworkLayer
	var ls []gopacket.SerializableLayer
	proto := layers.IPProtocolTCP
	if f.udp {
		proto = layers.IPProtocolUDP
	}
	if f.v6 {
		ip := &layers.IPv6{Version: 6, TrafficClass: f.tos, FlowLabel: f.flowLabel, NextHeader: proto, HopLimit: f.ttl, SrcIP: f.src, DstIP: f.dst}
		net = ip
		ls = append(ls, ip)
		if f.v6ext {
			ip.NextHeader = layers.IPProtocolIPv6Destination
			d := &layers.IPv6Destination{}
			d.NextHeader = proto
			d.Options = []*layers.IPv6DestinationOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
			ls = append(ls, d)
		}
	} else {
		id := f.id
		if !f.fixedID {
			id += uint16(i)
		}
		ip := &layers.IPv4{Version: 4, TOS: f.tos, Id: id, TTL: f.ttl, Protocol: proto, SrcIP: f.src, DstIP: f.dst, Options: f.ipOpts}
		if f.df {
			ip.Flags = layers.IPv4DontFragment
		}
		net = ip
		ls = append(ls, ip)
	}
	if f.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
		if err := u.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), Seq: seq, Ack: f.ack,
			ACK: true, SYN: fl.syn, FIN: fl.fin, PSH: fl.psh, RST: fl.rst, URG: fl.urg, CWR: fl.cwr, ECE: fl.ece,
			Window: f.window, Options: f.opts}
		if err := tc.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// segments builds n consecutive full segments of size mss (the last of
// size last if last > 0), PSH on the last, as a TCP sender would.
func (f flow) segments(t testing.TB, n, mss, last int, psh bool) [][]byte {
	t.Helper()
	var out [][]byte
	seq := f.seq
	for i := range n {
		size := mss
		if i == n-1 && last > 0 {
			size = last
		}
		p := payloadBytes(seq, size)
		out = append(out, f.build(t, i, seq, tcpFlags{psh: psh && i == n-1}, p))
		seq += uint32(size)
	}
	return out
}

// datagrams builds n UDP datagrams of size bytes, the last of last bytes if
// last > 0.
func (f flow) datagrams(t testing.TB, n, size, last int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		s := size
		if i == n-1 && last > 0 {
			s = last
		}
		out = append(out, f.build(t, i, 0, tcpFlags{}, payloadBytes(uint32(i)*7919, s)))
	}
	return out
}

// payloadBytes is deterministic data that differs per position.
func payloadBytes(seed uint32, n int) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 12345
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// verifyChecksums decodes p with gopacket and re-serializes it with
// computed checksums and lengths: the bytes must not change, so every
// checksum and length in p is right.
func verifyChecksums(t testing.TB, p []byte) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if p[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	pk := gopacket.NewPacket(p, first, gopacket.Default)
	if e := pk.ErrorLayer(); e != nil {
		t.Fatalf("gopacket cannot decode: %v", e.Error())
	}
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	for _, l := range pk.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
			ls = append(ls, l)
		case *layers.IPv6:
			nl = l
			ls = append(ls, l)
		case *layers.IPv6Destination:
			ls = append(ls, l)
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(nl)
			ls = append(ls, l, gopacket.Payload(l.Payload))
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(nl)
			ls = append(ls, l, gopacket.Payload(l.Payload))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	if !bytes.Equal(got, p) {
		// 0x0000 and 0xffff are the same TCP checksum; compare again with
		// the transport checksum normalized.
		if len(got) == len(p) && sameButChecksumZero(got, p) {
			return
		}
		t.Fatalf("checksums or lengths wrong:\n got %x\nwant %x", p[:min(len(p), 80)], got[:min(len(got), 80)])
	}
}

func sameButChecksumZero(a, b []byte) bool {
	diff := 0
	for i := range a {
		if a[i] != b[i] {
			if (a[i] == 0 && b[i] == 0xff) || (a[i] == 0xff && b[i] == 0) {
				diff++
				continue
			}
			return false
		}
	}
	return diff == 2
}

// withRoom copies packets into buffers with headroom bytes in front.
func withRoom(pkts [][]byte, headroom int) [][]byte {
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		b := make([]byte, headroom+len(p))
		copy(b[headroom:], p)
		out[i] = b
	}
	return out
}

// flatten concatenates an Item's Vec: virtio-net header then packet.
func flatten(it Item) []byte {
	var b []byte
	for _, v := range it.Vec {
		b = append(b, v...)
	}
	return b
}

// splitItem splits the bytes of an Item back into packets.
func splitItem(t testing.TB, it Item) [][]byte {
	t.Helper()
	b := flatten(it)
	h, err := DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h != it.Header {
		t.Fatalf("encoded header %+v, Item.Header %+v", h, it.Header)
	}
	if len(b)-HeaderLen != it.Len {
		t.Fatalf("Vec carries %d bytes, Len %d", len(b)-HeaderLen, it.Len)
	}
	out := make([][]byte, MaxSegments)
	for i := range out {
		out[i] = make([]byte, 65536)
	}
	sizes := make([]int, len(out))
	n, err := Split(b[HeaderLen:], h, out, sizes, 0)
	if err != nil {
		t.Fatalf("split of a coalesced item: %v", err)
	}
	res := make([][]byte, n)
	for i := range n {
		res[i] = out[i][:sizes[i]]
	}
	return res
}

func mustEqualPackets(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("packet %d differs:\n got %x\nwant %x", i, got[i][:min(80, len(got[i]))], want[i][:min(80, len(want[i]))])
		}
	}
}

var allOffloads = Offloads{TCP4: true, TCP6: true, UDP: true}
