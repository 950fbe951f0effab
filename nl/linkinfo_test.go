package nl

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A link message written out by hand from the kernel's layouts, as a
// multi-queue TUN device with an owner, an alias and three queues (one
// detached) would be reported, with no IFLA_TUN_GROUP because none is set.
// One nest carries NLA_F_NESTED and the other not: the parser must take
// both, whichever the kernel uses.
const tunLinkGolden = `
	00 00 feff 09000000 90100000 00000000 // ifinfomsg: ARPHRD_NONE, index 9, POINTOPOINT|NOARP|MULTICAST
	0900 0300 74756e39 00 000000          // IFLA_IFNAME "tun9\0", padded
	0800 1400 77656200                    // IFLA_IFALIAS "web\0"
	5000 1200                             // IFLA_LINKINFO, nla_len 80
	  0800 0100 74756e00                  //   IFLA_INFO_KIND "tun\0"
	  4400 0280                           //   IFLA_INFO_DATA|NLA_F_NESTED, nla_len 68
	    0500 0300 01 000000               //     IFLA_TUN_TYPE IFF_TUN
	    0800 0100 e8030000                //     IFLA_TUN_OWNER 1000
	    0500 0400 00 000000               //     IFLA_TUN_PI 0
	    0500 0500 01 000000               //     IFLA_TUN_VNET_HDR 1
	    0500 0600 01 000000               //     IFLA_TUN_PERSIST 1
	    0500 0700 01 000000               //     IFLA_TUN_MULTI_QUEUE 1
	    0800 0800 03000000                //     IFLA_TUN_NUM_QUEUES 3
	    0800 0900 01000000                //     IFLA_TUN_NUM_DISABLED_QUEUES 1
`

var tunLinkGoldenWant = Link{Index: 9, Name: "tun9", Flags: 0x1090, Type: 65534, Alias: "web", Kind: "tun",
	Tun: &TunInfo{Type: 1, Owner: 1000, HasOwner: true, VnetHdr: true, Persist: true, MultiQueue: true, NumQueues: 3, NumDisabledQueues: 1}}

func TestParseLinkInfoGolden(t *testing.T) {
	skipUnlessLittleEndian(t)
	got, err := parseLink(unhex(t, tunLinkGolden))
	if err != nil || !reflect.DeepEqual(got, tunLinkGoldenWant) {
		t.Fatalf("parseLink = %+v (Tun %+v), %v\nwant %+v (Tun %+v)", got, got.Tun, err, tunLinkGoldenWant, tunLinkGoldenWant.Tun)
	}
	// The fake kernel's encoder writes the same attributes (in its own
	// order, and with NLA_F_NESTED on both nests).
	again, err := parseLink(linkPayload(tunLinkGoldenWant))
	if err != nil || !reflect.DeepEqual(again, tunLinkGoldenWant) {
		t.Errorf("parseLink(linkPayload) = %+v (Tun %+v), %v", again, again.Tun, err)
	}
}

// linkWithInfo builds a link message whose IFLA_LINKINFO fn writes.
func linkWithInfo(fn func(e *encoder)) []byte {
	e := encoder{b: ifInfomsg{Index: 3}.marshal()}
	e.str(iflaIfname, "x0")
	e.nested(iflaLinkinfo, fn)
	return e.b
}

