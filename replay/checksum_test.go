package replay

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// checksumCases are well-formed packets (gopacket computed their
// checksums) and where their upper-layer checksum sits.
func checksumCases(t *testing.T) []struct {
	name string
	p    []byte
	at   int
	kind Checksums
} {
	return []struct {
		name string
		p    []byte
		at   int
		kind Checksums
	}{
		{"udp4", udpPkt(t, tA4, tB4, 1000, 53, "query"), 20 + 6, ChecksumUDP},
		{"udp6", udpPkt(t, tA6, tB6, 1000, 53, "query"), 40 + 6, ChecksumUDP},
		{"udp6 odd length", udpPkt(t, tA6, tB6, 1000, 53, "odd"), 40 + 6, ChecksumUDP},
		{"tcp4", tcpPkt(t, tA4, tB4, 1, 80, 100, 0, "S", ""), 20 + 16, ChecksumTCP},
		{"tcp6 with data", tcpPkt(t, tA6, tB6, 1, 80, 100, 5, "PA", "GET /"), 40 + 16, ChecksumTCP},
		{"icmp4 echo", echoPkt(t, tA4, tB4, false, 1, 2), 20 + 2, ChecksumICMP},
		{"icmpv6 echo", echoPkt(t, tA6, tB6, false, 1, 2), 40 + 2, ChecksumICMPv6},
	}
}

func TestBadAndFixChecksums(t *testing.T) {
	for _, tc := range checksumCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			if bad := badChecksums(tc.p); bad != 0 {
				t.Fatalf("gopacket-built packet has bad checksums %v", bad)
			}
			p := append([]byte(nil), tc.p...)
			binary.BigEndian.PutUint16(p[tc.at:], binary.BigEndian.Uint16(p[tc.at:])^0x5a5a)
			if bad := badChecksums(p); bad != tc.kind {
				t.Errorf("spoiled: BadChecksums = %v, want %v", bad, tc.kind)
			}
			if fixed := fixChecksums(p); fixed != tc.kind {
				t.Errorf("FixChecksums = %v, want %v", fixed, tc.kind)
			}
			if !bytes.Equal(p, tc.p) {
				t.Errorf("fixed packet differs from gopacket's:\n got %x\nwant %x", p, tc.p)
			}
			if fixed := fixChecksums(p); fixed != 0 {
				t.Errorf("second FixChecksums changed %v", fixed)
			}
			if tc.p[0]>>4 == 4 {
				binary.BigEndian.PutUint16(p[10:], 0x1234)
				if badChecksums(p) != ChecksumIPv4 || fixChecksums(p) != ChecksumIPv4 || !bytes.Equal(p, tc.p) {
					t.Errorf("IPv4 header checksum not detected or fixed")
				}
			}
		})
	}
}

func TestChecksumSpecialCases(t *testing.T) {
	// IPv4 UDP checksum zero means none: neither bad nor fixed.
	p := udpPkt(t, tA4, tB4, 1, 2, "no checksum")
	binary.BigEndian.PutUint16(p[26:], 0)
	if badChecksums(p) != 0 || fixChecksums(p) != 0 || binary.BigEndian.Uint16(p[26:]) != 0 {
		t.Errorf("IPv4 UDP zero checksum touched")
	}
	// Over IPv6 zero is wrong.
	p = udpPkt(t, tA6, tB6, 1, 2, "zero")
	binary.BigEndian.PutUint16(p[46:], 0)
	if badChecksums(p) != ChecksumUDP || fixChecksums(p) != ChecksumUDP {
		t.Errorf("IPv6 UDP zero checksum not fixed")
	}
	// A fragment's upper-layer checksum covers bytes that are not there.
	frag := udpPkt(t, tA4, tB4, 1, 2, "fragment")
	frag[6] |= 0x20 // MF
	binary.BigEndian.PutUint16(frag[10:], 0)
	binary.BigEndian.PutUint16(frag[10:], ipv4HeaderChecksum(frag[:20]))
	binary.BigEndian.PutUint16(frag[26:], 0xdead)
	if fixChecksums(frag) != 0 || binary.BigEndian.Uint16(frag[26:]) != 0xdead {
		t.Errorf("fragment's UDP checksum touched")
	}
	// A length field that claims more than the packet holds.
	long := udpPkt(t, tA6, tB6, 1, 2, "short")
	binary.BigEndian.PutUint16(long[4:], 100)
	binary.BigEndian.PutUint16(long[46:], 0xbeef)
	if fixChecksums(long) != 0 || binary.BigEndian.Uint16(long[46:]) != 0xbeef {
		t.Errorf("truncated packet's checksum touched")
	}
	// Garbage is left alone.
	for _, g := range [][]byte{nil, {0x45}, {0x60, 0, 0}, {0x00, 1, 2, 3}} {
		if fixChecksums(g) != 0 || badChecksums(g) != 0 {
			t.Errorf("%x: reported checksums", g)
		}
	}
}

