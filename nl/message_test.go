package nl

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// unhex decodes hex written for people: whitespace and // comments are
// ignored.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.Lines(s) {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func skipUnlessLittleEndian(t *testing.T) {
	t.Helper()
	if nativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are written for a little-endian host")
	}
}

// The requests Conn sends, compared with bytes worked out by hand from the
// kernel's struct layouts (include/uapi/linux/*.h). Each is the first
// request of a fresh Conn, so its seq is 1; nlmsg_pid is 0 (the kernel
// fills in the sender).
func TestGoldenRequests(t *testing.T) {
	skipUnlessLittleEndian(t)
	tests := []struct {
		name string
		call func(c *Conn) error
		want string
	}{
		{"RTM_NEWADDR IPv4 with peer", func(c *Conn) error {
			return c.AddAddr(Addr{Index: 7, Prefix: mustPrefix("10.1.2.3/24"), Peer: mustAddr("10.1.2.4")})
		}, `
			28000000 1400 0506 01000000 00000000 // len 40, RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE, seq 1, pid 0
			02 18 00 00 07000000                 // AF_INET, /24, ifa_flags 0, scope 0, index 7
			0800 0200 0a010203                   // IFA_LOCAL 10.1.2.3
			0800 0100 0a010204                   // IFA_ADDRESS (peer) 10.1.2.4
		`},
		{"RTM_NEWADDR IPv6 with NODAD", func(c *Conn) error {
			return c.AddAddr(Addr{Index: 3, Prefix: mustPrefix("fd00::1/64"), Flags: IFA_F_NODAD})
		}, `
			48000000 1400 0506 01000000 00000000 // len 72
			0a 40 02 00 03000000                 // AF_INET6, /64, IFA_F_NODAD, scope 0, index 3
			1400 0200 fd000000000000000000000000000001 // IFA_LOCAL fd00::1
			1400 0100 fd000000000000000000000000000001 // IFA_ADDRESS, no peer: the address again
			0800 0800 02000000                   // IFA_FLAGS NODAD
		`},
		{"RTM_NEWADDR IPv6 replace with peer and flags above 8 bits", func(c *Conn) error {
			return c.ReplaceAddr(Addr{Index: 3, Prefix: mustPrefix("fd00::1/128"), Peer: mustAddr("fd00::2"), Flags: IFA_F_NODAD | IFA_F_NOPREFIXROUTE})
		}, `
			48000000 1400 0505 01000000 00000000 // REQUEST|ACK|REPLACE|CREATE
			0a 80 02 00 03000000                 // /128, ifa_flags keeps the low 8 bits only
			1400 0200 fd000000000000000000000000000001
			1400 0100 fd000000000000000000000000000002 // peer
			0800 0800 02020000                   // IFA_FLAGS NODAD|NOPREFIXROUTE
		`},
		{"RTM_DELADDR IPv4", func(c *Conn) error {
			return c.DeleteAddr(Addr{Index: 7, Prefix: mustPrefix("10.1.2.3/24"), Flags: IFA_F_NODAD})
		}, `
			28000000 1500 0500 01000000 00000000 // RTM_DELADDR, REQUEST|ACK
			02 18 00 00 07000000                 // flags are not sent on delete
			0800 0200 0a010203
			0800 0100 0a010203
		`},
		{"RTM_SETLINK up", func(c *Conn) error { return c.SetLinkUp(5) }, `
			20000000 1300 0500 01000000 00000000 // len 32, RTM_SETLINK, REQUEST|ACK
			00 00 0000 05000000                  // AF_UNSPEC, pad, type 0, index 5
			01000000 01000000                    // ifi_flags IFF_UP, ifi_change IFF_UP
		`},
		{"RTM_SETLINK down", func(c *Conn) error { return c.SetLinkDown(5) }, `
			20000000 1300 0500 01000000 00000000
			00 00 0000 05000000
			00000000 01000000                    // IFF_UP cleared, change mask still IFF_UP
		`},
		{"RTM_SETLINK MTU", func(c *Conn) error { return c.SetLinkMTU(5, 1500) }, `
			28000000 1300 0500 01000000 00000000
			00 00 0000 05000000 00000000 00000000 // no flag change
			0800 0400 dc050000                   // IFLA_MTU 1500
		`},
		{"RTM_SETLINK rename (padded name)", func(c *Conn) error { return c.RenameLink(5, "tun0") }, `
			2c000000 1300 0500 01000000 00000000 // len 44
			00 00 0000 05000000 00000000 00000000
			0900 0300 74756e30 00 000000         // IFLA_IFNAME "tun0\0", nla_len 9, padded to 12
		`},
		{"RTM_GETLINK by name", func(c *Conn) error { _, err := c.LinkByName("wg1"); return err }, `
			30000000 1200 0100 01000000 00000000 // len 48, RTM_GETLINK, REQUEST only
			00 00 0000 00000000 00000000 00000000 // index 0: look up by name
			0800 0300 77673100                   // IFLA_IFNAME "wg1\0"
			0800 1d00 08000000                   // IFLA_EXT_MASK RTEXT_FILTER_SKIP_STATS
		`},
		{"RTM_GETLINK dump", func(c *Conn) error { _, err := c.Links(); return err }, `
			28000000 1200 0103 01000000 00000000 // REQUEST|DUMP (ROOT|MATCH)
			00 00 0000 00000000 00000000 00000000
			0800 1d00 08000000
		`},
		{"RTM_GETADDR dump", func(c *Conn) error { _, err := c.Addrs(0); return err }, `
			18000000 1600 0103 01000000 00000000 // len 24, RTM_GETADDR, REQUEST|DUMP
			00 00 00 00 00000000                 // AF_UNSPEC: both families
		`},
		{"RTM_NEWROUTE IPv4 onto a link", func(c *Conn) error {
			return c.AddRoute(Route{Dst: mustPrefix("10.9.0.0/16"), Index: 4})
		}, `
			34000000 1800 0506 01000000 00000000 // len 52, RTM_NEWROUTE, REQUEST|ACK|EXCL|CREATE
			02 10 00 00 fe 04 fd 01 00000000     // AF_INET /16, main, RTPROT_STATIC, scope link, unicast
			0800 0100 0a090000                   // RTA_DST
			0800 0400 04000000                   // RTA_OIF 4
			0800 0f00 fe000000                   // RTA_TABLE main
		`},
		{"RTM_NEWROUTE IPv4 default via gateway", func(c *Conn) error {
			return c.AddRoute(Route{Dst: mustPrefix("0.0.0.0/0"), Gateway: mustAddr("10.1.2.4"), Priority: 100})
		}, `
			34000000 1800 0506 01000000 00000000
			02 00 00 00 fe 04 00 01 00000000     // /0: no RTA_DST; scope universe with a gateway
			0800 0500 0a010204                   // RTA_GATEWAY
			0800 0600 64000000                   // RTA_PRIORITY 100
			0800 0f00 fe000000
		`},
		{"RTM_DELROUTE IPv6, table above 255", func(c *Conn) error {
			return c.DeleteRoute(Route{Dst: mustPrefix("fd00:9::/64"), Index: 4, Gateway: mustAddr("fe80::1"), Priority: 7, Table: 1000})
		}, `
			5c000000 1900 0500 01000000 00000000 // len 92, RTM_DELROUTE, REQUEST|ACK
			0a 40 00 00 00 00 ff 00 00000000     // table in RTA_TABLE only; any protocol, scope, type
			1400 0100 fd000009000000000000000000000000 // RTA_DST
			0800 0400 04000000                   // RTA_OIF
			1400 0500 fe800000000000000000000000000001 // RTA_GATEWAY
			0800 0600 07000000                   // RTA_PRIORITY
			0800 0f00 e8030000                   // RTA_TABLE 1000
		`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFake()
			k.handle = func(req message) {
				switch {
				case req.Header.Flags&nlmFDump == nlmFDump:
					k.deliver(0, k.done(req, 0, 0, nil))
				case req.Header.Flags&nlmFAck != 0:
					k.deliver(0, k.ack(req))
				default: // a get: answer that the link is missing
					k.deliver(0, k.errMsg(req, unix.ENODEV, true, nil))
				}
			}
			if err := tt.call(NewConn(k)); err != nil && !errors.Is(err, unix.ENODEV) {
				t.Errorf("call failed: %v", err)
			}
			if len(k.sent) != 1 {
				t.Fatalf("%d requests sent, want 1", len(k.sent))
			}
			got := marshalMessage(k.sent[0].Header, k.sent[0].Data)
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("request bytes\n got %x\nwant %x", got, want)
			}
		})
	}
}