func TestParseLinkInfo(t *testing.T) {
	good := []struct {
		name string
		in   []byte
		kind string
		tun  *TunInfo
	}{
		{"veth: its data is not decoded", linkWithInfo(func(e *encoder) {
			e.str(iflaInfoKind, "veth")
			e.bytes(iflaInfoData, []byte{1, 2, 3}) // garbage, never looked at
		}), "veth", nil},
		{"tun without data", linkWithInfo(func(e *encoder) { e.str(iflaInfoKind, "tun") }), "tun", nil},
		{"data before kind", linkWithInfo(func(e *encoder) {
			e.nested(iflaInfoData, func(e *encoder) { e.bytes(iflaTunType, []byte{2}); e.u32(iflaTunGroup, 0) })
			e.str(iflaInfoKind, "tun")
		}), "tun", &TunInfo{Type: 2, HasGroup: true}},
		{"unknown tun attribute ignored", linkWithInfo(func(e *encoder) {
			e.str(iflaInfoKind, "tun")
			e.nested(iflaInfoData, func(e *encoder) { e.bytes(iflaTunType, []byte{1}); e.bytes(99, make([]byte, 7)) })
		}), "tun", &TunInfo{Type: 1}},
		{"owner root", linkWithInfo(func(e *encoder) {
			e.str(iflaInfoKind, "tun")
			e.nested(iflaInfoData, func(e *encoder) { e.u32(iflaTunOwner, 0) })
		}), "tun", &TunInfo{HasOwner: true}},
	}
	for _, tt := range good {
		l, err := parseLink(tt.in)
		if err != nil || l.Kind != tt.kind || !reflect.DeepEqual(l.Tun, tt.tun) {
			t.Errorf("%s: Kind %q Tun %+v, %v; want %q %+v", tt.name, l.Kind, l.Tun, err, tt.kind, tt.tun)
		}
	}

	tunData := func(fn func(e *encoder)) []byte {
		return linkWithInfo(func(e *encoder) {
			e.str(iflaInfoKind, "tun")
			e.nested(iflaInfoData, fn)
		})
	}
	bad := []struct {
		name string
		in   []byte
		want string
	}{
		{"linkinfo stray bytes", func() []byte {
			e := encoder{b: ifInfomsg{Index: 3}.marshal()}
			e.bytes(iflaLinkinfo, []byte{1, 2})
			return e.b
		}(), "IFLA_LINKINFO"},
		{"tun data stray bytes", linkWithInfo(func(e *encoder) {
			e.str(iflaInfoKind, "tun")
			e.bytes(iflaInfoData, []byte{5, 0, 3})
		}), "IFLA_INFO_DATA"},
		{"PI as u32", tunData(func(e *encoder) { e.u32(iflaTunPI, 1) }), "want 1 for a u8"},
		{"type as u32", tunData(func(e *encoder) { e.u32(iflaTunType, 1) }), "want 1 for a u8"},
		{"owner of 2 bytes", tunData(func(e *encoder) { e.bytes(iflaTunOwner, []byte{1, 0}) }), "want 4 for a u32"},
		{"group of 8 bytes", tunData(func(e *encoder) { e.bytes(iflaTunGroup, make([]byte, 8)) }), "want 4 for a u32"},
		{"queues as u8", tunData(func(e *encoder) { e.bytes(iflaTunNumQueues, []byte{1}) }), "want 4 for a u32"},
		{"disabled as u16", tunData(func(e *encoder) { e.bytes(iflaTunNumDisabledQueues, []byte{1, 0}) }), "want 4 for a u32"},
		{"persist empty", tunData(func(e *encoder) { e.bytes(iflaTunPersist, nil) }), "want 1 for a u8"},
	}
	for _, tt := range bad {
		if l, err := parseLink(tt.in); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %+v, %v; want ErrMalformed mentioning %q", tt.name, l, err, tt.want)
		}
	}
}

// The kernel stores an alias without a terminating NUL of ours; it may
// still send one, and the alias ends there.
func TestParseAlias(t *testing.T) {
	for _, v := range [][]byte{[]byte("web"), []byte("web\x00"), []byte("web\x00\x00")} {
		e := encoder{b: ifInfomsg{Index: 3}.marshal()}
		e.bytes(iflaIfalias, v)
		if l, err := parseLink(e.b); err != nil || l.Alias != "web" {
			t.Errorf("IFLA_IFALIAS %q: Alias %q, %v", v, l.Alias, err)
		}
	}
}

