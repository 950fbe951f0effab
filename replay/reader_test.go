package replay

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

// realDirPath is where the third-party captures are, relative to this
// package: in the repository, with their SOURCES.md.
const realDirPath = "../testdata/pcaps/real"

func TestStripLink(t *testing.T) {
	v4 := udpPkt(t, tA4, tB4, 1, 2, "four")
	v6 := udpPkt(t, tA6, tB6, 1, 2, "six")
	arp := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	le := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	sll := func(proto uint16, p []byte) []byte {
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[14:], proto)
		return append(h, p...)
	}
	sll2 := func(proto uint16, p []byte) []byte {
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], proto)
		return append(h, p...)
	}
	vlan := func(tpid uint16, vid uint16, inner []byte) []byte {
		// Put a tag between the MAC addresses and the inner EtherType.
		f := append([]byte(nil), inner[:12]...)
		f = binary.BigEndian.AppendUint16(f, tpid)
		f = binary.BigEndian.AppendUint16(f, vid)
		return append(f, inner[12:]...)
	}
	eth4 := ethFrame(t, layers.EthernetTypeIPv4, v4)
	padded := append(append([]byte(nil), eth4...), make([]byte, 60-len(eth4))...)

	tests := []struct {
		name string
		lt   LinkType
		in   []byte
		want []byte
		skip SkipReason
	}{
		{"raw v4", linkTypeRaw, v4, v4, skipNone},
		{"raw v6", linkTypeRaw, v6, v6, skipNone},
		{"raw version 0 is still written", linkTypeRaw, []byte{0x05, 1, 2}, []byte{0x05, 1, 2}, skipNone},
		{"raw empty", linkTypeRaw, nil, nil, skipEmpty},
		{"ipv4 link type", linkTypeIPv4, v4, v4, skipNone},
		{"ipv6 packet under ipv4 link type", linkTypeIPv4, v6, nil, skipWrongFamily},
		{"ipv6 link type", linkTypeIPv6, v6, v6, skipNone},
		{"ipv4 packet under ipv6 link type", linkTypeIPv6, v4, nil, skipWrongFamily},
		{"ethernet v4", linkTypeEthernet, eth4, v4, skipNone},
		{"ethernet v6", linkTypeEthernet, ethFrame(t, layers.EthernetTypeIPv6, v6), v6, skipNone},
		{"ethernet padding cut", linkTypeEthernet, padded, v4, skipNone},
		{"ethernet arp", linkTypeEthernet, ethFrame(t, layers.EthernetTypeARP, arp), nil, skipNonIP},
		{"ethernet 802.3 length", linkTypeEthernet, cat(make([]byte, 12), []byte{0, 46}, make([]byte, 46)), nil, skipNonIP},
		{"ethernet short", linkTypeEthernet, make([]byte, 13), nil, skipShort},
		{"ethernet header only", linkTypeEthernet, ethFrame(t, layers.EthernetTypeIPv6, nil)[:14], nil, skipEmpty},
		{"802.1Q", linkTypeEthernet, vlan(0x8100, 42, eth4), v4, skipNone},
		{"802.1ad over 802.1Q", linkTypeEthernet, vlan(0x88a8, 7, vlan(0x8100, 42, eth4)), v4, skipNone},
		{"802.1Q cut in the tag", linkTypeEthernet, vlan(0x8100, 42, eth4)[:15], nil, skipShort},
		{"sll v4", linkTypeLinuxSLL, sll(0x0800, v4), v4, skipNone},
		{"sll v6", linkTypeLinuxSLL, sll(0x86dd, v6), v6, skipNone},
		{"sll arp", linkTypeLinuxSLL, sll(0x0806, arp), nil, skipNonIP},
		{"sll short", linkTypeLinuxSLL, make([]byte, 15), nil, skipShort},
		{"sll with a long address length", linkTypeLinuxSLL, func() []byte { f := sll(0x0800, v4); f[5] = 200; return f }(), v4, skipNone},
		{"sll2 v6", linkTypeSLL2, sll2(0x86dd, v6), v6, skipNone},
		{"sll2 lldp", linkTypeSLL2, sll2(0x88cc, arp), nil, skipNonIP},
		{"sll2 short", linkTypeSLL2, make([]byte, 19), nil, skipShort},
		{"null inet little-endian", linkTypeNull, cat(le(2), v4), v4, skipNone},
		{"null inet big-endian", linkTypeNull, cat(be(2), v4), v4, skipNone},
		{"null inet6 linux", linkTypeNull, cat(le(10), v6), v6, skipNone},
		{"null inet6 bsd", linkTypeNull, cat(le(24), v6), v6, skipNone},
		{"null inet6 freebsd", linkTypeNull, cat(be(28), v6), v6, skipNone},
		{"null inet6 darwin", linkTypeNull, cat(le(30), v6), v6, skipNone},
		{"null other family", linkTypeNull, cat(le(7), v6), nil, skipNonIP},
		{"null short", linkTypeNull, []byte{2, 0}, nil, skipShort},
		{"loop inet", linkTypeLoop, cat(be(2), v4), v4, skipNone},
		{"unsupported", LinkType(105), v4, nil, skipLinkType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skip := stripLink(tc.lt, tc.in)
			if skip != tc.skip || !bytes.Equal(got, tc.want) {
				t.Errorf("StripLink(%v) = %x, %q; want %x, %q", tc.lt, got, skip, tc.want, tc.skip)
			}
			if tc.skip == skipNone && !tc.lt.supported() {
				t.Errorf("%v not Supported but decoded", tc.lt)
			}
		})
	}
}

