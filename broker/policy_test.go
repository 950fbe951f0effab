package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

var testHost = []HostAddr{
	{Name: "lo", Index: 1, Prefix: pfx("127.0.0.1/8")},
	{Name: "lo", Index: 1, Prefix: pfx("::1/128")},
	{Name: "eth0", Index: 2, Prefix: pfx("fd12:3456::10/64")},
	{Name: "eth0", Index: 2, Prefix: pfx("fe80::1/64")},
	{Name: "wg0", Index: 3, Prefix: pfx("fd99::1/128"), Peer: ip("fd99::2")},
	{Name: "ll4", Index: 4, Prefix: pfx("169.254.10.1/24")},
}

func TestPolicyCheck(t *testing.T) {
	p := DefaultPolicy()
	ok := func(r Request) Request {
		if r.Queues == 0 {
			r.Queues = 1
		}
		return r
	}
	cases := []struct {
		name string
		req  Request
		want string // "" = allowed
	}{
		{"ULA", ok(Request{Addr: pfx("fd00:1::1/64")}), ""},
		{"ULA host route with peer", ok(Request{Addr: pfx("fd00:1::1/128"), Peer: ip("fd00:1::2")}), ""},
		{"link-local beside eth0's fe80::/64", ok(Request{Addr: pfx("fe80::99/64")}), ""},
		{"IPv4 link-local", ok(Request{Addr: pfx("169.254.77.1/24")}), "address: 169.254.77.1/24 is not inside an allowed prefix (fc00::/7, fe80::/10)"},
		{"metadata service", ok(Request{Addr: pfx("169.254.169.1/24")}), "not inside an allowed prefix"},
		{"ULA /48", ok(Request{Addr: pfx("fd00:1::1/48")}), ""},
		{"ULA /47", ok(Request{Addr: pfx("fd00:1::1/47")}), "address: prefix length /47 of fd00:1::1/47 is outside the allowed /48../128 for IPv6"},
		{"fc00::/7 taken with a /8", ok(Request{Addr: pfx("fd00::1/8")}), "prefix length /8"},
		{"name pattern", ok(Request{Addr: pfx("fd00:1::1/64"), Name: "tun%d"}), ""},
		{"name tap7", ok(Request{Addr: pfx("fd00:1::1/64"), Name: "tap7", TAP: true, MTU: 9000, Queues: 8}), ""},

		{"global IPv6", ok(Request{Addr: pfx("2001:db8::1/64")}), "address: 2001:db8::1/64 is not inside an allowed prefix (fc00::/7, fe80::/10)"},
		{"private IPv4", ok(Request{Addr: pfx("10.0.0.1/24")}), "not inside an allowed prefix"},
		{"wider than allowed", ok(Request{Addr: pfx("fd00::1/6")}), "fd00::1/6 is not inside an allowed prefix"},
		{"default route", ok(Request{Addr: pfx("fd00::1/0")}), "address: fd00::1/0 is a default route"},
		{"peer outside", ok(Request{Addr: pfx("fd00:1::1/64"), Peer: ip("2001:db8::2")}), "peer: 2001:db8::2 is not inside an allowed prefix"},
		{"eth0's prefix", ok(Request{Addr: pfx("fd12:3456::99/64")}), "address: fd12:3456::99/64 overlaps fd12:3456::10/64 of interface eth0"},
		{"containing eth0's prefix", ok(Request{Addr: pfx("fd12:3456::1/48")}), "overlaps fd12:3456::10/64 of interface eth0"},
		{"inside eth0's prefix", ok(Request{Addr: pfx("fd12:3456::99/128")}), "overlaps fd12:3456::10/64 of interface eth0"},
		{"wg0's address", ok(Request{Addr: pfx("fd99::1/128")}), "overlaps fd99::1/128 of interface wg0"},
		{"contains wg0's peer", ok(Request{Addr: pfx("fd99::2/128")}), "contains fd99::2, the peer of interface wg0"},
		{"peer on eth0", ok(Request{Addr: pfx("fd00:1::1/128"), Peer: ip("fd12:3456::77")}), "peer: fd12:3456::77 is inside fd12:3456::10/64 of interface eth0"},
		{"peer is wg0's peer", ok(Request{Addr: pfx("fd00:1::1/128"), Peer: ip("fd99::2")}), "peer: fd99::2 is the peer of interface wg0"},
		{"name", ok(Request{Addr: pfx("fd00:1::1/64"), Name: "eth1"}), "name: eth1 matches none of the allowed patterns (tun*, tap*)"},
		{"mtu high", ok(Request{Addr: pfx("fd00:1::1/64"), MTU: 9001}), "mtu: 9001 is outside the allowed 1280..9000"},
		{"mtu low", ok(Request{Addr: pfx("10.0.0.1/24"), MTU: 576}), "mtu: 576 is outside the allowed 1280..9000"},
		{"queues", ok(Request{Addr: pfx("fd00:1::1/64"), Queues: 9}), "queues: 9 exceeds the limit of 8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.req.Validate(); err != nil {
				if tc.name != "default route" {
					t.Fatalf("test request does not validate: %v", err)
				}
			}
			err := p.Check(tc.req, testHost)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Check allowed it, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Check error %q does not contain %q", err, tc.want)
			}
		})
	}

	noTAP := DefaultPolicy()
	noTAP.AllowTAP = false
	if err := noTAP.Check(Request{Addr: pfx("fd00:1::1/64"), TAP: true}, nil); err == nil || !strings.Contains(err.Error(), "TAP devices are not allowed") {
		t.Errorf("AllowTAP=false: Check = %v", err)
	}
	var none Policy
	if err := none.Check(Request{Addr: pfx("fd00:1::1/64")}, nil); err == nil || !strings.Contains(err.Error(), "queues") {
		t.Errorf("zero Policy allowed a request: %v", err)
	}
	none.MaxQueues = 1
	if err := none.Check(Request{Addr: pfx("fd00:1::1/64")}, nil); err == nil || !strings.Contains(err.Error(), "none are allowed") {
		t.Errorf("zero Policy with a queue: Check = %v", err)
	}
}