func TestGoldenNewRequests(t *testing.T) {
	skipUnlessLittleEndian(t)
	tests := []struct {
		name string
		call func(c *Conn) error
		want string
	}{
		{"RTM_SETLINK alias", func(c *Conn) error { return c.SetLinkAlias(5, "web") }, `
			28000000 1300 0500 01000000 00000000 // len 40, RTM_SETLINK, REQUEST|ACK
			00 00 0000 05000000 00000000 00000000 // index 5, no flag change
			0700 1400 776562 00                  // IFLA_IFALIAS "web" without NUL, nla_len 7, padded
		`},
		{"RTM_SETLINK alias cleared", func(c *Conn) error { return c.SetLinkAlias(5, "") }, `
			24000000 1300 0500 01000000 00000000 // len 36
			00 00 0000 05000000 00000000 00000000
			0400 1400                            // IFLA_IFALIAS, empty
		`},
		{"RTM_DELLINK", func(c *Conn) error { return c.DeleteLink(5) }, `
			20000000 1100 0500 01000000 00000000 // len 32, RTM_DELLINK, REQUEST|ACK
			00 00 0000 05000000 00000000 00000000 // index 5
		`},
		{"RTM_NEWADDR IPv4 with broadcast", func(c *Conn) error {
			return c.AddAddr(Addr{Index: 7, Prefix: mustPrefix("10.1.2.3/24"), Broadcast: mustAddr("10.1.2.255")})
		}, `
			30000000 1400 0506 01000000 00000000 // len 48, RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE
			02 18 00 00 07000000                 // AF_INET, /24, index 7
			0800 0200 0a010203                   // IFA_LOCAL
			0800 0100 0a010203                   // IFA_ADDRESS (no peer: the address again)
			0800 0400 0a0102ff                   // IFA_BROADCAST 10.1.2.255
		`},
		{"RTM_DELADDR leaves the broadcast out", func(c *Conn) error {
			return c.DeleteAddr(Addr{Index: 7, Prefix: mustPrefix("10.1.2.3/24"), Broadcast: mustAddr("10.1.2.255")})
		}, `
			28000000 1500 0500 01000000 00000000
			02 18 00 00 07000000
			0800 0200 0a010203
			0800 0100 0a010203
		`},
		{"RTM_GETROUTE dumps, IPv4 then IPv6", func(c *Conn) error { _, err := c.Routes(); return err }, `
			1c000000 1a00 0103 01000000 00000000 // len 28, RTM_GETROUTE, REQUEST|DUMP, seq 1
			02 00 00 00 00 00 00 00 00000000     // AF_INET, every table, flags 0 (no cache)
			1c000000 1a00 0103 02000000 00000000 // seq 2
			0a 00 00 00 00 00 00 00 00000000     // AF_INET6
		`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFake()
			k.handle = func(req message) {
				if req.Header.Flags&nlmFDump == nlmFDump {
					k.deliver(0, k.done(req, 0, 0, nil))
				} else {
					k.deliver(0, k.ack(req))
				}
			}
			if err := tt.call(NewConn(k)); err != nil {
				t.Errorf("call failed: %v", err)
			}
			var got []byte
			for _, m := range k.sent {
				got = append(got, marshalMessage(m.Header, m.Data)...)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("request bytes\n got %x\nwant %x", got, want)
			}
		})
	}
}

func TestNewArgumentsRejected(t *testing.T) {
	v4 := mustPrefix("10.0.0.1/24")
	tests := []rejectCase{
		{"alias index", func(c *Conn) error { return c.SetLinkAlias(0, "x") }, "link index 0"},
		{"alias 256 bytes", func(c *Conn) error { return c.SetLinkAlias(2, strings.Repeat("a", 256)) }, "alias of 256 bytes, the limit is 255"},
		{"alias NUL", func(c *Conn) error { return c.SetLinkAlias(2, "a\x00b") }, "NUL"},
		{"delete index", func(c *Conn) error { return c.DeleteLink(-3) }, "link index -3"},
		{"IPv6 broadcast", func(c *Conn) error {
			return c.AddAddr(Addr{Index: 2, Prefix: mustPrefix("fd00::1/64"), Broadcast: mustAddr("fd00::ff")})
		}, "only IPv4"},
		{"IPv6 broadcast on IPv4", func(c *Conn) error {
			return c.ReplaceAddr(Addr{Index: 2, Prefix: v4, Broadcast: mustAddr("fd00::ff")})
		}, "only IPv4"},
		{"4-in-6 broadcast", func(c *Conn) error {
			return c.AddAddr(Addr{Index: 2, Prefix: v4, Broadcast: mustAddr("::ffff:10.0.0.255")})
		}, "Addr.Broadcast ::ffff:10.0.0.255 is an IPv4-mapped"},
	}
	checkRejected(t, tests)
	// 255 bytes is allowed.
	k := newFake()
	k.handle = ackHandler(k, nil)
	if err := NewConn(k).SetLinkAlias(2, strings.Repeat("a", 255)); err != nil {
		t.Errorf("255-byte alias: %v", err)
	}
}

