package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// tundraGoldenRequest is Tundra's request for fd5e:7a11::1 with netmask
// ffff:ffff:ffff:ffff::, dstaddr fd5e:7a11::2 and mtu 1400, written out by
// hand from the LP64 layout, little-endian (Linux amd64/arm64, macOS).
// nativeTundra turns it into this machine's order.
const tundraGoldenRequest = `
	00000000                         | 0: type 0 (CREATE_TUN), int32
	00000000                         | 4: padding
	9800000000000000                 | 8: size 152, uint64
	666435653a376131313a3a3100000000 | 16: addr "fd5e:7a11::1", char[46]
	00000000000000000000000000000000
	0000000000000000000000000000
	666435653a376131313a3a3200000000 | 62: dstaddr "fd5e:7a11::2", char[46]
	00000000000000000000000000000000
	0000000000000000000000000000
	666666663a666666663a666666663a66 | 108: netmask "ffff:ffff:ffff:ffff::", char[46]
	6666663a3a0000000000000000000000
	0000000000000000000000000000
	0000                             | 154: padding
	78050000                         | 156: mtu 1400, int32
`

// tundraGoldenResponse is the response naming tun0, little-endian.
const tundraGoldenResponse = `
	00000000                         | 0: type 0, int32
	00000000                         | 4: padding
	1800000000000000                 | 8: size 24, uint64
	74756e30000000000000000000000000 | 16: name "tun0", char[16]
`

// nativeTundra converts a little-endian Tundra message to this machine's
// byte order by reversing its integer fields (type, size and, in a
// request, mtu), so that the golden bytes are checked on any host.
func nativeTundra(b []byte) []byte {
	b = bytes.Clone(b)
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return b
	}
	rev := func(p []byte) {
		for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
			p[i], p[j] = p[j], p[i]
		}
	}
	rev(b[0:4])
	rev(b[8:16])
	if len(b) == tundraRequestLen {
		rev(b[156:160])
	}
	return b
}

// tundraFields builds a Tundra request field by field at the offsets of
// the layout (not with the package's constants, which it checks).
type tundraFields struct {
	typ                    int32
	pad                    [4]byte
	size                   uint64
	addr, dstaddr, netmask string // copied as they are, at most 46 bytes
	pad2                   [2]byte
	mtu                    int32
}

func (f tundraFields) bytes() []byte {
	b := make([]byte, 160)
	binary.NativeEndian.PutUint32(b[0:], uint32(f.typ))
	copy(b[4:8], f.pad[:])
	binary.NativeEndian.PutUint64(b[8:], f.size)
	copy(b[16:62], f.addr)
	copy(b[62:108], f.dstaddr)
	copy(b[108:154], f.netmask)
	copy(b[154:156], f.pad2[:])
	binary.NativeEndian.PutUint32(b[156:], uint32(f.mtu))
	return b
}

func goldenFields() tundraFields {
	return tundraFields{size: 152, addr: "fd5e:7a11::1", dstaddr: "fd5e:7a11::2", netmask: "ffff:ffff:ffff:ffff::", mtu: 1400}
}

func TestTundraGolden(t *testing.T) {
	golden := nativeTundra(unhex(t, tundraGoldenRequest))
	if len(golden) != 160 {
		t.Fatalf("the golden request is %d bytes, want 160", len(golden))
	}
	if built := goldenFields().bytes(); !bytes.Equal(built, golden) {
		t.Fatalf("request built field by field:\n% x\nwant\n% x", built, golden)
	}
	r, err := decodeTundraRequest(golden)
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Addr: netip.MustParsePrefix("fd5e:7a11::1/64"), Peer: netip.MustParseAddr("fd5e:7a11::2"), MTU: 1400, PacketInfo: tundraPacketInfo}
	if r != want {
		t.Errorf("decoded %+v, want %+v", r, want)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	resp, err := encodeTundraResponse("tun0")
	if err != nil {
		t.Fatal(err)
	}
	if want := nativeTundra(unhex(t, tundraGoldenResponse)); !bytes.Equal(resp[:], want) {
		t.Errorf("response:\n% x\nwant\n% x", resp[:], want)
	}
	// The offsets of protocol.h, which are relative to the payload, plus
	// the 8 bytes of type and padding before it.
	for _, c := range []struct{ got, want int }{
		{tundraOffAddr, 8 + 8}, {tundraOffDstaddr, 8 + 54}, {tundraOffNetmask, 8 + 100}, {tundraOffMTU, 8 + 148},
		{tundraRequestSize, tundraRequestLen - 8}, {tundraResponseSize, tundraResponseLen - 8},
	} {
		if c.got != c.want {
			t.Errorf("layout constant %d, want %d", c.got, c.want)
		}
	}
}