func TestLoadPolicy(t *testing.T) {
	p, err := LoadPolicy(strings.NewReader(`{"allowed_prefixes": ["fd00:7::/48"], "max_devices_per_uid": 2, "allow_tap": false}`))
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	def := DefaultPolicy()
	if len(p.AllowedPrefixes) != 1 || p.AllowedPrefixes[0] != pfx("fd00:7::/48") || p.MaxDevicesPerUID != 2 || p.AllowTAP ||
		p.MaxMTU != def.MaxMTU || fmt.Sprint(p.NamePatterns) != fmt.Sprint(def.NamePatterns) {
		t.Fatalf("LoadPolicy = %+v", p)
	}
	bad := []struct{ json, want string }{
		{`{"allowed_prefix": []}`, `unknown field "allowed_prefix"`},
		{`{"max_mtu": 70000}`, "max_mtu 70000"},
		{`{"min_mtu": 2000, "max_mtu": 1500}`, "min_mtu 2000"},
		{`{"allowed_prefixes": ["fd00::/200"]}`, "fd00::/200"},
		{`{"name_patterns": ["[a-"]}`, "name_patterns[0]"},
		{`{"max_queues": 300}`, "max_queues 300"},
		{`{"max_devices_per_uid": -1}`, "max_devices_per_uid -1"},
		{`{} {}`, "trailing data"},
		{`[]`, "cannot unmarshal array"},
	}
	for _, b := range bad {
		if _, err := LoadPolicy(strings.NewReader(b.json)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("LoadPolicy(%s) = %v, want an error mentioning %q", b.json, err, b.want)
		}
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Errorf("DefaultPolicy does not validate: %v", err)
	}
}

func TestRequestValidate(t *testing.T) {
	cases := []struct {
		req  Request
		want string
	}{
		{Request{Addr: pfx("fd00::1/64")}, ""},
		{Request{Addr: pfx("10.0.0.1/8"), Peer: ip("10.0.0.2"), MTU: 68, Name: "x%d", Queues: MaxQueues}, ""},
		{Request{}, "address: missing"},
		{Request{Addr: pfx("fd00::1/0")}, "prefix length /0"},
		{Request{Addr: pfx("::/64")}, "unspecified"},
		{Request{Addr: pfx("ff02::1/64")}, "multicast"},
		{Request{Addr: pfx("255.255.255.255/32")}, "broadcast"},
		{Request{Addr: pfx("::ffff:10.0.0.1/120")}, "IPv4-mapped"},
		{Request{Addr: pfx("fd00::1/64"), Peer: ip("10.0.0.1")}, "different families"},
		{Request{Addr: pfx("fd00::1/64"), Peer: ip("fd00::1")}, "device's own address"},
		{Request{Addr: pfx("fd00::1/64"), Peer: ip("fe80::1%eth0")}, "has a zone"},
		{Request{Addr: pfx("fd00::1/64"), MTU: 67}, "mtu: 67 is outside 68..65535"},
		{Request{Addr: pfx("fd00::1/64"), MTU: 1279}, "below 1280"},
		{Request{Addr: pfx("fd00::1/64"), Name: "a/b"}, "name:"},
		{Request{Addr: pfx("fd00::1/64"), Name: "Tun_0.x-%d"}, ""},
		{Request{Addr: pfx("fd00::1/64"), Name: "tun\x1b]0;PWN\x07"}, `name: "tun\x1b]0;PWN\a": byte 0x1b at offset 3 is not allowed`},
		{Request{Addr: pfx("fd00::1/64"), Name: "tun\xff\xfe"}, "byte 0xff at offset 3 is not allowed"},
		{Request{Addr: pfx("fd00::1/64"), Name: "tun+1"}, "byte 0x2b at offset 3"},
		{Request{Addr: pfx("fd00::1/64"), Name: "tun%s"}, "'%' is only allowed once"},
		{Request{Addr: pfx("fd00::1/64"), Queues: -1}, "queues: -1"},
		{Request{Addr: pfx("fd00::1/64"), Queues: 254}, "queues: 254"},
	}
	for _, tc := range cases {
		err := tc.req.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.req, err, tc.want)
		}
	}
	r := Request{Addr: pfx("fd00::1/64"), Peer: ip("fd00::2"), MTU: 1400, Name: "tun%d", TAP: true, PacketInfo: true}
	if got, want := r.String(), "tap fd00::1/64 peer fd00::2 mtu 1400 name tun%d queues 1 pi"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (Request{Addr: pfx("fd00::1/64"), Name: "a\nb"}).String(); !strings.Contains(got, `"a\nb"`) {
		t.Errorf("String does not quote an odd name: %q", got)
	}
}

