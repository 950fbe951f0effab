package broker

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// unhex decodes a hex dump in which spaces, newlines and |-comments are
// ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '|'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.ReplaceAll(strings.ReplaceAll(line, " ", ""), "\t", ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// The golden frames below are written out by hand from PROTOCOL.md, not
// produced by the encoder: they pin the wire format.
var goldenRequests = []struct {
	name string
	req  Request
	hex  string
}{
	{
		name: "minimal IPv6",
		req:  Request{Addr: netip.MustParsePrefix("fd00::1/64"), Queues: 1},
		hex: `
			54 4e 44 52  01 01 0000  00000015 | magic TNDR, v1, create request, body 21
			0001 0011 fd000000000000000000000000000001 40 | address fd00::1 /64
		`,
	},
	{
		name: "everything",
		req: Request{
			Addr:       netip.MustParsePrefix("10.1.2.3/24"),
			Peer:       netip.MustParseAddr("10.1.2.4"),
			MTU:        1400,
			Name:       "tun%d",
			TAP:        true,
			PacketInfo: true,
			Queues:     4,
			Exclusive:  true,
		},
		hex: `
			54 4e 44 52  01 01 0000  00000030 | body 48
			0001 0005 0a010203 18   | address 10.1.2.3/24
			0002 0004 0a010204      | peer 10.1.2.4
			0003 0004 00000578      | mtu 1400
			0004 0005 74756e2564    | name "tun%d"
			0005 0004 00000007      | flags TAP|PI|EXCL
			0006 0002 0004          | queues 4
		`,
	},
}

var goldenResponses = []struct {
	name string
	resp response
	hex  string
}{
	{
		name: "ok",
		resp: response{Status: StatusOK, Name: "tun0", Index: 7, Fds: 1},
		hex: `
			54 4e 44 52  01 02 0000  0000001c | create response, body 28
			0001 0002 0000          | status ok
			0004 0004 74756e30      | name "tun0"
			0005 0004 00000007      | index 7
			0006 0002 0001          | 1 fd
		`,
	},
	{
		name: "failed with errno",
		resp: response{Status: StatusFailed, Message: "busy", Errno: 16},
		hex: `
			54 4e 44 52  01 02 0000  00000016 | body 22
			0001 0002 0006          | status failed
			0002 0004 62757379      | message "busy"
			0003 0004 00000010      | errno 16 (EBUSY)
		`,
	},
}

func TestGoldenRequests(t *testing.T) {
	for _, tc := range goldenRequests {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.hex)
			got, err := marshalRequest(tc.req)
			if err != nil {
				t.Fatalf("marshalRequest: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("marshalRequest:\n got % x\nwant % x", got, want)
			}
			dec, err := unmarshalRequest(want)
			if err != nil {
				t.Fatalf("unmarshalRequest: %v", err)
			}
			if dec != tc.req {
				t.Fatalf("unmarshalRequest = %+v, want %+v", dec, tc.req)
			}
		})
	}
}

