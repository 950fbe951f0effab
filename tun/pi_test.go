package tun_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/tundra-go/tundra/tun"
)

// A real ICMPv4 echo request header and an IPv6 UDP header, as they appear
// on a TUN device without the PI header.
var (
	ipv4Packet = mustHex("4500005400004000400100007f0000017f000001")
	ipv6Packet = mustHex("6000000000081140fd000000000000000000000000000001fd000000000000000000000000000002" + "d431000900080000")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// hostLittleEndian is decided without encoding/binary, which the code under
// test uses.
func hostLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

func TestPutPIHeaderGolden(t *testing.T) {
	strip := "0001" // TUN_PKT_STRIP as a host-order __u16
	if hostLittleEndian() {
		strip = "0100"
	}
	for _, tc := range []struct {
		h    tun.PIHeader
		want string
	}{
		// Proto is big-endian on the wire whatever the host.
		{tun.PIHeader{Proto: 0x86DD}, "000086dd"},
		{tun.PIHeader{Proto: 0x0800}, "00000800"},
		{tun.PIHeader{Flags: tun.PIFlagTruncated, Proto: 0x86DD}, strip + "86dd"},
	} {
		b := []byte{0xaa, 0xaa, 0xaa, 0xaa, 0xbb}
		tun.PutPIHeader(b, tc.h)
		if got := hex.EncodeToString(b[:4]); got != tc.want {
			t.Errorf("PutPIHeader(%+v) = %s, want %s", tc.h, got, tc.want)
		}
		if b[4] != 0xbb {
			t.Errorf("PutPIHeader(%+v) wrote past byte 4", tc.h)
		}
		back, err := tun.ParsePIHeader(b)
		if err != nil || back != tc.h {
			t.Errorf("ParsePIHeader(%s) = %+v, %v; want %+v", hex.EncodeToString(b), back, err, tc.h)
		}
	}
}

func TestPIHeaderFor(t *testing.T) {
	for _, tc := range []struct {
		packet []byte
		want   string
	}{
		{ipv6Packet, "000086dd"},
		{ipv4Packet, "00000800"},
	} {
		h, err := tun.PIHeaderFor(tc.packet)
		if err != nil {
			t.Fatalf("PIHeaderFor: %v", err)
		}
		b := make([]byte, tun.PIHeaderLen)
		tun.PutPIHeader(b, h)
		if got := hex.EncodeToString(b); got != tc.want {
			t.Errorf("header for packet %x... = %s, want %s", tc.packet[:4], got, tc.want)
		}
	}
	if _, err := tun.PIHeaderFor([]byte{0x50}); err == nil {
		t.Errorf("PIHeaderFor(version 5) = nil error")
	}
}

func TestParsePIHeaderShort(t *testing.T) {
	for n := 0; n < tun.PIHeaderLen; n++ {
		_, err := tun.ParsePIHeader(make([]byte, n))
		var oe *tun.OpError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), "need 4") {
			t.Errorf("ParsePIHeader(%d bytes) = %v, want an *OpError saying it needs 4", n, err)
		}
	}
}

func TestPutPIHeaderPanicsOnShortBuffer(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("PutPIHeader on 3 bytes did not panic")
		}
	}()
	tun.PutPIHeader(make([]byte, 3), tun.PIHeader{Proto: 0x86DD})
}