func TestTundraResponseNames(t *testing.T) {
	for _, name := range []string{"", "a-name-too-long", "tun\x000"} {
		if len(name) == 15 {
			name += "x" // 16 bytes leave no room for the NUL
		}
		if _, err := encodeTundraResponse(name); err == nil {
			t.Errorf("encodeTundraResponse(%q) succeeded", name)
		}
	}
	b, err := encodeTundraResponse("a-name-of-15-ch")
	if err != nil || b[31] != 0 || string(b[16:31]) != "a-name-of-15-ch" {
		t.Errorf("15-byte name: % x, %v", b, err)
	}
}

func TestTundraDecode(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	cases := []struct {
		name string
		mod  func(*tundraFields)
		raw  func([]byte) // applied to the bytes after mod
		want Request      // when err is ""
		err  string
	}{
		{name: "no dstaddr, no mtu", mod: func(f *tundraFields) { f.dstaddr, f.mtu = "", 0 },
			want: Request{Addr: p("fd5e:7a11::1/64")}},
		{name: "unspecified dstaddr means none", mod: func(f *tundraFields) { f.dstaddr = "::" },
			want: Request{Addr: p("fd5e:7a11::1/64"), MTU: 1400}},
		{name: "IPv4", mod: func(f *tundraFields) { f.addr, f.dstaddr, f.netmask = "10.1.2.3", "10.1.2.4", "255.255.255.0" },
			want: Request{Addr: p("10.1.2.3/24"), Peer: a("10.1.2.4"), MTU: 1400}},
		{name: "host mask", mod: func(f *tundraFields) { f.netmask = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
			want: Request{Addr: p("fd5e:7a11::1/128"), Peer: a("fd5e:7a11::2"), MTU: 1400}},
		{name: "mask /57", mod: func(f *tundraFields) { f.netmask = "ffff:ffff:ffff:ff80::" },
			want: Request{Addr: p("fd5e:7a11::1/57"), Peer: a("fd5e:7a11::2"), MTU: 1400}},
		{name: "longest address, 45 characters", mod: func(f *tundraFields) {
			f.addr, f.dstaddr = "fd5e:7a11:0000:0000:0000:ffff:255.255.255.254", ""
		}, want: Request{Addr: p("fd5e:7a11::ffff:ffff:fffe/64"), MTU: 1400}},
		{name: "garbage after the NULs and in the padding is ignored", mod: func(f *tundraFields) {
			f.addr = "fd5e:7a11::1\x00\xff\x1b[31m"
			f.dstaddr = "fd5e:7a11::2\x00junk"
			f.netmask = "ffff:ffff:ffff:ffff::\x00ffff"
			f.pad, f.pad2 = [4]byte{0xde, 0xad, 0xbe, 0xef}, [2]byte{0xff, 0xff}
		}, want: Request{Addr: p("fd5e:7a11::1/64"), Peer: a("fd5e:7a11::2"), MTU: 1400}},
		{name: "mtu too large decodes, Validate refuses", mod: func(f *tundraFields) { f.mtu = 70000 },
			want: Request{Addr: p("fd5e:7a11::1/64"), Peer: a("fd5e:7a11::2"), MTU: 70000}},
		{name: "zero mask decodes as /0, Validate refuses", mod: func(f *tundraFields) { f.netmask = "::" },
			want: Request{Addr: p("fd5e:7a11::1/0"), Peer: a("fd5e:7a11::2"), MTU: 1400}},

		{name: "type 1", mod: func(f *tundraFields) { f.typ = 1 }, err: "type 1, want 0 (CREATE_TUN)"},
		{name: "size 153", mod: func(f *tundraFields) { f.size = 153 }, err: "size field 153 at offset 8, want 152"},
		{name: "size in the other byte order", mod: func(f *tundraFields) { f.size = 152 << 56 }, err: "want 152"},
		{name: "size of an ILP32 struct", mod: func(f *tundraFields) { f.size = 148 }, err: "size field 148"},
		{name: "addr without NUL", mod: func(f *tundraFields) { f.addr = strings.Repeat("1", 46) }, err: "addr: no NUL within its 46 bytes"},
		{name: "dstaddr without NUL", mod: func(f *tundraFields) { f.dstaddr = strings.Repeat(":", 46) }, err: "dstaddr: no NUL within its 46 bytes"},
		{name: "netmask without NUL", mod: func(f *tundraFields) { f.netmask = strings.Repeat("f", 46) }, err: "netmask: no NUL within its 46 bytes"},
		{name: "non-ASCII addr", mod: func(f *tundraFields) { f.addr = "fd5e:7a11::\xc3\xa91" }, err: `addr: byte 11 is 0xc3, not printable ASCII ("fd5e:7a11::\u00e91")`},
		{name: "control character", mod: func(f *tundraFields) { f.netmask = "ffff::\x1b" }, err: "netmask: byte 6 is 0x1b"},
		{name: "space", mod: func(f *tundraFields) { f.addr = " fd5e::1" }, err: "addr: byte 0 is 0x20"},
		{name: "empty addr", mod: func(f *tundraFields) { f.addr = "" }, err: "addr: empty"},
		{name: "empty netmask", mod: func(f *tundraFields) { f.netmask = "" }, err: "netmask: empty"},
		{name: "addr not an address", mod: func(f *tundraFields) { f.addr = "tundra.example" }, err: `addr: "tundra.example" is not an IPv4 or IPv6 address`},
		{name: "addr with a prefix", mod: func(f *tundraFields) { f.addr = "fd5e:7a11::1/64" }, err: "is not an IPv4 or IPv6 address"},
		{name: "zoned addr", mod: func(f *tundraFields) { f.addr = "fe80::1%eth0" }, err: "addr: fe80::1%eth0 has a zone"},
		{name: "zoned netmask", mod: func(f *tundraFields) { f.netmask = "ffff::%1" }, err: "netmask: ffff::%1 has a zone"},
		{name: "netmask as a prefix length", mod: func(f *tundraFields) { f.netmask = "64" }, err: `netmask: "64" is not an IPv4 or IPv6 address`},
		{name: "non-contiguous netmask", mod: func(f *tundraFields) { f.netmask = "ffff:0:ffff::" }, err: "netmask: ffff:0:ffff:: is not contiguous"},
		{name: "a hole in the last byte", mod: func(f *tundraFields) { f.netmask = "ffff:ffff:ffff:ffa0::" }, err: "is not contiguous"},
		{name: "IPv4 mask on an IPv6 address", mod: func(f *tundraFields) { f.netmask = "255.255.255.0" },
			err: "netmask: 255.255.255.0 and addr fd5e:7a11::1 are of different families"},
		{name: "IPv6 mask on an IPv4 address", mod: func(f *tundraFields) { f.addr, f.dstaddr = "10.1.2.3", "" },
			err: "netmask: ffff:ffff:ffff:ffff:: and addr 10.1.2.3 are of different families"},
		{name: "dstaddr of the other family", mod: func(f *tundraFields) { f.dstaddr = "10.1.2.4" },
			err: "dstaddr: 10.1.2.4 and addr fd5e:7a11::1 are of different families"},
		{name: "bad dstaddr", mod: func(f *tundraFields) { f.dstaddr = "peer" }, err: `dstaddr: "peer" is not an IPv4 or IPv6 address`},
		{name: "negative mtu", mod: func(f *tundraFields) { f.mtu = -1 }, err: "mtu: -1 is negative"},
		{name: "159 bytes", raw: func(b []byte) {}, err: "159 bytes, want 160"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := goldenFields()
			if tc.mod != nil {
				tc.mod(&f)
			}
			b := f.bytes()
			if tc.raw != nil {
				b = b[:159]
				tc.raw(b)
			}
			r, err := decodeTundraRequest(b)
			if tc.err != "" {
				if err == nil || !errors.Is(err, errTundra) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error containing %q", r, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.PacketInfo = tundraPacketInfo
			if r != tc.want {
				t.Fatalf("got %+v, want %+v", r, tc.want)
			}
		})
	}

	// What decodes still meets Request.Validate in the server.
	f := goldenFields()
	f.mtu = 70000
	r, _ := decodeTundraRequest(f.bytes())
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "mtu: 70000 is outside 68..65535") {
		t.Errorf("Validate of mtu 70000: %v", err)
	}
	f = goldenFields()
	f.netmask = "::"
	r, _ = decodeTundraRequest(f.bytes())
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "prefix length /0") {
		t.Errorf("Validate of a zero mask: %v", err)
	}
}

