package replay

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"sort"
	"testing"
)

var (
	own4 = netip.MustParsePrefix("10.9.0.1/24")
	own6 = netip.MustParsePrefix("fd00::1/64")
)

func newRW(t *testing.T, local ...netip.Addr) *rewriter {
	t.Helper()
	rw, err := newRewriter(RewriteConfig{Prefixes: []netip.Prefix{own4, own6}, Local: local})
	if err != nil {
		t.Fatal(err)
	}
	return rw
}

func srcDst(t *testing.T, p []byte) (netip.Addr, netip.Addr) {
	t.Helper()
	ip, ok := parseIP(p)
	if !ok {
		t.Fatalf("not IP: %x", p)
	}
	return ip.src, ip.dst
}

func rewrite(t *testing.T, rw *rewriter, p []byte) (netip.Addr, netip.Addr) {
	t.Helper()
	if _, err := rw.Rewrite(p); err != nil {
		t.Fatal(err)
	}
	if bad := badChecksums(p); bad != 0 {
		t.Errorf("rewrite broke %v checksum", bad)
	}
	return srcDst(t, p)
}

func TestRewriteConversationBothWays(t *testing.T) {
	rw := newRW(t)
	peer := netip.MustParseAddr("fd00::2")
	// A talks to B first: B is the inside (the device), A a peer.
	s, d := rewrite(t, rw, udpPkt(t, tA6, tB6, 40000, 5000, "req"))
	if s != peer || d != own6.Addr() {
		t.Errorf("request %v > %v, want %v > %v", s, d, peer, own6.Addr())
	}
	s, d = rewrite(t, rw, udpPkt(t, tB6, tA6, 5000, 40000, "resp"))
	if s != own6.Addr() || d != peer {
		t.Errorf("response %v > %v, want %v > %v", s, d, own6.Addr(), peer)
	}
	// A third host gets the next address; A keeps its own.
	c := netip.MustParseAddr("2001:db8::3")
	s, _ = rewrite(t, rw, echoPkt(t, c, tB6, false, 1, 1))
	if s != netip.MustParseAddr("fd00::3") {
		t.Errorf("third host became %v", s)
	}
	s, _ = rewrite(t, rw, echoPkt(t, tA6, tB6, false, 1, 2))
	if s != peer {
		t.Errorf("A became %v the second time", s)
	}
	m := rw.Mappings()
	sort.Slice(m, func(i, j int) bool { return m[i].Orig.Less(m[j].Orig) })
	want := []AddrMapping{{tA6, peer}, {tB6, own6.Addr()}, {c, netip.MustParseAddr("fd00::3")}}
	if len(m) != len(want) {
		t.Fatalf("mappings %v", m)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Errorf("mapping %d: %v, want %v", i, m[i], want[i])
		}
	}
}

func TestRewriteClues(t *testing.T) {
	tests := []struct {
		name   string
		first  []byte
		inside netip.Addr
	}{
		{"SYN comes from outside", tcpPkt(t, tA4, tB4, 40000, 8080, 1, 0, "S", ""), tB4},
		{"SYN-ACK comes from inside", tcpPkt(t, tB4, tA4, 8080, 40000, 1, 2, "SA", ""), tB4},
		{"echo request comes from outside", echoPkt(t, tA6, tB6, false, 1, 1), tB6},
		{"echo reply comes from inside", echoPkt(t, tB6, tA6, true, 1, 1), tB6},
		{"ICMPv4 echo reply", echoPkt(t, tB4, tA4, true, 1, 1), tB4},
		{"low port is the service", udpPkt(t, tB6, tA6, 53, 40000, "answer"), tB6},
		{"no clue: destination is inside", udpPkt(t, tA6, tB6, 40000, 40001, "x"), tB6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rw := newRW(t)
			orig, _ := parseIP(tc.first)
			s, d := rewrite(t, rw, tc.first)
			own := own4.Addr()
			if orig.version == 6 {
				own = own6.Addr()
			}
			if (orig.src == tc.inside) != (s == own) || (orig.dst == tc.inside) != (d == own) {
				t.Errorf("%v > %v became %v > %v; inside should be %v", orig.src, orig.dst, s, d, tc.inside)
			}
		})
	}
}

// A firm clue overrides a guess made without one, for later packets.
func TestRewriteFirmClueOverridesGuess(t *testing.T) {
	rw := newRW(t)
	// Neighbour advertisement from A to B, no clue: B guessed inside.
	na := echoPkt(t, tA6, tB6, false, 0, 0)
	na[40] = 136
	fixChecksums(na)
	if _, d := rewrite(t, rw, na); d != own6.Addr() {
		t.Fatalf("guess: B should be inside, got %v", d)
	}
	// Then A answers B's SYN with a SYN-ACK: A is the inside.
	if s, _ := rewrite(t, rw, tcpPkt(t, tA6, tB6, 80, 40000, 1, 2, "SA", "")); s != own6.Addr() {
		t.Errorf("after SYN-ACK from A, A became %v", s)
	}
	// And a later packet without clue follows the firm decision.
	if _, d := rewrite(t, rw, udpPkt(t, tB6, tA6, 40000, 40001, "x")); d != own6.Addr() {
		t.Errorf("later packet to A went to %v", d)
	}
	// A firm decision is not overridden by another firm clue.
	if s, _ := rewrite(t, rw, tcpPkt(t, tA6, tB6, 40002, 22, 1, 0, "S", "")); s != own6.Addr() {
		t.Errorf("firm decision changed: A became %v", s)
	}
}