func TestIPVersionAndEtherType(t *testing.T) {
	for _, tc := range []struct {
		name    string
		packet  []byte
		version int
		et      uint16
		errWant string
	}{
		{"ipv4", ipv4Packet, 4, 0x0800, ""},
		{"ipv6", ipv6Packet, 6, 0x86DD, ""},
		{"ipv4 first byte only", []byte{0x45}, 4, 0x0800, ""},
		{"ipv6 first byte only", []byte{0x6f}, 6, 0x86DD, ""},
		{"empty", nil, 0, 0, "empty packet"},
		{"zero", []byte{0x00, 0x00}, 0, 0, "nibble is 0"},
		{"version 5", []byte{0x50}, 0, 0, "nibble is 5"},
		{"all ones", []byte{0xff, 0xff}, 0, 0, "nibble is 15"},
		{"ethernet frame", mustHex("ffffffffffff020000000001" + "0806"), 0, 0, "nibble is 15"},
		{"pi header in front", append(mustHex("000086dd"), ipv6Packet...), 0, 0, "nibble is 0 (first byte 0x00)"},
	} {
		if got := tun.IPVersion(tc.packet); got != tc.version {
			t.Errorf("%s: IPVersion = %d, want %d", tc.name, got, tc.version)
		}
		et, err := tun.EtherTypeOf(tc.packet)
		if tc.errWant == "" {
			if err != nil || et != tc.et {
				t.Errorf("%s: EtherTypeOf = %#x, %v; want %#x", tc.name, et, err, tc.et)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errWant) {
			t.Errorf("%s: EtherTypeOf error = %v, want it to mention %q", tc.name, err, tc.errWant)
		}
	}
}

func FuzzPIHeader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x86, 0xdd})
	f.Add(append([]byte{0, 0, 0x08, 0x00}, ipv4Packet...))
	f.Add(ipv6Packet)
	f.Add([]byte{0x01, 0x00, 0x86})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := tun.ParsePIHeader(data)
		if (err == nil) != (len(data) >= tun.PIHeaderLen) {
			t.Fatalf("ParsePIHeader(%d bytes) error = %v", len(data), err)
		}
		if err == nil {
			b := make([]byte, tun.PIHeaderLen)
			tun.PutPIHeader(b, h)
			if !bytes.Equal(b, data[:tun.PIHeaderLen]) {
				t.Fatalf("round trip of %x gave %x", data[:4], b)
			}
		}
		v := tun.IPVersion(data)
		et, err := tun.EtherTypeOf(data)
		switch {
		case v == 4 && (err != nil || et != 0x0800),
			v == 6 && (err != nil || et != 0x86DD),
			v == 0 && err == nil:
			t.Fatalf("IPVersion %d but EtherTypeOf = %#x, %v", v, et, err)
		}
		if ph, err := tun.PIHeaderFor(data); err == nil && (ph.Proto != et || ph.Flags != 0) {
			t.Fatalf("PIHeaderFor = %+v, EtherTypeOf = %#x", ph, et)
		}
	})
}

func TestPIFramer(t *testing.T) {
	var hdr [4]byte
	v6 := []byte{0x60, 0, 0, 0}
	v4 := []byte{0x45, 0, 0, 20}
	for _, tc := range []struct {
		f      tun.PIFramer
		packet []byte
		want   []byte
	}{
		{tun.PIFramer{}, v6, []byte{0, 0, 0x86, 0xdd}},
		{tun.PIFramer{}, v4, []byte{0, 0, 0x08, 0x00}},
		// TAP: the EtherType at bytes 12-13 of the frame, here ARP.
		{tun.PIFramer{TAP: true}, append(make([]byte, 12), 0x08, 0x06, 0, 1), []byte{0, 0, 0x08, 0x06}},
	} {
		hdr = [4]byte{0xff, 0xff, 0xff, 0xff}
		if err := tc.f.PutHeader(hdr[:], tc.packet); err != nil {
			t.Fatalf("%+v % x: %v", tc.f, tc.packet, err)
		}
		if !bytes.Equal(hdr[:], tc.want) {
			t.Errorf("%+v % x: header % x, want % x", tc.f, tc.packet, hdr, tc.want)
		}
	}
	if (tun.PIFramer{}).HeaderLen() != 4 {
		t.Error("HeaderLen")
	}
	for _, bad := range [][]byte{nil, {0x50}, {0x00}} {
		if err := (tun.PIFramer{}).PutHeader(hdr[:], bad); err == nil {
			t.Errorf("TUN framer accepted % x", bad)
		}
	}
	if err := (tun.PIFramer{TAP: true}).PutHeader(hdr[:], make([]byte, 13)); err == nil {
		t.Error("TAP framer accepted a 13-byte frame")
	}
}