func TestLinkTypeString(t *testing.T) {
	for lt, want := range map[LinkType]string{linkTypeEthernet: "EN10MB", linkTypeSLL2: "LINUX_SLL2", 147: "LINKTYPE_147"} {
		if got := lt.String(); got != want {
			t.Errorf("%d: %q, want %q", uint16(lt), got, want)
		}
	}
}

func readAll(t *testing.T, b []byte) ([]record, *captureReader) {
	t.Helper()
	r, err := newReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var ps []record
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return ps, r
		}
		if err != nil {
			t.Fatalf("Next after %d records: %v", len(ps), err)
		}
		ps = append(ps, p)
	}
}

// bigEndianPcap re-encodes a little-endian microsecond pcap as big-endian.
func bigEndianPcap(le []byte) []byte {
	out := make([]byte, 0, len(le))
	sw32 := func(b []byte) []byte { return binary.BigEndian.AppendUint32(nil, binary.LittleEndian.Uint32(b)) }
	sw16 := func(b []byte) []byte { return binary.BigEndian.AppendUint16(nil, binary.LittleEndian.Uint16(b)) }
	out = append(out, sw32(le[0:4])...)
	out = append(out, sw16(le[4:6])...)
	out = append(out, sw16(le[6:8])...)
	for i := 8; i < 24; i += 4 {
		out = append(out, sw32(le[i:i+4])...)
	}
	for off := 24; off < len(le); {
		n := int(binary.LittleEndian.Uint32(le[off+8:]))
		for i := 0; i < 16; i += 4 {
			out = append(out, sw32(le[off+i:off+i+4])...)
		}
		out = append(out, le[off+16:off+16+n]...)
		off += 16 + n
	}
	return out
}

