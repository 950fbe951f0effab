package vnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/google/gopacket/layers"
)

func clonePackets(pkts [][]byte) [][]byte {
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		out[i] = append([]byte(nil), p...)
	}
	return out
}

// checkItems checks the invariants every Coalesce result has, then splits
// each Item back and compares with the input packets.
func checkItems(t testing.TB, c *Coalescer, pkts [][]byte, off int, items []Item) {
	t.Helper()
	seen := make([]bool, len(pkts))
	prev := -1
	for k, it := range items {
		if len(it.Index) == 0 || it.Index[0] <= prev {
			t.Fatalf("item %d: Index %v not in order of first packets", k, it.Index)
		}
		prev = it.Index[0]
		if !slices.IsSorted(it.Index) {
			t.Fatalf("item %d: Index %v reorders packets", k, it.Index)
		}
		if len(it.Vec) > c.Config().MaxParts {
			t.Fatalf("item %d: %d slices, MaxParts %d", k, len(it.Vec), c.Config().MaxParts)
		}
		var want [][]byte
		for _, i := range it.Index {
			if seen[i] {
				t.Fatalf("packet %d in two items", i)
			}
			seen[i] = true
			want = append(want, pkts[i][off:])
		}
		if it.Packets() == 1 {
			if it.Header != (Header{}) || !bytes.Equal(flatten(it)[HeaderLen:], want[0]) {
				t.Fatalf("item %d: single packet not passed through", k)
			}
			continue
		}
		got := splitItem(t, it)
		for i := range got {
			verifyChecksums(t, got[i])
		}
		mustEqualPackets(t, got, want)
	}
	for i, s := range seen {
		if !s {
			t.Fatalf("packet %d in no item", i)
		}
	}
}

func groups(items []Item) [][]int {
	var g [][]int
	for _, it := range items {
		g = append(g, slices.Clone(it.Index))
	}
	return g
}

