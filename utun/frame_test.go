package utun

import (
	"bytes"
	"errors"
	"testing"
)

func TestPutFamilyHeader(t *testing.T) {
	tests := []struct {
		what   string
		packet []byte
		want   []byte // nil: error
	}{
		{"IPv4", []byte{0x45, 0x00, 0x00, 0x14}, []byte{0, 0, 0, 2}},
		{"IPv4 with options", []byte{0x4f}, []byte{0, 0, 0, 2}},
		{"IPv6", []byte{0x60, 0x00, 0x00, 0x00}, []byte{0, 0, 0, 0x1e}},
		{"IPv6 with traffic class", []byte{0x6f, 0xff}, []byte{0, 0, 0, 0x1e}},
		{"empty", nil, nil},
		{"version 0", []byte{0x00}, nil},
		{"version 5", []byte{0x50}, nil},
		{"version 15", []byte{0xff}, nil},
		{"Linux PI header in front", []byte{0x00, 0x00, 0x86, 0xdd, 0x60}, nil},
	}
	for _, tt := range tests {
		hdr := []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee}
		err := PutFamilyHeader(hdr, tt.packet)
		if tt.want == nil {
			if !errors.Is(err, ErrNotIP) {
				t.Errorf("%s: err = %v, want ErrNotIP", tt.what, err)
			}
			var oe *OpError
			if !errors.As(err, &oe) {
				t.Errorf("%s: %T is not *OpError", tt.what, err)
			}
			if !bytes.Equal(hdr, []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee}) {
				t.Errorf("%s: failed call wrote the header: % x", tt.what, hdr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.what, err)
			continue
		}
		if !bytes.Equal(hdr[:4], tt.want) || hdr[4] != 0xee {
			t.Errorf("%s: header % x, want % x (and byte 4 untouched)", tt.what, hdr, tt.want)
		}
		// The Framer is the same function behind loop.Framer.
		var f Framer
		h2 := make([]byte, f.HeaderLen())
		if err := f.PutHeader(h2, tt.packet); err != nil || !bytes.Equal(h2, tt.want) {
			t.Errorf("%s: Framer.PutHeader = % x, %v", tt.what, h2, err)
		}
		fam, err := ParseFamilyHeader(hdr)
		if err != nil {
			t.Errorf("%s: round trip: %v", tt.what, err)
		}
		if want, _ := FamilyOf(tt.packet); fam != want {
			t.Errorf("%s: round trip gives %d, want %d", tt.what, fam, want)
		}
	}
}

func TestPutFamilyHeaderShortBuffer(t *testing.T) {
	for n := 0; n < HeaderLen; n++ {
		err := PutFamilyHeader(make([]byte, n), []byte{0x45})
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%d-byte header buffer: %v", n, err)
		}
	}
	if Framer.HeaderLen(Framer{}) != 4 || HeaderLen != 4 {
		t.Error("HeaderLen is not 4")
	}
}

func TestParseFamilyHeader(t *testing.T) {
	tests := []struct {
		b    []byte
		want uint32
		is   error // nil: success
	}{
		{[]byte{0, 0, 0, 2}, AFInet, nil},
		{[]byte{0, 0, 0, 30, 0x60}, AFInet6, nil},
		{[]byte{0, 0, 0, 10}, 0, ErrNotIP},            // Linux's AF_INET6
		{[]byte{2, 0, 0, 0}, 0, ErrNotIP},             // host order by mistake
		{[]byte{0x1e, 0, 0, 0}, 0, ErrNotIP},          // ditto for IPv6
		{[]byte{0x00, 0x00, 0x08, 0x00}, 0, ErrNotIP}, // a Linux PI header
		{[]byte{0, 0, 0}, 0, ErrInvalidArgument},
		{nil, 0, ErrInvalidArgument},
	}
	for _, tt := range tests {
		got, err := ParseFamilyHeader(tt.b)
		if tt.is == nil {
			if err != nil || got != tt.want {
				t.Errorf("ParseFamilyHeader(% x) = %d, %v; want %d", tt.b, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, tt.is) || got != 0 {
			t.Errorf("ParseFamilyHeader(% x) = %d, %v; want 0 and %v", tt.b, got, err, tt.is)
		}
	}
}

func TestPutFamilyHeaderAllocs(t *testing.T) {
	hdr := make([]byte, HeaderLen)
	pkt4 := []byte{0x45}
	pkt6 := []byte{0x60}
	var f Framer
	allocs := testing.AllocsPerRun(100, func() {
		_ = f.PutHeader(hdr, pkt4)
		_ = f.PutHeader(hdr, pkt6)
		_, _ = ParseFamilyHeader(hdr)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet on the success path", allocs)
	}
}

// FuzzFamilyHeader: PutFamilyHeader succeeds exactly for IPv4 and IPv6
// packets, writes only the family in network order, and ParseFamilyHeader
// returns what it wrote.
func FuzzFamilyHeader(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x60, 0, 0, 0})
	f.Add([]byte{})
	f.Add([]byte{0x50})
	f.Add([]byte{0, 0, 0, 30})
	f.Fuzz(func(t *testing.T, packet []byte) {
		hdr := make([]byte, HeaderLen+1)
		hdr[HeaderLen] = 0x5a
		err := PutFamilyHeader(hdr, packet)
		v := -1
		if len(packet) > 0 {
			v = int(packet[0] >> 4)
		}
		switch v {
		case 4, 6:
			if err != nil {
				t.Fatalf("version %d: %v", v, err)
			}
			if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0 || hdr[HeaderLen] != 0x5a {
				t.Fatalf("header % x", hdr)
			}
			fam, err := ParseFamilyHeader(hdr)
			if err != nil {
				t.Fatalf("parse % x: %v", hdr, err)
			}
			if (v == 4) != (fam == AFInet) || (v == 6) != (fam == AFInet6) {
				t.Fatalf("version %d gave family %d", v, fam)
			}
		default:
			if !errors.Is(err, ErrNotIP) {
				t.Fatalf("version %d: err %v", v, err)
			}
		}
		// Parsing arbitrary bytes never panics, and accepts only 2 and 30.
		if fam, err := ParseFamilyHeader(packet); err == nil && fam != AFInet && fam != AFInet6 {
			t.Fatalf("ParseFamilyHeader(% x) accepted %d", packet, fam)
		}
	})
}
