package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
)

// ours runs our tunctl in ns.
func ours(t *testing.T, ns *netnstest.Namespace, args ...string) result {
	t.Helper()
	r := runInNS(t, ns, args)
	t.Logf("tunctl %s: %v", strings.Join(args, " "), r)
	return r
}

func detail(t *testing.T, ns *netnstest.Namespace, name string) (ipLinkDetail, map[string]any) {
	t.Helper()
	var ls []ipLinkDetail
	if err := ns.IPJSON(&ls, "-d", "link", "show", "dev", name); err != nil || len(ls) != 1 {
		t.Fatalf("ip -d -j link show dev %s: %v", name, err)
	}
	var data map[string]any
	if ls[0].LinkInfo == nil || json.Unmarshal(ls[0].LinkInfo.Data, &data) != nil {
		t.Fatalf("%s: no linkinfo", name)
	}
	return ls[0], data
}

func hasFlag(l ipLinkDetail, f string) bool {
	for _, g := range l.Flags {
		if g == f {
			return true
		}
	}
	return false
}

// The options beyond the original, checked with ip.
func TestBeyondTheOriginal(t *testing.T) {
	ns := netnstest.New(t)
	r := ours(t, ns, "-n", "-q", "-vnet-hdr", "-t", "x0", "-u", "54321", "-m", "1400", "-a", "10.9.0.1/24", "-up")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Set 'x0' persistent and owned by uid 54321\n") ||
		!strings.Contains(r.stdout, "NO-CARRIER") {
		t.Errorf("tunctl: %v; want the original's message and the NO-CARRIER note", r)
	}
	l, data := detail(t, ns, "x0")
	want := map[string]any{"type": "tun", "pi": false, "vnet_hdr": true, "multi_queue": true, "numqueues": 0.0, "numdisabled": 0.0, "persist": true, "user": 54321.0}
	if !reflect.DeepEqual(data, want) {
		t.Errorf("info_data %v, want %v", data, want)
	}
	if l.MTU != 1400 || !hasFlag(l, "UP") || !hasFlag(l, "NO-CARRIER") {
		t.Errorf("ip: mtu %d flags %v; want 1400, UP, NO-CARRIER", l.MTU, l.Flags)
	}
	var addrs []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Broadcast string `json:"broadcast"`
			Address   string `json:"address"`
		} `json:"addr_info"`
	}
	if err := ns.IPJSON(&addrs, "-4", "addr", "show", "dev", "x0"); err != nil || len(addrs) != 1 || len(addrs[0].AddrInfo) != 1 {
		t.Fatalf("ip -j addr: %+v %v", addrs, err)
	}
	if a := addrs[0].AddrInfo[0]; a.Local != "10.9.0.1" || a.PrefixLen != 24 || a.Broadcast != "10.9.0.255" {
		t.Errorf("ip -j addr: %+v; want 10.9.0.1/24 brd 10.9.0.255", a)
	}

	// IPv6 with a peer, brief: only the name on standard output, the note
	// on standard error.
	r = ours(t, ns, "-b", "-t", "x1", "-m", "1280", "-a", "fd00:9::1/64", "-peer", "fd00:9::2", "-up")
	if r.code != 0 || r.stdout != "x1\n" || !strings.Contains(r.stderr, "NO-CARRIER") {
		t.Errorf("tunctl -b ... -up: %v", r)
	}
	// (ip prints the link-local address it filters out as an empty object.)
	addrs = nil
	if err := ns.IPJSON(&addrs, "-6", "addr", "show", "dev", "x1", "scope", "global"); err != nil || len(addrs) != 1 || len(addrs[0].AddrInfo) == 0 {
		t.Fatalf("ip -j addr: %+v %v", addrs, err)
	}
	if a := addrs[0].AddrInfo[0]; a.Local != "fd00:9::1" || a.Address != "fd00:9::2" || a.PrefixLen != 64 {
		t.Errorf("ip -j -6 addr: %+v", a)
	}
	if l, data := detail(t, ns, "x1"); data["type"] != "tap" || l.MTU != 1280 {
		t.Errorf("x1: %v mtu %d", data, l.MTU)
	}

	// A failing setting leaves no device: persistence comes last.
	r = ours(t, ns, "-t", "x2", "-m", "1000", "-a", "fd00:9::1/64")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "1280") {
		t.Errorf("IPv6 on MTU 1000: %v", r)
	}
	r = ours(t, ns, "-t", "x2", "-a", "224.0.0.1/24")
	if r.code != 1 || !strings.Contains(r.stderr, "multicast") {
		t.Errorf("multicast address: %v", r)
	}
	if ls := links(t, ns); len(ls) != 2 {
		t.Errorf("links after the failures: %q; want x0 and x1 only", ls)
	}

	// -d deletes them all, TUN and TAP.
	for _, name := range []string{"x0", "x1"} {
		if r := ours(t, ns, "-d", name); r.code != 0 || r.stdout != "Set '"+name+"' nonpersistent\n" {
			t.Errorf("-d %s: %v", name, r)
		}
	}
	if ls := links(t, ns); len(ls) != 0 {
		t.Errorf("links after -d: %q", ls)
	}
}