func TestReaderFormats(t *testing.T) {
	v4 := udpPkt(t, tA4, tB4, 1, 2, "four")
	v6 := udpPkt(t, tA6, tB6, 1, 2, "six")
	eth := pcapOf(t, layers.LinkTypeEthernet, ethFrame(t, layers.EthernetTypeIPv4, v4), ethFrame(t, layers.EthernetTypeARP, make([]byte, 28)), ethFrame(t, layers.EthernetTypeIPv6, v6))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(eth)
	zw.Close()

	// pcapng with two interfaces whose link types do not fit in 8 bits or
	// differ, and a second section that starts the interface list afresh.
	sll2 := func(proto uint16, p []byte) []byte {
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], proto)
		return append(h, p...)
	}
	tsres := []byte{9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0} // if_tsresol = 9 (ns), end of options
	ng := bytes.Join([][]byte{
		ngSection(), ngIDBlock(276, tsres), ngIDBlock(101, tsres),
		ngEPBlock(0, 1_700_000_000_000_000_123, sll2(0x86dd, v6)),
		ngEPBlock(1, 1_700_000_001_000_000_000, v4),
		ngSection(), ngIDBlock(113, nil),
		ngEPBlock(0, 1_700_000_002_000_000, append(append(make([]byte, 14), 0x08, 0x00), v4...)),
	}, nil)

	type want struct {
		lt   LinkType
		ip   []byte
		skip SkipReason
	}
	ethWant := []want{{linkTypeEthernet, v4, ""}, {linkTypeEthernet, nil, skipNonIP}, {linkTypeEthernet, v6, ""}}
	tests := []struct {
		name   string
		in     []byte
		format Format
		want   []want
	}{
		{"pcap little-endian", eth, formatPcap, ethWant},
		{"pcap big-endian", bigEndianPcap(eth), formatPcap, ethWant},
		{"pcap gzip", gz.Bytes(), formatPcap, ethWant},
		{"pcapng mixed link types", ng, formatPcapNG, []want{{linkTypeSLL2, v6, ""}, {linkTypeRaw, v4, ""}, {linkTypeLinuxSLL, v4, ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, r := readAll(t, tc.in)
			if r.Format() != tc.format {
				t.Errorf("format %v, want %v", r.Format(), tc.format)
			}
			if len(ps) != len(tc.want) {
				t.Fatalf("%d records, want %d", len(ps), len(tc.want))
			}
			for i, w := range tc.want {
				p := ps[i]
				if p.Number != i+1 || p.LinkType != w.lt || p.Skip != w.skip || !bytes.Equal(p.IP, w.ip) {
					t.Errorf("record %d: number %d, %v, skip %q, ip %x; want %v, %q, %x", i+1, p.Number, p.LinkType, p.Skip, p.IP, w.lt, w.skip, w.ip)
				}
				if p.Timestamp.Before(time.Unix(1_700_000_000, 0)) || p.Truncated() {
					t.Errorf("record %d: timestamp %v, truncated %v", i+1, p.Timestamp, p.Truncated())
				}
			}
			if tc.format == formatPcapNG {
				if got := ps[0].Timestamp.UnixNano(); got != 1_700_000_000_000_000_123 {
					t.Errorf("nanosecond timestamp %d", got)
				}
			} else if r.Skipped()[skipNonIP] != 1 || r.LinkType() != linkTypeEthernet {
				t.Errorf("skipped %v, link type %v", r.Skipped(), r.LinkType())
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	good := pcapOf(t, layers.LinkTypeRaw, udpPkt(t, tA4, tB4, 1, 2, "x"), udpPkt(t, tA4, tB4, 1, 2, "y"))
	huge := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(huge[24+8:], MaxRecordLen+1)
	binary.LittleEndian.PutUint32(huge[24+12:], MaxRecordLen+1)
	v4 := udpPkt(t, tA4, tB4, 1, 2, "x")
	tsresBad := []byte{9, 0, 1, 0, 0xff, 0, 0, 0, 0, 0, 0, 0} // 2^-127: pcapgo would divide by zero
	epbLies := ngEPBlock(0, 0, v4)
	binary.LittleEndian.PutUint32(epbLies[8+12:], 1<<30) // caplen far beyond the block
	badTrailer := ngBlock(ngEPB, make([]byte, 20))
	binary.LittleEndian.PutUint32(badTrailer[len(badTrailer)-4:], 99)

	tests := []struct {
		name    string
		in      []byte
		atOpen  bool
		records int // read before the error
		want    error
	}{
		{"empty", nil, true, 0, ErrMalformed},
		{"bad magic", []byte("GIF89a but longer than four"), true, 0, ErrMalformed},
		{"pcap header cut", good[:20], true, 0, ErrMalformed},
		{"record header cut", good[:24+8], false, 0, io.ErrUnexpectedEOF},
		{"record data cut", good[:len(good)-3], false, 1, io.ErrUnexpectedEOF},
		{"record too long", huge, false, 0, ErrMalformed},
		{"pcapng bad byte order", append([]byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0}, make([]byte, 20)...), true, 0, ErrMalformed},
		{"pcapng packet before interface", append(ngSection(), ngEPBlock(0, 0, v4)...), false, 0, ErrMalformed},
		{"pcapng block length odd", append(ngSection(), 1, 0, 0, 0, 13, 0, 0, 0, 0), false, 0, ErrMalformed},
		{"pcapng caplen beyond block", bytes.Join([][]byte{ngSection(), ngIDBlock(101, nil), epbLies}, nil), false, 0, ErrMalformed},
		{"pcapng trailer differs", bytes.Join([][]byte{ngSection(), ngIDBlock(101, nil), badTrailer}, nil), false, 0, ErrMalformed},
		{"pcapng timestamp resolution overflow", bytes.Join([][]byte{ngSection(), ngIDBlock(101, tsresBad), ngEPBlock(0, 5, v4)}, nil), false, 0, ErrMalformed},
		{"pcapng cut in a block", bytes.Join([][]byte{ngSection(), ngIDBlock(101, nil), ngEPBlock(0, 5, v4)[:30]}, nil), false, 0, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := newReader(bytes.NewReader(tc.in))
			if tc.atOpen {
				if !errors.Is(err, tc.want) {
					t.Fatalf("NewReader: %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			n := 0
			for {
				_, err = r.Next()
				if err != nil {
					break
				}
				n++
			}
			if n != tc.records || !errors.Is(err, tc.want) {
				t.Fatalf("read %d records then %v; want %d then %v", n, err, tc.records, tc.want)
			}
			if _, again := r.Next(); again == nil || again.Error() != err.Error() {
				t.Errorf("Next after the error: %v, want the same error", again)
			}
		})
	}
}

// Every generated capture reads cleanly, and its records are what its
// expectation lists (skips included).
func TestGeneratedCapturesRead(t *testing.T) {
	exps, _ := filepath.Glob("../testdata/pcaps/*.expect")
	if len(exps) < 7 {
		t.Fatalf("found %d generated expectations; run go generate ./replay/", len(exps))
	}
	formats := map[Format]bool{}
	links := map[LinkType]bool{}
	for _, path := range exps {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ParseExpect(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), e.Capture))
		if err != nil {
			t.Fatal(err)
		}
		ps, r := readAll(t, b)
		formats[r.Format()] = true
		if len(ps) != len(e.Packets) {
			t.Errorf("%s: %d records, expectation lists %d", e.Capture, len(ps), len(e.Packets))
			continue
		}
		for i, p := range ps {
			links[p.LinkType] = true
			pe := e.Packets[i]
			if (pe.Verdict == VerdictSkipped) != (p.Skip != skipNone) {
				t.Errorf("%s record %d: skip %q but expected %s", e.Capture, p.Number, p.Skip, pe.String())
			}
			if pe.Verdict == VerdictSkipped && len(pe.Args) == 1 && string(p.Skip) != pe.Args[0] {
				t.Errorf("%s record %d: skip %q, want %s", e.Capture, p.Number, p.Skip, pe.Args[0])
			}
		}
	}
	for _, lt := range []LinkType{linkTypeEthernet, linkTypeRaw, linkTypeLinuxSLL, linkTypeIPv4, linkTypeSLL2} {
		if !links[lt] {
			t.Errorf("no generated capture has link type %v", lt)
		}
	}
	if !formats[formatPcap] || !formats[formatPcapNG] {
		t.Errorf("generated formats %v, want pcap and pcapng", formats)
	}
}

// The real captures (testdata/pcaps/real) must be there and read whole.
func TestRealCapturesRead(t *testing.T) {
	want := map[string]int{
		"icmp6-ping.pcap": 8, "icmp6-nd-options.pcap": 20, "dns_udp.pcap": 2, "ech.pcap": 4,
		"test_ethernet.pcap": 10, "ipv6.pcap": 17, "ipv6-fragmented-dns.pcap": 8,
		"ipv6-http-atomic-frag.pcap": 38, "ipv6-routing-header.pcap": 4,
		"ipv6_invalid_length_2.pcap": 1, "ipv6-bad-version.pcap": 4, "ip6-udp-bad-chksum.pcap": 1,
	}
	for name, n := range want {
		b, err := os.ReadFile(filepath.Join(realDirPath, name))
		if err != nil {
			t.Errorf("real capture missing (expected in testdata/pcaps/real from the repository root): %v", err)
			continue
		}
		ps, _ := readAll(t, b)
		if len(ps) != n {
			t.Errorf("%s: %d records, SOURCES.md says %d", name, len(ps), n)
		}
		for _, p := range ps {
			if p.Skip != skipNone {
				t.Errorf("%s record %d skipped: %s", name, p.Number, p.Skip)
			}
			if strings.HasPrefix(name, "ech") != (p.LinkType == linkTypeRaw) {
				t.Errorf("%s record %d: link type %v", name, p.Number, p.LinkType)
			}
		}
	}
}

// Read a capture and look at what would be written into a device: the
// link-layer headers come off, non-IP frames are skipped, and the addresses
// move into the device's prefix. (This was ExampleReader while the reader
// was exported.)
func TestReadRewriteDescribe(t *testing.T) {
	f, err := os.Open("../testdata/pcaps/icmp6-echo.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := newReader(f)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := newRewriter(RewriteConfig{
		Prefixes: []netip.Prefix{netip.MustParsePrefix("fd00:7e57::1/64")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Skip != skipNone {
			got = append(got, fmt.Sprintf("#%d skipped: %s", p.Number, p.Skip))
			continue
		}
		if _, err := rw.Rewrite(p.IP); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("#%d %s", p.Number, describe(p.IP)))
	}
	want := []string{
		"#1 skipped: non-ip",
		"#2 IPv6 fd00:7e57::2 > fd00:7e57::1 ICMPv6 echo-request id=4660 seq=1 (80 bytes)",
		"#3 IPv6 fd00:7e57::2 > fd00:7e57::1 ICMPv6 echo-request id=4660 seq=2 (80 bytes)",
		"#4 IPv6 fd00:7e57::2 > fd00:7e57::1 ICMPv6 echo-request id=4660 seq=3 (80 bytes)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