func TestGoldenResponses(t *testing.T) {
	for _, tc := range goldenResponses {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.hex)
			got, err := marshalResponse(tc.resp)
			if err != nil {
				t.Fatalf("marshalResponse: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("marshalResponse:\n got % x\nwant % x", got, want)
			}
			dec, err := unmarshalResponse(want)
			if err != nil {
				t.Fatalf("unmarshalResponse: %v", err)
			}
			if !reflect.DeepEqual(dec, tc.resp) {
				t.Fatalf("unmarshalResponse = %+v, want %+v", dec, tc.resp)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	hdr := "544e4452 01 01 0000"
	cases := []struct {
		name, hex, want string
		is              error
	}{
		{"empty", "", "header is 0 bytes", nil},
		{"short header", "544e4452 01", "header is 5 bytes", nil},
		{"bad magic", "00000000 01 01 0000 00000000", "bad magic", nil},
		{"reserved bits", "544e4452 01 01 0001 00000000", "reserved header bytes", nil},
		{"over the cap", hdr + "7fffffff", "exceeds the cap", errTooLarge},
		{"just over the cap", hdr + "000003f5", "body length 1013 exceeds the cap of 1012", errTooLarge},
		{"version 2", "544e4452 02 01 0000 00000000", "version 2", errVersion},
		{"response type", "544e4452 01 02 0000 00000000", "frame type 2", nil},
		{"body shorter than announced", hdr + "00000009 0001 0005 0a010203", "announces a 9-byte body", nil},
		{"no address", hdr + "00000000", "no address attribute", nil},
		{"stray bytes", hdr + "00000002 0001", "2 stray bytes", nil},
		{"attribute overruns", hdr + "00000006 0001 0005 0a01", "claims 5 bytes, 2 remain", nil},
		{"address 6 bytes", hdr + "0000000a 0001 0006 0a0102030405", "want 5 (IPv4) or 17", nil},
		{"prefix too long", hdr + "00000009 0001 0005 0a010203 21", "prefix length 33 exceeds 32", nil},
		{"duplicate address", hdr + "00000012 0001 0005 0a01020318 0001 0005 0a01020318", "types must strictly increase", nil},
		{"out of order", hdr + "00000011 0003 0004 00000578 0001 0005 0a01020318", "types must strictly increase", nil},
		{"type zero first", hdr + "0000000d 0000 0000 0001 0005 0a01020318", "attribute type 0 is not defined (types start at 1)", nil},
		{"type zero later", hdr + "0000000d 0001 0005 0a01020318 0000 0000", "attribute type 0 is not defined", nil},
		{"unknown attribute", hdr + "0000000d 0001 0005 0a01020318 0009 0000", "unknown request attribute 9", nil},
		{"peer family", hdr + "0000001d 0001 0005 0a01020318 0002 0010 fd000000000000000000000000000002", "different families", nil},
		{"mapped address", hdr + "00000015 0001 0011 00000000000000000000ffff0a010203 60", "IPv4-mapped", nil},
		{"mapped peer", hdr + "00000029 0001 0011 fd000000000000000000000000000001 40 0002 0010 00000000000000000000ffff0a010203", "peer ::ffff:10.1.2.3 is IPv4-mapped", nil},
		{"peer length", hdr + "0000000f 0001 0005 0a01020318 0002 0002 0a01", "peer attribute is 2 bytes", nil},
		{"mtu zero", hdr + "00000011 0001 0005 0a01020318 0003 0004 00000000", "mtu 0 is outside", nil},
		{"mtu huge", hdr + "00000011 0001 0005 0a01020318 0003 0004 00010000", "mtu 65536 is outside", nil},
		{"mtu short", hdr + "0000000f 0001 0005 0a01020318 0003 0002 0578", "is 2 bytes, want 4", nil},
		{"empty name", hdr + "0000000d 0001 0005 0a01020318 0004 0000", "name attribute is 0 bytes", nil},
		{"long name", hdr + "0000001d 0001 0005 0a01020318 0004 0010 41414141414141414141414141414141", "name attribute is 16 bytes", nil},
		{"unknown flag", hdr + "00000011 0001 0005 0a01020318 0005 0004 00000008", "unknown flag bits 0x8", nil},
		{"zero queues", hdr + "0000000f 0001 0005 0a01020318 0006 0002 0000", "queues 0 is outside", nil},
		{"too many queues", hdr + "0000000f 0001 0005 0a01020318 0006 0002 00fe", "queues 254 is outside", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := unmarshalRequest(unhex(t, tc.hex))
			if err == nil {
				t.Fatal("unmarshalRequest succeeded")
			}
			if !errors.Is(err, errMalformed) {
				t.Errorf("error %v does not wrap errMalformed", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeResponseErrors(t *testing.T) {
	hdr := "544e4452 01 02 0000"
	cases := []struct{ name, hex, want string }{
		{"no status", hdr + "00000000", "no status attribute"},
		{"ok without fds", hdr + "00000016 0001 0002 0000 0004 0004 74756e30 0005 0004 00000007", "without name, index or fd count"},
		{"failure with fds", hdr + "0000000c 0001 0002 0006 0006 0002 0001", "failure response announces 1 descriptors"},
		{"errno zero", hdr + "0000000e 0001 0002 0006 0003 0004 00000000", "errno attribute is 0"},
		{"bad utf-8", hdr + "0000000b 0001 0002 0006 0002 0001 ff", "not UTF-8"},
		{"index zero", hdr + "0000000e 0001 0002 0006 0005 0004 00000000", "index 0 is outside"},
		{"index negative", hdr + "0000000e 0001 0002 0006 0005 0004 80000000", "index 2147483648 is outside"},
		{"too many fds", hdr + "0000000c 0001 0002 0000 0006 0002 00fe", "fd count 254"},
		{"unknown attribute", hdr + "0000000a 0001 0002 0000 0007 0000", "unknown response attribute 7"},
		{"request type", "544e4452 01 01 0000 00000000", "frame type 1, want 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := unmarshalResponse(unhex(t, tc.hex))
			if err == nil || !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("unmarshalResponse error = %v, want errMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

func TestMarshalRequestRefuses(t *testing.T) {
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"no address", Request{}, "address: missing"},
		{"mapped", Request{Addr: netip.MustParsePrefix("::ffff:10.0.0.1/128")}, "no wire form"},
		{"zoned peer", Request{Addr: netip.MustParsePrefix("fe80::1/64"), Peer: netip.MustParseAddr("fe80::2%eth0")}, "peer: fe80::2%eth0 has no wire form"},
		{"mapped peer", Request{Addr: netip.MustParsePrefix("fd00::1/64"), Peer: netip.MustParseAddr("::ffff:10.0.0.1")}, "peer: ::ffff:10.0.0.1 has no wire form"},
		{"peer family", Request{Addr: netip.MustParsePrefix("fd00::1/64"), Peer: netip.MustParseAddr("10.0.0.1")}, "peer: 10.0.0.1 has no wire form"},
		{"mtu", Request{Addr: netip.MustParsePrefix("fd00::1/64"), MTU: 70000}, "mtu: 70000"},
		{"name", Request{Addr: netip.MustParsePrefix("fd00::1/64"), Name: "0123456789abcdef"}, "name: 16 bytes"},
		{"queues", Request{Addr: netip.MustParsePrefix("fd00::1/64"), Queues: 300}, "queues: 300"},
	}
	for _, tc := range cases {
		if _, err := marshalRequest(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: marshalRequest error = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestMarshalResponseCutsMessage(t *testing.T) {
	long := strings.Repeat("é", MaxMessageLen) // 2 bytes each
	frame, err := marshalResponse(response{Status: StatusDenied, Message: long + "\xff"})
	if err != nil {
		t.Fatal(err)
	}
	if len(frame) > MaxFrameSize {
		t.Fatalf("frame is %d bytes", len(frame))
	}
	r, err := unmarshalResponse(frame)
	if err != nil {
		t.Fatalf("unmarshalResponse of a cut message: %v", err)
	}
	if len(r.Message) > MaxMessageLen || !strings.HasSuffix(r.Message, "...") || !strings.HasPrefix(r.Message, "éé") {
		t.Fatalf("message is %d bytes: %q...", len(r.Message), r.Message[:10])
	}
	if _, err := marshalResponse(response{Status: StatusOK, Name: "x", Index: 1, Fds: MaxQueues + 1}); err == nil {
		t.Error("marshalResponse accepted 254 descriptors")
	}
}

// checkDecodedRequest is what the fuzz target asserts of a successful
// decode: the canonical re-encoding decodes to the same request, and
// Validate does not panic.
func checkDecodedRequest(t *testing.T, r Request) {
	again, err := marshalRequest(r)
	if err != nil {
		t.Fatalf("decoded request %+v does not re-encode: %v", r, err)
	}
	r2, err := unmarshalRequest(again)
	if err != nil {
		t.Fatalf("re-encoded request does not decode: %v", err)
	}
	if r2 != r {
		t.Fatalf("round trip changed the request: %+v -> %+v", r, r2)
	}
	if len(again) > MaxFrameSize {
		t.Fatalf("re-encoding is %d bytes", len(again))
	}
	_ = r.Validate()
	_ = r.String()
}

// FuzzDecodeRequest feeds arbitrary frames to the server's decoder. It must
// never panic, every failure must wrap errMalformed, and what decodes must
// survive a round trip. testdata/fuzz/FuzzDecodeRequest keeps the corpus.
func FuzzDecodeRequest(f *testing.F) {
	for _, g := range goldenRequests {
		f.Add(unhex(f, g.hex))
	}
	f.Add(unhex(f, "544e4452 01 01 0000 00000000"))
	f.Add(unhex(f, "544e4452 02 01 0000 00000000"))
	f.Add(unhex(f, "544e4452 01 01 0000 0000000d 0001 0005 0a01020318 0009 0000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := parseHeader(b); err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("parseHeader error %v does not wrap errMalformed", err)
		}
		r, err := unmarshalRequest(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		if len(b) > MaxFrameSize {
			t.Fatalf("a %d-byte frame decoded", len(b))
		}
		checkDecodedRequest(t, r)
	})
}

// FuzzDecodeResponse does the same for the client's decoder.
func FuzzDecodeResponse(f *testing.F) {
	for _, g := range goldenResponses {
		f.Add(unhex(f, g.hex))
	}
	f.Add(unhex(f, "544e4452 01 02 0000 0000000b 0001 0002 0006 0002 0001 ff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshalResponse(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		again, err := marshalResponse(r)
		if err != nil {
			t.Fatalf("decoded response %+v does not re-encode: %v", r, err)
		}
		r2, err := unmarshalResponse(again)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}