// The routing-header capture's checksums cover the final destination, not
// the first hop in the IPv6 header: tcpdump calls them right, and so must
// BadChecksums.
func TestChecksumRoutingHeaderPseudoDestination(t *testing.T) {
	b, err := os.ReadFile("../testdata/pcaps/real/ipv6-routing-header.pcap")
	if err != nil {
		t.Fatalf("real capture missing: %v", err)
	}
	ps, _ := readAll(t, b)
	for _, p := range ps {
		if bad := badChecksums(p.IP); bad != 0 {
			t.Errorf("record %d: %v checksum wrong", p.Number, bad)
		}
		ip, _ := parseIP(p.IP)
		if ip.pseudoDst == ip.dst {
			t.Errorf("record %d: pseudo-header destination is the first hop %v", p.Number, ip.dst)
		}
	}
}

func TestAdjustChecksumKeepsBadBad(t *testing.T) {
	good := udpPkt(t, tA6, tB6, 1, 2, "payload")
	bad := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(bad[46:], binary.BigEndian.Uint16(bad[46:])+0x0101)
	rw, err := newRewriter(RewriteConfig{Prefixes: []netip.Prefix{netip.MustParsePrefix("fd00::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{good, bad} {
		if _, err := rw.Rewrite(p); err != nil {
			t.Fatal(err)
		}
	}
	if badChecksums(good) != 0 {
		t.Errorf("a right checksum went wrong in the rewrite")
	}
	if badChecksums(bad) != ChecksumUDP {
		t.Errorf("a wrong checksum went right in the rewrite")
	}
	// By the same amount: fixing both gives the same value.
	gcs, bcs := binary.BigEndian.Uint16(good[46:]), binary.BigEndian.Uint16(bad[46:])
	if bcs-gcs != 0x0101 {
		t.Errorf("the error changed from 0x0101 to %#04x", bcs-gcs)
	}
}

func TestChecksumsString(t *testing.T) {
	if s := (ChecksumIPv4 | ChecksumUDP).String(); s != "ipv4+udp" {
		t.Errorf("%q", s)
	}
	if s := Checksums(0).String(); s != "none" {
		t.Errorf("%q", s)
	}
}

// gopacket recomputes the same checksums for a packet the Rewriter moved.
func TestRewrittenChecksumsAgreeWithGopacket(t *testing.T) {
	rw, err := newRewriter(RewriteConfig{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24"), netip.MustParsePrefix("fd00::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range checksumCases(t) {
		p := append([]byte(nil), tc.p...)
		if _, err := rw.Rewrite(p); err != nil {
			t.Fatal(err)
		}
		// Re-serialize the decoded packet with gopacket computing every
		// checksum afresh, and compare.
		first := gopacket.LayerType(layers.LayerTypeIPv4)
		if p[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
		pkt := gopacket.NewPacket(p, first, gopacket.Default)
		var ls []gopacket.SerializableLayer
		var nl gopacket.NetworkLayer
	layersLoop:
		for _, l := range pkt.Layers() {
			switch l := l.(type) {
			case *layers.IPv4:
				nl = l
			case *layers.IPv6:
				nl = l
			case *layers.TCP:
				l.SetNetworkLayerForChecksum(nl)
			case *layers.UDP:
				l.SetNetworkLayerForChecksum(nl)
			case *layers.ICMPv6:
				// gopacket's ICMPv6Echo drops the echo data on decoding:
				// serialize ICMPv6 over its whole payload instead.
				l.SetNetworkLayerForChecksum(nl)
				ls = append(ls, l, gopacket.Payload(l.LayerPayload()))
				break layersLoop
			}
			if s, ok := l.(gopacket.SerializableLayer); ok {
				ls = append(ls, s)
			} else {
				ls = append(ls, gopacket.Payload(l.LayerContents()))
			}
		}
		want := ser(t, ls...)
		if !bytes.Equal(p, want) {
			t.Errorf("%s: rewritten\n got %x\nwant %x (gopacket)", tc.name, p, want)
		}
	}
}