func TestTundraRecognition(t *testing.T) {
	golden := goldenFields().bytes()
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{nil, false},
		{[]byte{0}, true},
		{[]byte{0, 0, 0}, true},
		{golden[:12], true},
		{golden, true},
		{[]byte("TNDR\x01\x01\x00\x00\x00\x00\x00\x15"), false},
		{[]byte{0, 1}, false},
		{[]byte{0, 0, 0, 1, 0}, false},
		{[]byte("GET / HTTP/1.1\r\n"), false},
	} {
		if got := isTundraStart(c.b); got != c.want {
			t.Errorf("isTundraStart(% x) = %v, want %v", c.b, got, c.want)
		}
	}
	if err := decodeTundraSize(golden[:16]); err != nil {
		t.Errorf("decodeTundraSize of the golden request: %v", err)
	}
	if err := decodeTundraSize(golden[:15]); err == nil {
		t.Error("decodeTundraSize accepted 15 bytes")
	}
}

// tundraMask is the address-form netmask of a prefix length.
func tundraMask(is4 bool, bits int) netip.Addr {
	n := 16
	if is4 {
		n = 4
	}
	b := make([]byte, n)
	for i := 0; i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	m, _ := netip.AddrFromSlice(b)
	return m
}

// FuzzDecodeTundraRequest feeds arbitrary bytes to the decoder of Tundra's
// request. It must never panic; every failure wraps errTundra; what
// decodes is 160 bytes, has a valid prefix and a peer of its family, and
// survives being written out again field by field.
func FuzzDecodeTundraRequest(f *testing.F) {
	f.Add(goldenFields().bytes())
	for _, mod := range []func(*tundraFields){
		func(t *tundraFields) { t.dstaddr, t.mtu = "", 0 },
		func(t *tundraFields) { t.addr, t.dstaddr, t.netmask = "169.254.7.1", "169.254.7.2", "255.255.0.0" },
		func(t *tundraFields) { t.netmask = "ffff:0:ffff::" },
		func(t *tundraFields) { t.addr = strings.Repeat("1", 46) },
		func(t *tundraFields) { t.size = 151 },
		func(t *tundraFields) { t.addr = "fe80::1%tun0" },
		func(t *tundraFields) { t.addr, t.pad = "::ffff:10.0.0.1\x00x", [4]byte{1, 2, 3, 4} },
	} {
		tf := goldenFields()
		mod(&tf)
		f.Add(tf.bytes())
	}
	f.Add(goldenFields().bytes()[:100])
	f.Add(append(goldenFields().bytes(), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		isTundraStart(b)
		if err := decodeTundraSize(b); err != nil && !errors.Is(err, errTundra) {
			t.Fatalf("decodeTundraSize error %v does not wrap errTundra", err)
		}
		r, err := decodeTundraRequest(b)
		if err != nil {
			if !errors.Is(err, errTundra) {
				t.Fatalf("error %v does not wrap errTundra", err)
			}
			return
		}
		if len(b) != tundraRequestLen {
			t.Fatalf("%d bytes decoded", len(b))
		}
		a := r.Addr.Addr()
		if !r.Addr.IsValid() || a.Zone() != "" || (r.Peer.IsValid() && r.Peer.Is4() != a.Is4()) || r.MTU < 0 ||
			r.Name != "" || r.TAP || r.Queues != 0 || r.PacketInfo != tundraPacketInfo {
			t.Fatalf("decoded %+v", r)
		}
		again := tundraFields{size: 152, addr: a.String(), netmask: tundraMask(a.Is4(), r.Addr.Bits()).String(), mtu: int32(r.MTU)}
		if r.Peer.IsValid() {
			again.dstaddr = r.Peer.String()
		}
		r2, err := decodeTundraRequest(again.bytes())
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
		_ = r.Validate()
		_ = r.String()
	})
}

// TundraRequestForTest builds a Tundra request field by field, as the
// golden test does, for the end-to-end tests in package broker_test.
func TundraRequestForTest(size uint64, addr, dstaddr, netmask string, mtu int32) []byte {
	return tundraFields{size: size, addr: addr, dstaddr: dstaddr, netmask: netmask, mtu: mtu}.bytes()
}