func TestError(t *testing.T) {
	denied := &Error{Op: "create", Path: "/run/t.sock", Status: StatusDenied, Message: "mtu: 9001 is outside the allowed 1280..9000"}
	if got, want := denied.Error(), "broker: create /run/t.sock: denied by policy: mtu: 9001 is outside the allowed 1280..9000"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(denied, fs.ErrPermission) {
		t.Error("a policy refusal is not fs.ErrPermission")
	}
	failed := &Error{Op: "create", Status: StatusFailed, Errno: syscall.EBUSY}
	if !errors.Is(failed, syscall.EBUSY) || errors.Is(failed, fs.ErrPermission) {
		t.Error("errno not matched, or a failure taken for a refusal")
	}
	if got := failed.Error(); got != "broker: create: creation failed: "+syscall.EBUSY.Error() {
		t.Errorf("Error() = %q", got)
	}
	local := &Error{Op: "dial", Path: "/x", Err: fmt.Errorf("%w (hint)", syscall.EACCES)}
	if !errors.Is(local, fs.ErrPermission) || local.Error() != "broker: dial /x: permission denied (hint)" {
		t.Errorf("local error: %q, is permission %t", local, errors.Is(local, fs.ErrPermission))
	}
	if s := Status(99).String(); s != "status 99" {
		t.Errorf("Status(99) = %q", s)
	}
}

// fakeInventory is an Inventory over a set of existing indexes.
type fakeInventory struct {
	exists map[int]bool
	err    error
}

func (f *fakeInventory) HostAddrs() ([]HostAddr, error)   { return nil, f.err }
func (f *fakeInventory) HostRoutes() ([]HostRoute, error) { return nil, f.err }
func (f *fakeInventory) LinkExists(i int) (bool, error)   { return f.exists[i], f.err }

