package tunbpf

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tundra-go/tundra/internal/netnstest"
)

// run runs prog on pkt with BPF_PROG_TEST_RUN. The kernel takes the input
// as an Ethernet frame and strips the 14-byte header before a socket
// filter runs, so skb->data is then the IP header, as on a TUN device. The
// EtherType is a local experimental one: for IPv4 and IPv6 types the
// kernel would refuse packets shorter than an IP header, which the tests
// want to feed.
func run(t *testing.T, prog *ebpf.Program, pkt []byte) uint32 {
	t.Helper()
	frame := make([]byte, 14, 14+len(pkt))
	binary.BigEndian.PutUint16(frame[12:], 0x88b5)
	frame = append(frame, pkt...)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret
}

func loadFilter(t *testing.T, f Filter) *ebpf.Program {
	t.Helper()
	netnstest.SkipUnlessPrivileged(t)
	prog, err := f.Program()
	if err != nil {
		t.Fatalf("Filter%+v.Program: %v", f, err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

var (
	payload200 = bytes.Repeat([]byte("x"), 200)

	// IPv4 options: router alert (4 bytes), then NOP padding and a
	// timestamp option, giving IHL 6 and IHL 15 headers.
	optsRA  = []byte{0x94, 0x04, 0x00, 0x00}
	optsMax = append([]byte{0x44, 36, 5, 0}, make([]byte, 36)...)

	hbh   = ext{0, make([]byte, 6)}      // hop-by-hop, 8 bytes
	dopts = ext{60, make([]byte, 14)}    // destination options, 16 bytes
	rthdr = ext{43, make([]byte, 6)}     // routing, 8 bytes
	ahdr  = ext{51, make([]byte, 14)}    // authentication, 16 bytes
	frag0 = ext{44, fragHdr(0, true, 7)} // first fragment
	frag9 = ext{44, fragHdr(9, false, 7)}
)

type verdict int

const (
	drop verdict = iota
	pass
)

func (v verdict) String() string { return [...]string{"drop", "pass"}[v] }

type packetCase struct {
	name string
	pkt  []byte
	want verdict
}

func checkFilter(t *testing.T, f Filter, cases []packetCase) {
	t.Helper()
	prog := loadFilter(t, f)
	for _, c := range cases {
		got := run(t, prog, c.pkt)
		want := uint32(0)
		if c.want == pass {
			want = uint32(len(c.pkt))
			if f.SnapLen != 0 && want > f.SnapLen {
				want = f.SnapLen
			}
		}
		if got != want {
			t.Errorf("%s (%d bytes): program returned %d, want %d (%v)", c.name, len(c.pkt), got, want, c.want)
		}
		if m := modelFilter(f, c.pkt); m != want {
			t.Errorf("%s: the Go model says %d, the table %d: fix one of them", c.name, m, want)
		}
	}
}

var (
	udp4to53    = ipv4("10.0.0.1", "10.1.2.3", 17, nil, 0, false, udp(1000, 53, []byte("q")))
	udp4to54    = ipv4("10.0.0.1", "10.1.2.3", 17, nil, 0, false, udp(1000, 54, []byte("q")))
	tcp4to53    = ipv4("10.0.0.1", "10.1.2.3", 6, nil, 0, false, tcp(1000, 53))
	tcp4to80    = ipv4("10.0.0.1", "10.1.2.3", 6, nil, 0, false, tcp(1000, 80))
	icmp4       = ipv4("10.0.0.1", "10.1.2.3", 1, nil, 0, false, icmpEcho())
	udp6to53    = ipv6("fd00::1", "fd00::2", 17, nil, udp(1000, 53, []byte("q")))
	udp6to54    = ipv6("fd00::1", "fd00::2", 17, nil, udp(1000, 54, []byte("q")))
	tcp6to80    = ipv6("fd00::1", "fd00::2", 6, nil, tcp(1000, 80))
	icmp6       = ipv6("fd00::1", "fd00::2", 58, nil, []byte{128, 0, 0, 0, 0, 1, 0, 1})
	garbage     = []byte{0x55, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	empty       = []byte{}
	shortV4     = []byte{0x45, 0, 0, 10, 0, 0, 0, 0, 64, 17}
	shortV6     = make([]byte, 39)
	badIHL      = func() []byte { p := bytes.Clone(udp4to53); p[0] = 0x44; return p }()
	longIHL     = func() []byte { p := bytes.Clone(udp4to53)[:24]; p[0] = 0x47; return p }() // 28-byte header, 24 bytes
	cutUDP4     = udp4to53[:22]                                                              // destination port cut off
	cutUDP6     = udp6to53[:43]
	looksLike53 = udp(1, 53, payload200)
	udp6Walked  = ipv6("fd00::1", "fd00::2", 17, []ext{hbh, rthdr, dopts, ahdr}, udp(1000, 53, nil))
)

func init() { shortV6[0] = 0x60 }

func TestFilterFamily(t *testing.T) {
	checkFilter(t, Filter{Family: IPv4Only}, []packetCase{
		{"IPv4 UDP", udp4to53, pass},
		{"IPv4 ICMP", icmp4, pass},
		{"IPv6 UDP", udp6to53, drop},
		{"version 5", garbage, drop},
		{"empty", empty, drop},
		{"IPv4 shorter than 20", shortV4, drop},
		{"IPv4 IHL 4", badIHL, drop},
		{"IPv4 IHL past the end", longIHL, drop},
	})
	checkFilter(t, Filter{Family: IPv6Only}, []packetCase{
		{"IPv6 UDP", udp6to53, pass},
		{"IPv6 ICMPv6", icmp6, pass},
		{"IPv4 UDP", udp4to53, drop},
		{"IPv6 shorter than 40", shortV6, drop},
		{"version 5", garbage, drop},
	})
}

func TestFilterProtocols(t *testing.T) {
	checkFilter(t, Filter{Protocols: []uint8{17, 58}}, []packetCase{
		{"IPv4 UDP", udp4to53, pass},
		{"IPv4 TCP", tcp4to80, drop},
		{"IPv4 ICMP", icmp4, drop},
		{"IPv4 UDP non-first fragment", ipv4("10.0.0.1", "10.1.2.3", 17, nil, 100, false, payload200), pass},
		{"IPv4 TCP non-first fragment", ipv4("10.0.0.1", "10.1.2.3", 6, nil, 100, false, payload200), drop},
		{"IPv6 UDP", udp6to53, pass},
		{"IPv6 ICMPv6", icmp6, pass},
		{"IPv6 TCP", tcp6to80, drop},
		{"IPv6 UDP after four extension headers", udp6Walked, pass},
		{"IPv6 TCP after hop-by-hop", ipv6("fd00::1", "fd00::2", 6, []ext{hbh}, tcp(1, 80)), drop},
		{"IPv6 UDP first fragment", ipv6("fd00::1", "fd00::2", 17, []ext{frag0}, udp(1, 53, payload200)), pass},
		{"IPv6 UDP later fragment", ipv6("fd00::1", "fd00::2", 17, []ext{frag9}, payload200), pass},
		{"IPv6 hop-by-hop cut off", ipv6("fd00::1", "fd00::2", 17, []ext{hbh}, nil)[:41], drop},
		{"IPv6 nine extension headers", ipv6("fd00::1", "fd00::2", 17, []ext{hbh, dopts, dopts, dopts, dopts, dopts, dopts, dopts, dopts}, udp(1, 2, nil)), drop},
		{"IPv6 eight extension headers", ipv6("fd00::1", "fd00::2", 17, []ext{hbh, dopts, dopts, dopts, dopts, dopts, dopts, dopts}, udp(1, 2, nil)), pass},
		{"garbage", garbage, drop},
	})
}

func TestFilterPorts(t *testing.T) {
	checkFilter(t, Filter{DropPorts: []uint16{53, 5353}}, []packetCase{
		{"IPv4 UDP to 53", udp4to53, drop},
		{"IPv4 UDP to 54", udp4to54, pass},
		{"IPv4 TCP to 53", tcp4to53, drop},
		{"IPv4 ICMP", icmp4, pass},
		{"IPv4 with a 4-byte option, UDP to 53", ipv4("10.0.0.1", "10.1.2.3", 17, optsRA, 0, false, udp(1, 53, nil)), drop},
		{"IPv4 with a 4-byte option, UDP to 54", ipv4("10.0.0.1", "10.1.2.3", 17, optsRA, 0, false, udp(1, 54, nil)), pass},
		{"IPv4 with 40 bytes of options, UDP to 5353", ipv4("10.0.0.1", "10.1.2.3", 17, optsMax, 0, false, udp(1, 5353, nil)), drop},
		{"IPv4 with 40 bytes of options, UDP to 53 in the options' place", ipv4("10.0.0.1", "10.1.2.3", 17, optsMax, 0, false, udp(53, 1, nil)), pass},
		{"IPv4 UDP first fragment to 53", ipv4("10.0.0.1", "10.1.2.3", 17, nil, 0, true, udp(1, 53, payload200)), drop},
		// Continuation data that reads like a UDP header to port 53 where
		// a first fragment would have one: not a port, so it passes.
		{"IPv4 UDP later fragment", ipv4("10.0.0.1", "10.1.2.3", 17, nil, 25, false, looksLike53), pass},
		{"IPv4 UDP header cut off", cutUDP4, drop},
		{"IPv6 UDP to 53", udp6to53, drop},
		{"IPv6 UDP to 54", udp6to54, pass},
		{"IPv6 UDP to 53 after four extension headers", udp6Walked, drop},
		{"IPv6 UDP to 53, first fragment", ipv6("fd00::1", "fd00::2", 17, []ext{frag0}, udp(1, 53, payload200)), drop},
		{"IPv6 UDP later fragment", ipv6("fd00::1", "fd00::2", 17, []ext{frag9}, looksLike53), pass},
		{"IPv6 UDP header cut off", cutUDP6, drop},
		{"IPv6 ICMPv6", icmp6, pass},
		{"garbage", garbage, drop},
	})
	checkFilter(t, Filter{AllowPorts: []uint16{80}}, []packetCase{
		{"IPv4 TCP to 80", tcp4to80, pass},
		{"IPv4 TCP to 53", tcp4to53, drop},
		{"IPv4 UDP to 53", udp4to53, drop},
		{"IPv4 ICMP", icmp4, pass},
		{"IPv6 TCP to 80", tcp6to80, pass},
		{"IPv6 UDP to 54", udp6to54, drop},
		{"IPv6 ICMPv6", icmp6, pass},
	})
}

func TestFilterPrefixes(t *testing.T) {
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	to4 := func(dst string) []byte { return ipv4("192.0.2.1", dst, 17, nil, 0, false, udp(1, 2, nil)) }
	to6 := func(dst string) []byte { return ipv6("fd00::1", dst, 17, nil, udp(1, 2, nil)) }
	checkFilter(t, Filter{AllowPrefixes: pfx("10.1.0.0/16", "198.51.100.7/32", "fd00:1:2::/48", "fd00:0:0:1::/63", "2001:db8::1/128")}, []packetCase{
		{"10.1.2.3", to4("10.1.2.3"), pass},
		{"10.1.255.255", to4("10.1.255.255"), pass},
		{"10.2.0.1", to4("10.2.0.1"), drop},
		{"198.51.100.7", to4("198.51.100.7"), pass},
		{"198.51.100.8", to4("198.51.100.8"), drop},
		{"fd00:1:2:3::9", to6("fd00:1:2:3::9"), pass},
		{"fd00:1:3::9", to6("fd00:1:3::9"), drop},
		{"fd00:0:0:1:ffff::", to6("fd00:0:0:1:ffff::"), pass},
		{"fd00:0:0:2::", to6("fd00:0:0:2::"), drop},
		{"2001:db8::1", to6("2001:db8::1"), pass},
		{"2001:db8::2", to6("2001:db8::2"), drop},
		{"garbage", garbage, drop},
	})
	checkFilter(t, Filter{DropPrefixes: pfx("10.1.2.0/24", "fd00:0:0:1::/64")}, []packetCase{
		{"10.1.2.9", to4("10.1.2.9"), drop},
		{"10.1.3.9", to4("10.1.3.9"), pass},
		{"fd00:0:0:1::5", to6("fd00:0:0:1::5"), drop},
		{"fd00:0:0:2::5", to6("fd00:0:0:2::5"), pass},
	})
	// Only IPv4 prefixes allowed: every IPv6 packet is dropped. A /0 drop
	// prefix drops its whole family.
	checkFilter(t, Filter{AllowPrefixes: pfx("0.0.0.0/0"), DropPrefixes: pfx("10.0.0.0/8")}, []packetCase{
		{"192.0.2.9", to4("192.0.2.9"), pass},
		{"10.9.9.9", to4("10.9.9.9"), drop},
		{"fd00::2", to6("fd00::2"), drop},
	})
	checkFilter(t, Filter{DropPrefixes: pfx("::/0")}, []packetCase{
		{"192.0.2.9", to4("192.0.2.9"), pass},
		{"fd00::2", to6("fd00::2"), drop},
	})
	// IPv4-mapped IPv6 prefixes are IPv6 prefixes.
	checkFilter(t, Filter{AllowPrefixes: pfx("::ffff:10.0.0.0/104")}, []packetCase{
		{"::ffff:10.1.1.1", to6("::ffff:10.1.1.1"), pass},
		{"10.1.1.1", to4("10.1.1.1"), drop},
	})
}

func TestFilterSnapLen(t *testing.T) {
	long4 := ipv4("10.0.0.1", "10.1.2.3", 17, nil, 0, false, udp(1, 9, payload200))
	checkFilter(t, Filter{SnapLen: 64}, []packetCase{
		{"IPv4 228 bytes", long4, pass}, // returns 64
		{"IPv4 29 bytes", udp4to53, pass},
		{"garbage passes a SnapLen-only filter", garbage, pass},
		{"empty passes too", empty, pass},
	})
	prog := loadFilter(t, Filter{SnapLen: 64, DropPorts: []uint16{53}})
	if got := run(t, prog, long4); got != 64 {
		t.Errorf("SnapLen 64 with a port rule, 228-byte packet: %d, want 64", got)
	}
	if got := run(t, prog, udp4to53); got != 0 {
		t.Errorf("SnapLen 64 with a port rule, packet to 53: %d, want 0", got)
	}
	// Everything dropped at build time: one instruction pair.
	f := Filter{Family: IPv4Only, AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}}
	checkFilter(t, f, []packetCase{{"IPv4", udp4to53, drop}, {"IPv6", udp6to53, drop}, {"garbage", garbage, drop}})
}

// Random filters and packets, the kernel's verdict against the model's:
// every filter must load (no verifier surprise), no packet may crash it.
func TestFilterAgainstModel(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(n int) int { return rng.IntN(n) }
	prefixPool := []string{"10.0.0.0/8", "10.1.2.0/24", "10.1.2.3/32", "0.0.0.0/0", "192.0.2.0/25",
		"fd00::/8", "fd00::/64", "fd00::2/128", "::/0", "fd00:0:0:0:8000::/65", "::ffff:10.0.0.0/104"}
	dsts4 := []string{"10.1.2.3", "10.1.2.4", "10.9.0.1", "192.0.2.1", "192.0.2.200", "203.0.113.5"}
	dsts6 := []string{"fd00::2", "fd00::3", "fd00::8000:0:0:1", "fd01::1", "2001:db8::1", "::ffff:10.1.2.3"}
	ports := []uint16{53, 80, 443, 5353, 1, 65535}
	protos := []uint8{1, 6, 17, 58, 132}

	randPacket := func() []byte {
		proto := protos[pick(len(protos))]
		var l4 []byte
		switch proto {
		case 6:
			l4 = tcp(uint16(pick(65536)), ports[pick(len(ports))])
		case 17:
			l4 = udp(uint16(pick(65536)), ports[pick(len(ports))], payload200[:pick(60)])
		default:
			l4 = icmpEcho()
		}
		var p []byte
		if pick(2) == 0 {
			var opts []byte
			if pick(3) == 0 {
				opts = optsMax[:4*pick(11)]
			}
			p = ipv4("192.0.2.9", dsts4[pick(len(dsts4))], proto, opts, uint16(pick(3)*50), pick(4) == 0, l4)
		} else {
			var exts []ext
			for range pick(4) {
				exts = append(exts, []ext{hbh, dopts, rthdr, ahdr, frag0, frag9}[pick(6)])
			}
			p = ipv6("fd00::1", dsts6[pick(len(dsts6))], proto, exts, l4)
		}
		switch pick(6) {
		case 0: // cut anywhere
			p = p[:pick(len(p)+1)]
		case 1: // flip a byte
			p[pick(len(p))] ^= byte(1 + pick(255))
		}
		return p
	}

	const filters, packets = 60, 150
	var total, passed int
	for range filters {
		var f Filter
		f.Family = Family(pick(3))
		for range pick(3) {
			f.Protocols = append(f.Protocols, protos[pick(len(protos))])
		}
		for range pick(3) {
			f.AllowPrefixes = append(f.AllowPrefixes, netip.MustParsePrefix(prefixPool[pick(len(prefixPool))]))
		}
		for range pick(3) {
			f.DropPrefixes = append(f.DropPrefixes, netip.MustParsePrefix(prefixPool[pick(len(prefixPool))]))
		}
		for range pick(3) {
			f.AllowPorts = append(f.AllowPorts, ports[pick(len(ports))])
		}
		for range pick(3) {
			f.DropPorts = append(f.DropPorts, ports[pick(len(ports))])
		}
		if pick(3) == 0 {
			f.SnapLen = uint32(1 + pick(100))
		}
		prog, err := f.Program()
		if err != nil {
			t.Fatalf("Filter%+v does not load: %v", f, err)
		}
		for range packets {
			p := randPacket()
			got, want := run(t, prog, p), modelFilter(f, p)
			total++
			if got != 0 {
				passed++
			}
			if got != want {
				t.Errorf("Filter%+v\npacket % x\nkernel %d, model %d", f, p, got, want)
			}
		}
		prog.Close()
		if t.Failed() {
			break
		}
	}
	t.Logf("%d filters, %d packets: %d passed, %d dropped", filters, total, passed, total-passed)
	if passed == 0 || passed == total {
		t.Errorf("the random cases are one-sided (%d of %d passed): they test nothing", passed, total)
	}
}

func TestSteeringAgainstModel(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	for _, seed := range []uint32{0, 0xdeadbeef} {
		prog, err := FlowSteering{Seed: seed}.Program()
		if err != nil {
			t.Fatal(err)
		}
		defer prog.Close()
		cases := map[string][]byte{
			"IPv4 UDP":                    udp4to53,
			"IPv4 TCP":                    tcp4to80,
			"IPv4 ICMP":                   icmp4,
			"IPv4 options":                ipv4("10.0.0.1", "10.1.2.3", 17, optsMax, 0, false, udp(1, 53, nil)),
			"IPv4 first fragment":         ipv4("10.0.0.1", "10.1.2.3", 17, nil, 0, true, udp(1, 53, payload200)),
			"IPv4 later fragment":         ipv4("10.0.0.1", "10.1.2.3", 17, nil, 25, false, payload200),
			"IPv4 UDP cut":                cutUDP4,
			"IPv6 UDP":                    udp6to53,
			"IPv6 UDP after ext":          udp6Walked,
			"IPv6 first fragment":         ipv6("fd00::1", "fd00::2", 17, []ext{frag0}, udp(1, 53, payload200)),
			"IPv6 later fragment":         ipv6("fd00::1", "fd00::2", 17, []ext{frag9}, payload200),
			"IPv6 nine extension headers": ipv6("fd00::1", "fd00::2", 17, []ext{hbh, dopts, dopts, dopts, dopts, dopts, dopts, dopts, dopts}, udp(1, 2, nil)),
			"IPv6 cut":                    cutUDP6,
			"garbage":                     garbage,
			"empty":                       empty,
			"short IPv4":                  shortV4,
			"short IPv6":                  shortV6,
		}
		for name, p := range cases {
			if got, want := run(t, prog, p), modelHash(seed, p); got != want {
				t.Errorf("seed %#x, %s: kernel %#x, model %#x", seed, name, got, want)
			}
		}
		// The ports matter for TCP and UDP, and the fragments of one
		// datagram agree with each other.
		if run(t, prog, udp4to53) == run(t, prog, udp4to54) {
			t.Errorf("seed %#x: UDP to ports 53 and 54 hash alike", seed)
		}
		first := ipv4("10.0.0.1", "10.1.2.3", 17, nil, 0, true, udp(1, 53, payload200))
		later := ipv4("10.0.0.1", "10.1.2.3", 17, nil, 25, false, payload200)
		if a, b := run(t, prog, first), run(t, prog, later); a != b {
			t.Errorf("seed %#x: IPv4 fragments of one datagram hash to %#x and %#x", seed, a, b)
		}
		first6 := ipv6("fd00::1", "fd00::2", 17, []ext{frag0}, udp(1, 53, payload200))
		later6 := ipv6("fd00::1", "fd00::2", 17, []ext{frag9}, payload200)
		if a, b := run(t, prog, first6), run(t, prog, later6); a != b {
			t.Errorf("seed %#x: IPv6 fragments of one datagram hash to %#x and %#x", seed, a, b)
		}
	}
	if a, b := modelHash(0, udp4to53), modelHash(1, udp4to53); a == b {
		t.Errorf("the seed does not change the hash")
	}
}