func TestParseMessages(t *testing.T) {
	ack := marshalMessage(header{Type: nlmsgError, Seq: 1, Pid: 9}, make([]byte, 20))
	odd := marshalMessage(header{Type: 16, Seq: 2}, []byte{1, 2, 3, 4, 5})[:21] // last message, padding absent
	tests := []struct {
		name    string
		in      []byte
		want    []message
		wantErr string
	}{
		{"empty", nil, nil, ""},
		{"one", ack, []message{{header{Len: 36, Type: nlmsgError, Seq: 1, Pid: 9}, make([]byte, 20)}}, ""},
		{"two, last unpadded", append(bytes.Clone(ack), odd...), []message{
			{header{Len: 36, Type: nlmsgError, Seq: 1, Pid: 9}, make([]byte, 20)},
			{header{Len: 21, Type: 16, Seq: 2}, []byte{1, 2, 3, 4, 5}},
		}, ""},
		{"header only", marshalMessage(header{Type: nlmsgDone}, nil), []message{{header{Len: 16, Type: nlmsgDone}, []byte{}}}, ""},
		{"truncated header", ack[:15], nil, "a header needs 16"},
		{"trailing bytes", append(bytes.Clone(ack), 0, 0, 0, 0), nil, "a header needs 16"},
		{"len below header", func() []byte { b := bytes.Clone(ack); b[0] = 15; return b }(), nil, "shorter than the header"},
		{"len zero", make([]byte, 16), nil, "shorter than the header"},
		{"len past buffer", func() []byte { b := bytes.Clone(ack); b[0] = 37; return b }(), nil, "runs past"},
		{"len 2^32-1", func() []byte { b := bytes.Clone(ack); nativeEndian.PutUint32(b, ^uint32(0)); return b }(), nil, "runs past"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMessages(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrMalformed mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseAttrs(t *testing.T) {
	var e encoder
	e.u32(4, 1500)
	e.str(3, "tun0")
	e.nested(18, func(e *encoder) {
		e.str(1, "tun")
		e.bytes(2, nil)
	})
	e.bytes(1|nlaFNetByteorder, []byte{10, 0, 0, 1})
	attrs, err := parseAttrs(e.b)
	if err != nil {
		t.Fatal(err)
	}
	if len(attrs) != 4 {
		t.Fatalf("%d attributes, want 4", len(attrs))
	}
	if v, err := attrU32(attrs[0]); err != nil || v != 1500 {
		t.Errorf("u32 = %d, %v", v, err)
	}
	if s := attrString(attrs[1]); s != "tun0" || len(attrs[1].Data) != 5 {
		t.Errorf("string %q (%d bytes), want tun0 and its NUL", s, len(attrs[1].Data))
	}
	if attrs[2].Type != 18|nlaFNested || attrs[2].kind() != 18 {
		t.Errorf("nested type %#x, want NLA_F_NESTED|18", attrs[2].Type)
	}
	inner, err := parseAttrs(attrs[2].Data)
	if err != nil || len(inner) != 2 || attrString(inner[0]) != "tun" || len(inner[1].Data) != 0 {
		t.Errorf("nested attributes %+v, %v", inner, err)
	}
	if attrs[3].kind() != 1 {
		t.Errorf("kind %d, want 1 without NLA_F_NET_BYTEORDER", attrs[3].kind())
	}
	if s := attrString(attr{Data: []byte("no-nul")}); s != "no-nul" {
		t.Errorf("unterminated string %q", s)
	}

	bad := []struct {
		name string
		in   []byte
		want string
	}{
		{"nla_len 0 (would loop forever)", []byte{0, 0, 1, 0, 0, 0, 0, 0}, "shorter than its header"},
		{"nla_len 3", []byte{3, 0, 1, 0}, "shorter than its header"},
		{"nla_len past end", []byte{9, 0, 1, 0, 1, 2, 3, 4}, "runs past"},
		{"stray bytes", append(bytes.Clone(e.b), 1, 2), "a header needs 4"},
	}
	for _, tt := range bad {
		if _, err := parseAttrs(tt.in); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want ErrMalformed mentioning %q", tt.name, err, tt.want)
		}
	}
	for _, a := range []attr{{Type: 4, Data: []byte{1, 2, 3}}, {Type: 4, Data: make([]byte, 8)}} {
		if _, err := attrU32(a); !errors.Is(err, ErrMalformed) {
			t.Errorf("attrU32 of %d bytes: %v, want ErrMalformed", len(a.Data), err)
		}
	}
}

func TestParseLink(t *testing.T) {
	want := Link{Index: 3, Name: "eth0", Flags: 0x1043, MTU: 9000, Type: 1, OperState: OperUp,
		HardwareAddr: []byte{2, 0, 0, 0, 0, 1}}
	got, err := parseLink(linkPayload(want))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseLink = %+v, %v; want %+v", got, err, want)
	}
	for name, p := range map[string][]byte{
		"short header":  make([]byte, 15),
		"operstate u32": func() []byte { e := encoder{b: make([]byte, 16)}; e.u32(iflaOperstate, 6); return e.b }(),
		"bad attrs":     append(make([]byte, 16), 2, 0, 3, 0),
	} {
		if _, err := parseLink(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseAddr(t *testing.T) {
	mk := func(fam, plen uint8, attrs func(e *encoder)) []byte {
		e := encoder{b: ifAddrmsg{Family: fam, PrefixLen: plen, Flags: 0x80, Scope: 0, Index: 2}.marshal()}
		attrs(&e)
		return e.b
	}
	ip := func(s string) []byte { return ipBytes(netip.MustParseAddr(s)) }
	tests := []struct {
		name   string
		in     []byte
		want   Addr
		wantOK bool
	}{
		{"IPv4 no peer", mk(afInet, 24, func(e *encoder) {
			e.bytes(ifaAddress, ip("10.0.0.1"))
			e.bytes(ifaLocal, ip("10.0.0.1"))
		}), Addr{Index: 2, Prefix: mustPrefix("10.0.0.1/24"), Flags: 0x80}, true},
		{"IPv4 peer", mk(afInet, 32, func(e *encoder) {
			e.bytes(ifaAddress, ip("10.0.0.2"))
			e.bytes(ifaLocal, ip("10.0.0.1"))
			e.u32(ifaFlags, 0x280)
		}), Addr{Index: 2, Prefix: mustPrefix("10.0.0.1/32"), Peer: mustAddr("10.0.0.2"), Flags: 0x280}, true},
		{"IPv6 address only", mk(afInet6, 64, func(e *encoder) {
			e.bytes(ifaAddress, ip("fd00::1"))
		}), Addr{Index: 2, Prefix: mustPrefix("fd00::1/64"), Flags: 0x80}, true},
		{"IPv6 peer", mk(afInet6, 128, func(e *encoder) {
			e.bytes(ifaLocal, ip("fd00::1"))
			e.bytes(ifaAddress, ip("fd00::2"))
		}), Addr{Index: 2, Prefix: mustPrefix("fd00::1/128"), Peer: mustAddr("fd00::2"), Flags: 0x80}, true},
		{"other family skipped", mk(45, 8, func(e *encoder) { e.bytes(ifaLocal, []byte{1}) }), Addr{}, false},
	}
	for _, tt := range tests {
		got, ok, err := parseAddr(tt.in)
		if err != nil || ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %v, %v; want %+v, %v", tt.name, got, ok, err, tt.want, tt.wantOK)
		}
	}
	bad := map[string][]byte{
		"short":          make([]byte, 7),
		"prefix too big": mk(afInet, 33, func(e *encoder) { e.bytes(ifaLocal, ip("10.0.0.1")) }),
		"v6 bytes in v4": mk(afInet, 24, func(e *encoder) { e.bytes(ifaLocal, ip("fd00::1")) }),
		"no address":     mk(afInet6, 64, func(e *encoder) { e.u32(ifaFlags, 0) }),
		"flags u8":       mk(afInet, 24, func(e *encoder) { e.bytes(ifaLocal, ip("10.0.0.1")); e.bytes(ifaFlags, []byte{1}) }),
	}
	for name, in := range bad {
		if _, _, err := parseAddr(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseError(t *testing.T) {
	// An uncapped error echoes the request, whose length need not be a
	// multiple of 4: the TLVs start after its padding.
	req := marshalMessage(header{Type: rtmSetLink, Flags: 5, Seq: 3}, []byte{1, 2, 3, 4, 5})
	reqLen := nativeEndian.Uint32(req) // 21
	mk := func(flags uint16, errno int32, echo []byte, tlvs []byte) message {
		p := nativeEndian.AppendUint32(nil, uint32(errno))
		p = append(p, echo...)
		p = append(p, tlvs...)
		return message{Header: header{Type: nlmsgError, Flags: flags}, Data: p}
	}
	tlvs := extAck("bad thing", 20)
	tests := []struct {
		name string
		m    message
		want status
	}{
		{"ack", mk(nlmFCapped, 0, req[:16], nil), status{}},
		{"capped with TLVs", mk(nlmFCapped|nlmFAckTLVs, -22, req[:16], tlvs), status{Errno: unix.EINVAL, Message: "bad thing", Offset: 20}},
		{"uncapped with TLVs, odd request length", mk(nlmFAckTLVs, -22, req, tlvs), status{Errno: unix.EINVAL, Message: "bad thing", Offset: 20}},
		{"uncapped without TLVs", mk(0, -17, req, nil), status{Errno: unix.EEXIST}},
		{"old kernel: capped without the flag, no TLVs", mk(0, -1, req[:16], nil), status{Errno: unix.EPERM}},
		{"message without NUL", mk(nlmFCapped|nlmFAckTLVs, -22, req[:16], func() []byte { var e encoder; e.bytes(nlmsgerrAttrMsg, []byte("abc")); return e.b }()), status{Errno: unix.EINVAL, Message: "abc"}},
	}
	for _, tt := range tests {
		got, err := parseError(tt.m)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	if reqLen != 21 {
		t.Fatalf("test request is %d bytes, want an odd length", reqLen)
	}

	// A broken echo or broken TLVs keep the errno and report the damage.
	bogus := bytes.Clone(req)
	nativeEndian.PutUint32(bogus, 200)
	for name, m := range map[string]message{
		"echo length past payload": mk(nlmFAckTLVs, -22, bogus, tlvs),
		"bad TLV":                  mk(nlmFCapped|nlmFAckTLVs, -22, req[:16], []byte{1, 0, 1, 0}),
		"offset of 2 bytes":        mk(nlmFCapped|nlmFAckTLVs, -22, req[:16], []byte{6, 0, 2, 0, 1, 0, 0, 0}),
	} {
		st, err := parseError(m)
		if err != nil || st.Errno != unix.EINVAL || !errors.Is(st.TLVErr, ErrMalformed) {
			t.Errorf("%s: got %+v, %v; want EINVAL with TLVErr", name, st, err)
		}
	}
	if _, err := parseError(mk(0, -22, req[:10], nil)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short NLMSG_ERROR: %v, want ErrMalformed", err)
	}
}

// kernelErrno encodes an errno as the kernel's negative int.
func kernelErrno(errno unix.Errno) []byte {
	return nativeEndian.AppendUint32(nil, uint32(-int32(errno)))
}

func TestParseDone(t *testing.T) {
	done := func(flags uint16, p []byte) message {
		return message{Header: header{Type: nlmsgDone, Flags: flags}, Data: p}
	}
	tests := []struct {
		name string
		m    message
		want status
	}{
		{"empty", done(nlmFMulti, nil), status{}},
		{"zero", done(nlmFMulti, make([]byte, 4)), status{}},
		{"error with TLVs", done(nlmFMulti|nlmFAckTLVs, append(kernelErrno(unix.EINTR), extAck("busy", 0)...)),
			status{Errno: unix.EINTR, Message: "busy"}},
	}
	for _, tt := range tests {
		got, err := parseDone(tt.m)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	if _, err := parseDone(done(nlmFMulti, []byte{1, 2})); !errors.Is(err, ErrMalformed) {
		t.Errorf("2-byte NLMSG_DONE: %v, want ErrMalformed", err)
	}
}