func TestTracker(t *testing.T) {
	var tr tracker
	tr.init()
	inv := &fakeInventory{exists: map[int]bool{}}
	r1, err := tr.reserve(1000, 2, pfx("fd00:1::1/64"), inv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.reserve(2000, 2, pfx("fd00:1::9/48"), inv); err == nil || !errors.Is(err, errReserve) ||
		!strings.Contains(err.Error(), "claimed by a request in progress") {
		t.Fatalf("overlapping pending prefix: %v", err)
	}
	if _, err := tr.reserve(2000, 2, pfx("fe80::1/64"), inv); err != nil {
		t.Fatalf("link-local: %v", err)
	}
	r2, err := tr.reserve(1000, 2, pfx("fd00:2::1/64"), inv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.reserve(1000, 2, pfx("fd00:3::1/64"), inv); err == nil || !strings.Contains(err.Error(), "uid 1000 holds 2 devices (2 being created), the limit is 2") {
		t.Fatalf("quota with two pending: %v", err)
	}
	tr.commit(r1, 10, "tun0")
	tr.release(r1) // no-op after commit
	inv.exists[10] = true
	tr.release(r2)
	r3, err := tr.reserve(1000, 2, pfx("fd00:3::1/64"), inv)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	tr.commit(r3, 11, "tun1")
	inv.exists[11] = true
	if _, err := tr.reserve(1000, 2, pfx("fd00:4::1/64"), inv); err == nil || !strings.Contains(err.Error(), "holds 2 devices (tun0, tun1)") {
		t.Fatalf("quota with two live: %v", err)
	}
	if _, err := tr.reserve(0, -1, pfx("fd00:5::1/64"), inv); err != nil {
		t.Fatalf("no limit: %v", err)
	}
	delete(inv.exists, 10) // tun0 vanished
	r4, err := tr.reserve(1000, 2, pfx("fd00:4::1/64"), inv)
	if err != nil {
		t.Fatalf("after a device vanished: %v", err)
	}
	if _, ok := tr.live[10]; ok {
		t.Error("vanished device not pruned")
	}
	tr.release(r4)
	inv.err = errors.New("netlink down")
	if _, err := tr.reserve(1000, 2, pfx("fd00:6::1/64"), inv); err == nil || errors.Is(err, errReserve) || !strings.Contains(err.Error(), "netlink down") {
		t.Fatalf("inventory failure must fail closed: %v", err)
	}
}

// The host of the reproduction, as a route dump shows it: a
// default route and a static IPv6 route in main, the metadata host route,
// the kernel's fe80::/64 and local-table entries, and a route in table 100
// that only an ip rule reaches.
var testRoutes = []HostRoute{
	{Dst: pfx("0.0.0.0/0"), Table: 254, Type: 1, Gateway: ip("192.0.2.1"), Index: 2, Name: "v0"},
	{Dst: pfx("::/0"), Table: 254, Type: 1, Gateway: ip("fd00::1"), Index: 2, Name: "v0"},
	{Dst: pfx("192.0.2.0/24"), Table: 254, Type: 1, Index: 2, Name: "v0"},
	{Dst: pfx("169.254.169.254/32"), Table: 254, Type: 1, Gateway: ip("192.0.2.1"), Index: 2, Name: "v0"},
	{Dst: pfx("fd00::/64"), Table: 254, Type: 1, Index: 2, Name: "v0"},
	{Dst: pfx("fd12:3456::/48"), Table: 254, Type: 1, Gateway: ip("fd00::1"), Index: 2, Name: "v0"},
	{Dst: pfx("fe80::/64"), Table: 254, Type: 1, Index: 2, Name: "v0"},
	{Dst: pfx("fd00::2/128"), Table: 255, Type: rtnLocal, Index: 2, Name: "v0"},
	{Dst: pfx("fd00::/128"), Table: 255, Type: rtnAnycast, Index: 2, Name: "v0"},
	{Dst: pfx("192.0.2.255/32"), Table: 255, Type: rtnBroadcast, Index: 2, Name: "v0"},
	{Dst: pfx("fd55::/32"), Table: 100, Type: 1, Gateway: ip("fd00::1"), Index: 2, Name: "v0"},
	{Dst: pfx("fd66::/48"), Table: 254, Type: 7},
}

func TestPolicyCheckRoutes(t *testing.T) {
	p := DefaultPolicy()
	p.AllowedPrefixes = append(p.AllowedPrefixes, pfx("169.254.0.0/16"), pfx("192.0.2.0/24"))
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"beside every route", Request{Addr: pfx("fd77::1/64")}, ""},
		{"IPv4 beside the metadata route", Request{Addr: pfx("169.254.7.1/24")}, ""},
		{"link-local", Request{Addr: pfx("fe80::1234/64")}, ""},
		{"local-table anycast and local entries", Request{Addr: pfx("fd00::2/128")}, "overlaps the route to fd00::/64 dev v0 (table main)"},
		{"broadcast entry alone is exempt", Request{Addr: pfx("192.0.2.255/32")}, "overlaps the route to 192.0.2.0/24 dev v0 (table main)"},
		{"metadata service", Request{Addr: pfx("169.254.169.1/24")}, "address: 169.254.169.1/24 overlaps the route to 169.254.169.254/32 via 192.0.2.1 dev v0 (table main)"},
		{"static IPv6 route", Request{Addr: pfx("fd12:3456::1/64")}, "address: fd12:3456::1/64 overlaps the route to fd12:3456::/48 via fd00::1 dev v0 (table main)"},
		{"containing a route", Request{Addr: pfx("fd12:3456::1/48")}, "overlaps the route to fd12:3456::/48"},
		{"table 100", Request{Addr: pfx("fd55:0:1::1/64")}, "overlaps the route to fd55::/32 via fd00::1 dev v0 (table 100)"},
		{"unreachable", Request{Addr: pfx("fd66::1/64")}, "overlaps the route to unreachable fd66::/48 (table main)"},
		{"peer routed", Request{Addr: pfx("fd77::1/128"), Peer: ip("fd12:3456::9")}, "peer: fd12:3456::9 is inside the route to fd12:3456::/48 via fd00::1 dev v0 (table main)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.CheckRoutes(tc.req, testRoutes)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckRoutes refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("CheckRoutes allowed it, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("CheckRoutes error %q does not contain %q", err, tc.want)
			}
		})
	}
}