func TestCoalesceRoundTrip(t *testing.T) {
	const off = 16
	cases := []struct {
		name  string
		pkts  func(t *testing.T) [][]byte
		parts int
		want  []int // packets per item
		gso   uint8
	}{
		{"tcp4 timestamps", func(t *testing.T) [][]byte { return tcp4Flow().segments(t, 70, 1448, 0, true) }, 0, []int{45, 25}, GSOTCPv4},
		{"tcp4 short last", func(t *testing.T) [][]byte { return tcp4Flow().segments(t, 5, 1448, 33, true) }, 0, []int{5}, GSOTCPv4},
		{"tcp6", func(t *testing.T) [][]byte { return tcp6Flow().segments(t, 40, 1428, 1, false) }, 0, []int{40}, GSOTCPv6},
		{"tcp4 64 KiB bound", func(t *testing.T) [][]byte { return tcp4Flow().segments(t, 50, 1448, 0, false) }, 65, []int{45, 5}, GSOTCPv4},
		{"udp4", func(t *testing.T) [][]byte { return udp4Flow().datagrams(t, 64, 1200, 0) }, 0, []int{54, 10}, GSOUDPL4},
		{"udp6 short last", func(t *testing.T) [][]byte { return udp6Flow().datagrams(t, 10, 1232, 5) }, 0, []int{10}, GSOUDPL4},
		{"udp4 64 segments", func(t *testing.T) [][]byte { return udp4Flow().datagrams(t, 70, 100, 0) }, 200, []int{64, 6}, GSOUDPL4},
		{"max parts 3", func(t *testing.T) [][]byte { return tcp4Flow().segments(t, 5, 100, 0, false) }, 3, []int{2, 2, 1}, GSOTCPv4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pkts := withRoom(tc.pkts(t), off)
			orig := clonePackets(pkts)
			c := NewCoalescer(Config{Offloads: allOffloads, MaxParts: tc.parts})
			items, err := c.Coalesce(pkts, off)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, it := range items {
				got = append(got, it.Packets())
				if it.Packets() > 1 {
					if it.Header.GSOType != tc.gso || it.Header.Flags != FlagNeedsCsum {
						t.Fatalf("header %+v", it.Header)
					}
					if int(it.Header.GSOSize) != len(pkts[it.Index[0]])-off-int(it.Header.HdrLen) {
						t.Fatalf("GSOSize %d", it.Header.GSOSize)
					}
					if it.Len > 65535 {
						t.Fatalf("item of %d bytes", it.Len)
					}
					if _, err := Inspect(flatten(it)[HeaderLen:], it.Header); err != nil {
						t.Fatalf("item does not pass Inspect: %v", err)
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("packets per item %v, want %v", got, tc.want)
			}
			checkItems(t, c, pkts, off, items)
			for i := range pkts {
				if !bytes.Equal(pkts[i], orig[i]) {
					t.Fatalf("input buffer %d modified", i)
				}
			}
		})
	}
}

// TestCoalesceOfSplit: a super-packet in the form the kernel produces,
// split and coalesced again, comes back byte for byte, header included.
func TestCoalesceOfSplit(t *testing.T) {
	for _, f := range []flow{tcp4Flow(), tcp6Flow(), udp4Flow(), udp6Flow()} {
		for _, fl := range []tcpFlags{{}, {psh: true}, {fin: true, psh: true}, {cwr: true, ece: true}} {
			if f.udp && fl != (tcpFlags{}) {
				continue
			}
			sp, h := super(t, f, fl, payloadBytes(77, 30*1300+17), 1300)
			out, sizes := buffers(40, 1600)
			n, err := Split(sp, h, out, sizes, 0)
			if err != nil || n != 31 {
				t.Fatalf("split: %d %v", n, err)
			}
			pkts := make([][]byte, n)
			for i := range n {
				pkts[i] = out[i][:sizes[i]]
			}
			c := NewCoalescer(Config{Offloads: allOffloads})
			items, err := c.Coalesce(pkts, 0)
			if err != nil || len(items) != 1 {
				t.Fatalf("coalesce: %d items, %v", len(items), err)
			}
			b := flatten(items[0])
			if items[0].Header != h {
				t.Fatalf("header %+v, want %+v", items[0].Header, h)
			}
			if !bytes.Equal(b[HeaderLen:], sp) {
				t.Fatalf("super-packet differs:\n got %x\nwant %x", b[HeaderLen:HeaderLen+80], sp[:80])
			}
		}
	}
}

func TestCoalesceRules(t *testing.T) {
	type tc struct {
		name string
		off  Offloads
		pkts func(t *testing.T) [][]byte
		want [][]int
	}
	two := [][]int{{0}, {1}}
	one := [][]int{{0, 1}}
	pair := func(a, b flow, fa, fb tcpFlags, seqGap int, sizeB int) func(t *testing.T) [][]byte {
		return func(t *testing.T) [][]byte {
			p0 := a.build(t, 0, a.seq, fa, payloadBytes(1, 1000))
			p1 := b.build(t, 1, a.seq+1000+uint32(seqGap), fb, payloadBytes(2, sizeB))
			return [][]byte{p0, p1}
		}
	}
	base := tcp4Flow()
	mod := func(fn func(*flow)) flow { f := base; fn(&f); return f }
	corrupt := func(gen func(t *testing.T) [][]byte, i, at int) func(t *testing.T) [][]byte {
		return func(t *testing.T) [][]byte {
			p := gen(t)
			p[i][len(p[i])-at] ^= 0x5a
			return p
		}
	}
	ok := pair(base, base, tcpFlags{}, tcpFlags{}, 0, 1000)
	u := udp4Flow()
	upair := func(a, b flow, sizeB int) func(t *testing.T) [][]byte {
		return func(t *testing.T) [][]byte {
			return [][]byte{a.build(t, 0, 0, tcpFlags{}, payloadBytes(1, 1000)), b.build(t, 1, 0, tcpFlags{}, payloadBytes(2, sizeB))}
		}
	}
	ipOpt := []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	cases := []tc{
		{"adjacent", allOffloads, ok, one},
		{"different timestamp", allOffloads, pair(base, mod(func(f *flow) { f.opts = tsOpts(1112, 2222) }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"different options length", allOffloads, pair(base, mod(func(f *flow) { f.opts = nil }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"sequence gap", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{}, 1, 1000), two},
		{"sequence overlap", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{}, -1, 1000), two},
		{"SYN", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{syn: true}, 0, 1000), two},
		{"RST", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{rst: true}, 0, 1000), two},
		{"URG", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{urg: true}, 0, 1000), two},
		{"ECE differs", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{ece: true}, 0, 1000), two},
		{"CWR on the second", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{cwr: true}, 0, 1000), two},
		{"CWR on the first", allOffloads, pair(base, base, tcpFlags{cwr: true}, tcpFlags{}, 0, 1000), one},
		{"PSH on the first", allOffloads, pair(base, base, tcpFlags{psh: true}, tcpFlags{}, 0, 1000), two},
		{"FIN on the first", allOffloads, pair(base, base, tcpFlags{fin: true}, tcpFlags{}, 0, 1000), two},
		{"PSH on the last", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{psh: true}, 0, 1000), one},
		{"FIN on the last", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{fin: true, psh: true}, 0, 1000), one},
		{"different TTL", allOffloads, pair(base, mod(func(f *flow) { f.ttl = 63 }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"different TOS", allOffloads, pair(base, mod(func(f *flow) { f.tos = 4 }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"different DF", allOffloads, pair(base, mod(func(f *flow) { f.df = false }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"different ack", allOffloads, pair(base, mod(func(f *flow) { f.ack++ }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"different window", allOffloads, pair(base, mod(func(f *flow) { f.window++ }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"ID jump", allOffloads, pair(base, mod(func(f *flow) { f.id += 5 }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"fixed ID with DF", allOffloads, pair(mod(func(f *flow) { f.fixedID = true }), mod(func(f *flow) { f.fixedID = true }), tcpFlags{}, tcpFlags{}, 0, 1000), one},
		{"fixed ID without DF", allOffloads, pair(mod(func(f *flow) { f.fixedID, f.df = true, false }), mod(func(f *flow) { f.fixedID, f.df = true, false }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"IPv4 options", allOffloads, pair(mod(func(f *flow) { f.ipOpts = ipOpt }), mod(func(f *flow) { f.ipOpts = ipOpt }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"IPv6 extension header", allOffloads, pair(func() flow { f := tcp6Flow(); f.v6ext = true; return f }(), func() flow { f := tcp6Flow(); f.v6ext = true; return f }(), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"IPv6 flow label", allOffloads, pair(tcp6Flow(), func() flow { f := tcp6Flow(); f.flowLabel++; return f }(), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"IPv6 hop limit", allOffloads, pair(tcp6Flow(), func() flow { f := tcp6Flow(); f.ttl--; return f }(), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"IPv6 adjacent", allOffloads, pair(tcp6Flow(), tcp6Flow(), tcpFlags{}, tcpFlags{}, 0, 1000), one},
		{"larger second", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{}, 0, 1001), two},
		{"empty second", allOffloads, pair(base, base, tcpFlags{}, tcpFlags{}, 0, 0), two},
		{"other port", allOffloads, pair(base, mod(func(f *flow) { f.sport++ }), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"bad checksum on the second", allOffloads, corrupt(ok, 1, 1), two},
		{"bad checksum on the first", allOffloads, corrupt(ok, 0, 1), two},
		{"bad IPv4 header checksum", allOffloads, func(t *testing.T) [][]byte { p := ok(t); p[1][11] ^= 1; return p }, two},
		{"no TCP4 offload", Offloads{TCP6: true, UDP: true}, ok, two},
		{"no TCP6 offload", Offloads{TCP4: true, UDP: true}, pair(tcp6Flow(), tcp6Flow(), tcpFlags{}, tcpFlags{}, 0, 1000), two},
		{"udp", allOffloads, upair(u, u, 1000), one},
		{"udp shorter second", allOffloads, upair(u, u, 10), one},
		{"udp larger second", allOffloads, upair(u, u, 1001), two},
		{"udp no offload", Offloads{TCP4: true, TCP6: true}, upair(u, u, 1000), two},
		{"udp different TTL", allOffloads, upair(u, func() flow { f := u; f.ttl = 1; return f }(), 1000), two},
		{"udp zero checksum", allOffloads, func(t *testing.T) [][]byte {
			p := upair(u, u, 1000)(t)
			p[0][26], p[0][27], p[1][26], p[1][27] = 0, 0, 0, 0
			return p
		}, two},
		{"udp bad checksum", allOffloads, corrupt(upair(u, u, 1000), 1, 3), two},
		{"udp length lies", allOffloads, func(t *testing.T) [][]byte {
			p := upair(u, u, 1000)(t)
			p[1][25]--
			return p
		}, two},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pkts := c.pkts(t)
			co := NewCoalescer(Config{Offloads: c.off})
			items, err := co.Coalesce(pkts, 0)
			if err != nil {
				t.Fatal(err)
			}
			if g := groups(items); !slices.EqualFunc(g, c.want, slices.Equal[[]int]) {
				t.Fatalf("items %v, want %v", g, c.want)
			}
			if c.name == "fixed ID with DF" {
				// The kernel re-segments with incrementing IDs: the
				// one rewrite Coalesce makes (atomic datagrams, RFC 6864).
				got := splitItem(t, items[0])
				if id := binary.BigEndian.Uint16(got[1][4:]); id != base.id+1 {
					t.Fatalf("ID %#x", id)
				}
				return
			}
			checkItems(t, co, pkts, 0, items)
			if c.name == "CWR on the first" && items[0].Header.GSOType != GSOTCPv4|GSOECN {
				t.Fatalf("GSO type %#x, want TCPv4|ECN", items[0].Header.GSOType)
			}
		})
	}
}

func TestCoalesceOrder(t *testing.T) {
	a, b := tcp4Flow(), udp4Flow()
	c6 := tcp6Flow()
	as := a.segments(t, 6, 1000, 0, false)
	bs := b.datagrams(t, 6, 500, 0)
	cs := c6.segments(t, 6, 1200, 0, false)
	var pkts [][]byte
	for i := range 6 {
		pkts = append(pkts, as[i], bs[i], cs[i])
	}
	co := NewCoalescer(Config{Offloads: allOffloads})
	items, err := co.Coalesce(pkts, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{0, 3, 6, 9, 12, 15}, {1, 4, 7, 10, 13, 16}, {2, 5, 8, 11, 14, 17}}
	if g := groups(items); !slices.EqualFunc(g, want, slices.Equal[[]int]) {
		t.Fatalf("interleaved flows: %v", g)
	}
	checkItems(t, co, pkts, 0, items)

	// A short segment, or PSH, ends an item; what follows starts another.
	short := a.segments(t, 2, 1000, 500, false)
	next := a.build(t, 2, a.seq+1500, tcpFlags{}, payloadBytes(3, 1000))
	items, _ = co.Coalesce([][]byte{short[0], short[1], next}, 0)
	if g := groups(items); !slices.EqualFunc(g, [][]int{{0, 1}, {2}}, slices.Equal[[]int]) {
		t.Fatalf("short middle: %v", g)
	}
	psh := a.segments(t, 2, 1000, 0, true)
	next = a.build(t, 2, a.seq+2000, tcpFlags{}, payloadBytes(3, 1000))
	items, _ = co.Coalesce([][]byte{psh[0], psh[1], next}, 0)
	if g := groups(items); !slices.EqualFunc(g, [][]int{{0, 1}, {2}}, slices.Equal[[]int]) {
		t.Fatalf("PSH middle: %v", g)
	}

	// UDP joins only its flow's latest item: the third datagram matches
	// the first but must not overtake the second.
	d := b.datagrams(t, 3, 500, 0)
	odd := b
	odd.ttl = 3
	d[1] = odd.build(t, 1, 0, tcpFlags{}, payloadBytes(5, 500))
	items, _ = co.Coalesce(d, 0)
	if g := groups(items); !slices.EqualFunc(g, [][]int{{0}, {1}, {2}}, slices.Equal[[]int]) {
		t.Fatalf("udp latest item only: %v", g)
	}

	// A non-mergeable packet of the flow (here a pure ACK) ends its item.
	ack := a.build(t, 1, a.seq+1000, tcpFlags{}, nil)
	s3 := a.segments(t, 3, 1000, 0, false)
	items, _ = co.Coalesce([][]byte{s3[0], ack, s3[1], s3[2]}, 0)
	if g := groups(items); !slices.EqualFunc(g, [][]int{{0}, {1}, {2, 3}}, slices.Equal[[]int]) {
		t.Fatalf("pure ACK in the middle: %v", g)
	}

	// A later IPv4 fragment names no ports: it closes every open item.
	frag := b.build(t, 1, 0, tcpFlags{}, payloadBytes(1, 100))
	frag[6], frag[7] = 0, 10 // offset 80 bytes
	frag[10], frag[11] = 0, 0
	binary.BigEndian.PutUint16(frag[10:], ^Checksum(frag[:20], 0))
	items, _ = co.Coalesce([][]byte{d[0], frag, d[2]}, 0)
	if g := groups(items); !slices.EqualFunc(g, [][]int{{0}, {1}, {2}}, slices.Equal[[]int]) {
		t.Fatalf("fragment in the middle: %v", g)
	}

	// Not IP at all, and ICMP: single items that close nothing.
	icmp := append([]byte(nil), as[1]...)
	icmp[9] = 1
	items, _ = co.Coalesce([][]byte{as[0], {0x00, 0x01}, icmp, {}, as[1]}, 0)
	if g := groups(items); !slices.EqualFunc(g, [][]int{{0, 4}, {1}, {2}, {3}}, slices.Equal[[]int]) {
		t.Fatalf("other packets: %v", g)
	}
}

func TestCoalesceErrors(t *testing.T) {
	co := NewCoalescer(Config{Offloads: allOffloads})
	if _, err := co.Coalesce([][]byte{make([]byte, 40)}, -1); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if _, err := co.Coalesce([][]byte{make([]byte, 40), make([]byte, 3)}, 4); !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
	if items, err := co.Coalesce(nil, 0); err != nil || len(items) != 0 {
		t.Fatal(items, err)
	}
}

func TestAllocations(t *testing.T) {
	f := tcp4Flow()
	pkts := withRoom(f.segments(t, 64, 1448, 0, false), 16)
	co := NewCoalescer(Config{Offloads: allOffloads})
	if _, err := co.Coalesce(pkts, 16); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = co.Coalesce(pkts, 16) }); a != 0 {
		t.Fatalf("Coalesce allocates %v times per call", a)
	}
	sp, h := super(t, f, tcpFlags{}, payloadBytes(1, 45*1448), 1448)
	out, sizes := buffers(64, 2048)
	if a := testing.AllocsPerRun(100, func() { _, _ = Split(sp, h, out, sizes, 16) }); a != 0 {
		t.Fatalf("Split allocates %v times per call", a)
	}
}

func TestPrepareForward(t *testing.T) {
	sp, h := super(t, tcp4Flow(), tcpFlags{}, payloadBytes(1, 5000), 1000)
	hint := h
	hint.HdrLen = 1500 // skb_headlen, as the kernel fills it
	got, err := PrepareForward(sp, hint, Offloads{TCP4: true})
	if err != nil || got != h {
		t.Fatalf("%+v %v, want %+v", got, err, h)
	}
	if _, err := PrepareForward(sp, h, Offloads{TCP6: true, UDP: true}); !errors.Is(err, ErrNotNegotiated) {
		t.Fatal(err)
	}
	u, hu := super(t, udp6Flow(), tcpFlags{}, payloadBytes(1, 5000), 1000)
	if _, err := PrepareForward(u, hu, Offloads{TCP4: true, TCP6: true}); !errors.Is(err, ErrNotNegotiated) {
		t.Fatal(err)
	}
	if _, err := PrepareForward(u, hu, Offloads{UDP: true}); err != nil {
		t.Fatal(err)
	}
	hu.Flags = 0
	if _, err := PrepareForward(u, hu, Offloads{UDP: true}); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if _, err := PrepareForward(sp[:100], h, Offloads{TCP4: true}); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	single := Header{Flags: FlagNeedsCsum, CsumStart: 20, CsumOffset: 16}
	if got, err := PrepareForward(sp[:1000], single, Offloads{}); err != nil || got != single {
		t.Fatal(got, err)
	}
}

// insertExt puts an 8-byte IPv6 extension header of type typ (the fragment
// header's fields from frag) in front of the transport header.
func insertExt(p []byte, typ uint8, frag uint16) []byte {
	q := append([]byte(nil), p[:40]...)
	ext := []byte{p[6], 0, 0, 0, 0, 0, 0, 1}
	if typ == 51 { // AH: length in 4-byte units minus 2
		ext[1] = 0
	} else if typ == 44 {
		binary.BigEndian.PutUint16(ext[2:], frag)
	}
	q = append(q, ext...)
	q = append(q, p[40:]...)
	q[6] = typ
	binary.BigEndian.PutUint16(q[4:], uint16(len(q)-40))
	return q
}

func TestCoalesceIPv6ExtensionHeaders(t *testing.T) {
	u := udp6Flow()
	d := u.datagrams(t, 3, 300, 0)
	co := NewCoalescer(Config{Offloads: allOffloads})
	for _, tc := range []struct {
		name   string
		middle []byte
		want   [][]int
	}{
		{"later fragment", insertExt(d[1], 44, 8<<3), [][]int{{0}, {1}, {2}}},
		{"first fragment", insertExt(d[1], 44, 1), [][]int{{0}, {1}, {2}}},
		{"AH", insertExt(d[1], 51, 0), [][]int{{0}, {1}, {2}}},
		{"hop-by-hop", insertExt(d[1], 0, 0), [][]int{{0}, {1}, {2}}},
		{"routing", insertExt(d[1], 43, 0), [][]int{{0}, {1}, {2}}},
		{"plain", d[1], [][]int{{0, 1, 2}}},
		{"later fragment of another flow's protocol", func() []byte {
			p := insertExt(d[1], 44, 8<<3)
			p[40] = 58 // ICMPv6: cannot be in an open item
			return p
		}(), [][]int{{0, 2}, {1}}},
		{"ESP", func() []byte { p := append([]byte(nil), d[1]...); p[6] = 50; return p }(), [][]int{{0, 2}, {1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := co.Coalesce([][]byte{d[0], tc.middle, d[2]}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if g := groups(items); !slices.EqualFunc(g, tc.want, slices.Equal[[]int]) {
				t.Fatalf("items %v, want %v", g, tc.want)
			}
		})
	}
}

// Packets too short or too odd to parse pass through alone, and never
// panic.
func TestCoalesceOddPackets(t *testing.T) {
	a := tcp4Flow().segments(t, 2, 500, 0, false)
	u6 := udp6Flow().datagrams(t, 1, 100, 0)[0]
	odd := [][]byte{
		{0x45}, a[0][:19], a[0][:22],
		func() []byte { p := append([]byte(nil), a[0]...); p[0] = 0x44; return p }(),
		func() []byte { p := append([]byte(nil), a[0]...); p[32] = 0x40; return p }(), // TCP data offset 4
		func() []byte { p := append([]byte(nil), a[0]...); p[32] = 0xf0; return p }(), // TCP options past the end
		func() []byte { p := append([]byte(nil), a[0][:40]...); p[2], p[3] = 0, 40; return p }(),
		u6[:39], u6[:42], insertExt(u6, 60, 0)[:46], insertExt(u6, 44, 8)[:44],
		func() []byte { p := append([]byte(nil), u6[:44]...); p[4], p[5] = 0, 4; return p }(), // UDP header cut
	}
	for i, p := range odd {
		co := NewCoalescer(Config{Offloads: allOffloads})
		items, err := co.Coalesce([][]byte{a[0], p, a[1]}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if slices.Contains(it.Index, 1) && it.Packets() != 1 {
				t.Fatalf("odd packet %d merged: %v", i, groups(items))
			}
		}
	}
}

// A writev limit of 32 parts (what the loop allowed before) gives items
// of 31 packets.
func TestCoalesceMaxParts32(t *testing.T) {
	pkts := withRoom(tcp4Flow().segments(t, 70, 1448, 0, true), 16)
	items, err := NewCoalescer(Config{Offloads: allOffloads, MaxParts: 32}).Coalesce(pkts, 16)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, it := range items {
		got = append(got, it.Packets())
	}
	if !slices.Equal(got, []int{31, 31, 8}) {
		t.Fatalf("packets per item %v, want [31 31 8]", got)
	}
}

// MaxSegments raises the per-Item packet bound up to MaxSegmentsLimit.
func TestCoalesceMaxSegments(t *testing.T) {
	for _, tc := range []struct {
		segs int
		want []int
	}{{0, []int{64, 64, 2}}, {128, []int{128, 2}}, {1000, []int{128, 2}}} {
		pkts := withRoom(udp4Flow().datagrams(t, 130, 64, 0), 16)
		items, err := NewCoalescer(Config{Offloads: allOffloads, MaxSegments: tc.segs}).Coalesce(pkts, 16)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, it := range items {
			got = append(got, it.Packets())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("MaxSegments %d: packets per item %v, want %v", tc.segs, got, tc.want)
		}
	}
}