// tunctl show -j prints, for every TUN/TAP device and only those, the
// linkinfo that `ip -d -j link` prints, field for field; the table shows
// the same facts.
func TestShow(t *testing.T) {
	ns := netnstest.New(t)
	for _, args := range [][]string{
		{"tuntap", "add", "s0", "mode", "tap", "user", "nobody", "group", "54322"},
		{"tuntap", "add", "s1", "mode", "tun", "multi_queue", "vnet_hdr", "pi", "user", "54321"},
		{"tuntap", "add", "s2", "mode", "tun"},
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %q: %v %s", args, err, out)
		}
	}
	r := ours(t, ns, "show", "-j")
	if r.code != 0 {
		t.Fatalf("show -j: %v", r)
	}
	type entry struct {
		Index    int            `json:"ifindex"`
		Name     string         `json:"ifname"`
		LinkInfo map[string]any `json:"linkinfo"`
	}
	var got, fromIP []entry
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("show -j output %q: %v", r.stdout, err)
	}
	var all []entry
	if err := ns.IPJSON(&all, "-d", "link", "show"); err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.LinkInfo != nil && e.LinkInfo["info_kind"] == "tun" {
			fromIP = append(fromIP, e)
		}
	}
	if len(fromIP) != 3 || !reflect.DeepEqual(got, fromIP) {
		t.Errorf("show -j:\n  %+v\nip -d -j link (tun devices):\n  %+v", got, fromIP)
	}

	r = ours(t, ns, "show", "-j", "s1")
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], fromIP[1]) {
		t.Errorf("show -j s1: %v", r)
	}
	r = ours(t, ns, "show")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 4 {
		t.Fatalf("show: %v", r)
	}
	for i, want := range [][]string{
		{"NAME", "TYPE", "OWNER", "GROUP", "PERSIST", "PI", "VNET_HDR", "MULTI_QUEUE", "QUEUES"},
		{"s0", "tap", "65534", "54322", "yes", "no", "no", "no", "-"},
		{"s1", "tun", "54321", "-", "yes", "yes", "yes", "yes", "0"},
		{"s2", "tun", "-", "-", "yes", "no", "no", "no", "-"},
	} {
		if f := strings.Fields(lines[i]); !reflect.DeepEqual(f, want) {
			t.Errorf("show line %d: %q, want %q", i, f, want)
		}
	}
	// Queues attached to a multi-queue device, one of them detached.
	var dev *tun.Device
	if err := ns.Do(func() (err error) {
		dev, err = tun.Open(tun.Config{Name: "s1", MultiQueue: true, VnetHdr: true, PacketInfo: true})
		if err == nil {
			_, err = dev.AddQueue()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if err := dev.Queues()[1].Detach(); err != nil {
		t.Fatal(err)
	}
	r = ours(t, ns, "show", "s1")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[1], "1 (+1 detached)") {
		t.Errorf("show s1 with 2 queues, 1 detached: %v", r)
	}
	if r := ours(t, ns, "show", "v0"); r.code != 1 || !strings.Contains(r.stderr, "it is a veth device") {
		t.Errorf("show v0: %v", r)
	}
	if r := ours(t, ns, "show", "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "no device named 'nosuch'") {
		t.Errorf("show nosuch: %v", r)
	}
}