// Kind, Tun, Alias, SetLinkAlias and DeleteLink through the fake kernel's
// link table.
func TestLinkInfoRoundTrip(t *testing.T) {
	f := newFakeRTNL()
	f.links[1].Kind = "tun"
	f.links[1].Tun = &TunInfo{Type: 1, Persist: true, Owner: 1000, HasOwner: true, Group: 0, HasGroup: true}
	f.links = append(f.links, Link{Index: 3, Name: "v0", MTU: 1500, Type: 1, HardwareAddr: []byte{2, 0, 0, 0, 0, 3}, Kind: "veth", Alias: "uplink"})
	c := NewConn(f)
	links, err := c.Links()
	if err != nil || !reflect.DeepEqual(links, f.links) {
		t.Fatalf("Links() = %+v, %v\nwant %+v", links, err, f.links)
	}
	if err := c.SetLinkAlias(2, "tundra uid=1000"); err != nil {
		t.Fatal(err)
	}
	if l, err := c.LinkByIndex(2); err != nil || l.Alias != "tundra uid=1000" || l.Tun == nil || *l.Tun != *f.links[1].Tun {
		t.Errorf("after SetLinkAlias: %+v (Tun %+v), %v", l, l.Tun, err)
	}
	if err := c.SetLinkAlias(2, ""); err != nil {
		t.Fatal(err)
	}
	if l, err := c.LinkByIndex(2); err != nil || l.Alias != "" {
		t.Errorf("after clearing the alias: %+v, %v", l, err)
	}
	if err := c.DeleteLink(3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LinkByIndex(3); !errors.Is(err, unix.ENODEV) {
		t.Errorf("deleted link: %v, want ENODEV", err)
	}
	err = c.DeleteLink(3)
	if ne := asError(t, err); !errors.Is(err, unix.ENODEV) || ne.Op != "deletelink" {
		t.Errorf("second DeleteLink: %v, want deletelink ENODEV", err)
	}
}

func TestAddrBroadcastRoundTrip(t *testing.T) {
	f := newFakeRTNL()
	c := NewConn(f)
	addrs := []Addr{
		{Index: 2, Prefix: mustPrefix("10.1.2.3/24"), Broadcast: mustAddr("10.1.2.255")},
		{Index: 2, Prefix: mustPrefix("10.5.0.1/16")},
	}
	for _, a := range addrs {
		if err := c.AddAddr(a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Addrs(2)
	if err != nil || !reflect.DeepEqual(got, addrs) {
		t.Errorf("Addrs = %+v, %v\nwant %+v", got, err, addrs)
	}
}

func TestParseAddrBroadcast(t *testing.T) {
	mk := func(fam uint8, bcast []byte) []byte {
		e := encoder{b: ifAddrmsg{Family: fam, PrefixLen: 24, Index: 2}.marshal()}
		if fam == afInet {
			e.bytes(ifaLocal, []byte{10, 0, 0, 1})
		} else {
			e.bytes(ifaAddress, ipBytes(mustAddr("fd00::1")))
		}
		e.bytes(ifaBroadcast, bcast)
		return e.b
	}
	if a, _, err := parseAddr(mk(afInet, []byte{10, 0, 0, 255})); err != nil || a.Broadcast != mustAddr("10.0.0.255") {
		t.Errorf("IPv4: %+v, %v", a, err)
	}
	for name, in := range map[string][]byte{
		"IPv4 broadcast of 16 bytes": mk(afInet, make([]byte, 16)),
		"IPv4 broadcast of 3 bytes":  mk(afInet, []byte{10, 0, 0}),
		"IPv6 broadcast of 4 bytes":  mk(afInet6, []byte{10, 0, 0, 255}),
	} {
		if _, _, err := parseAddr(in); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "IFA_BROADCAST") {
			t.Errorf("%s: %v, want ErrMalformed naming IFA_BROADCAST", name, err)
		}
	}
}