func TestRewriteLocal(t *testing.T) {
	rw := newRW(t, tA4)
	// The SYN says B is the inside, but Local says A is.
	s, d := rewrite(t, rw, tcpPkt(t, tA4, tB4, 40000, 80, 1, 0, "S", ""))
	if s != own4.Addr() || d != netip.MustParseAddr("10.9.0.2") {
		t.Errorf("%v > %v", s, d)
	}
}

func TestRewriteKeepsSpecialAddresses(t *testing.T) {
	rw := newRW(t)
	for _, pair := range [][2]string{
		{"fe80::1", "ff02::1"}, {"::", "ff02::1:ff00:1"}, {"fe80::1", "fe80::2"},
		{"127.0.0.1", "127.0.0.2"}, {"0.0.0.0", "255.255.255.255"}, {"10.0.0.5", "224.0.0.1"},
	} {
		a, b := netip.MustParseAddr(pair[0]), netip.MustParseAddr(pair[1])
		p := udpPkt(t, a, b, 1, 2, "x")
		changed, err := rw.Rewrite(p)
		s, d := srcDst(t, p)
		switch {
		case err != nil:
			t.Errorf("%v: %v", pair, err)
		case pair[0] == "10.0.0.5":
			// A unicast source to a multicast group: the source is a peer.
			if !changed || s != netip.MustParseAddr("10.9.0.2") || d != b {
				t.Errorf("%v became %v > %v", pair, s, d)
			}
		case changed || s != a || d != b:
			t.Errorf("%v changed to %v > %v", pair, s, d)
		}
	}
	// A unicast destination from a link-local source is this host.
	p := udpPkt(t, netip.MustParseAddr("fe80::9"), tB6, 1, 2, "x")
	if s, d := rewrite(t, rw, p); s != netip.MustParseAddr("fe80::9") || d != own6.Addr() {
		t.Errorf("link-local to global became %v > %v", s, d)
	}
	// Families without a prefix are not touched.
	rw4, _ := newRewriter(RewriteConfig{Prefixes: []netip.Prefix{own4}})
	p = udpPkt(t, tA6, tB6, 1, 2, "x")
	if changed, _ := rw4.Rewrite(p); changed {
		t.Errorf("IPv6 rewritten without an IPv6 prefix")
	}
}

func TestRewriteExhaustion(t *testing.T) {
	rw, err := newRewriter(RewriteConfig{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.1.1/30")}})
	if err != nil {
		t.Fatal(err)
	}
	// .1 is the device, .2 the only peer, .3 the broadcast.
	if _, err := rw.Rewrite(echoPkt(t, tA4, tB4, false, 1, 1)); err != nil {
		t.Fatal(err)
	}
	_, err = rw.Rewrite(echoPkt(t, netip.MustParseAddr("192.0.2.77"), tB4, false, 1, 1))
	if !errors.Is(err, ErrPrefixExhausted) {
		t.Errorf("second peer in a /30: %v, want ErrPrefixExhausted", err)
	}
}

func TestNewRewriterErrors(t *testing.T) {
	for _, cfg := range []RewriteConfig{
		{Prefixes: []netip.Prefix{{}}},
		{Prefixes: []netip.Prefix{own4, netip.MustParsePrefix("10.8.0.1/24")}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("ff02::1/64")}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.1/120")}},
	} {
		if _, err := newRewriter(cfg); err == nil {
			t.Errorf("NewRewriter(%v) accepted", cfg.Prefixes)
		}
	}
}

// Rewriting every fragment of a datagram keeps the reassembled datagram's
// UDP checksum right, though no fragment holds the whole datagram.
func TestRewriteFragmentsKeepDatagramChecksum(t *testing.T) {
	b, err := os.ReadFile("../testdata/pcaps/ipv6-fragments.pcap")
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := readAll(t, b)
	rw := newRW(t)
	for _, want := range []int{6, 4} {
		var whole []byte
		var first []byte
		pieces := map[int][]byte{}
		for _, p := range ps {
			if p.Skip != skipNone {
				continue
			}
			ip, _ := parseIP(p.IP)
			if ip.version != want {
				continue
			}
			if _, err := rw.Rewrite(p.IP); err != nil {
				t.Fatal(err)
			}
			ip, _ = parseIP(p.IP)
			start := ip.hdrLen
			if want == 6 {
				start += 8
			}
			pieces[ip.fragOff] = p.IP[start:ip.end]
			if ip.fragOff == 0 {
				first = p.IP
			}
		}
		for len(pieces) > 0 {
			next, ok := pieces[len(whole)]
			if !ok {
				t.Fatalf("IPv%d: fragments do not line up at %d", want, len(whole))
			}
			delete(pieces, len(whole))
			whole = append(whole, next...)
		}
		// Build the reassembled packet and check it.
		var hdr []byte
		if want == 6 {
			hdr = append([]byte(nil), first[:40]...)
			hdr[6] = protoUDP
			binary.BigEndian.PutUint16(hdr[4:], uint16(len(whole)))
		} else {
			hdr = append([]byte(nil), first[:20]...)
			binary.BigEndian.PutUint16(hdr[2:], uint16(20+len(whole)))
			binary.BigEndian.PutUint16(hdr[6:], 0)
			binary.BigEndian.PutUint16(hdr[10:], 0)
			binary.BigEndian.PutUint16(hdr[10:], ipv4HeaderChecksum(hdr))
		}
		dg := append(hdr, whole...)
		if bad := badChecksums(dg); bad != 0 {
			t.Errorf("IPv%d: reassembled datagram after rewriting has a bad %v checksum", want, bad)
		}
	}
}
