package tundra

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"golang.org/x/sys/unix"
)

// bareIn runs CreateBare inside ns; the device is closed, and deleted if it
// persists, when the test ends.
func bareIn(t *testing.T, ns *netnstest.Namespace, opts ...Option) *Device {
	t.Helper()
	var dev *Device
	if err := ns.Do(func() (err error) {
		dev, err = CreateBare(opts...)
		return err
	}); err != nil {
		t.Fatalf("CreateBare: %v", err)
	}
	name := dev.Name()
	t.Cleanup(func() {
		dev.Close()
		ns.Output("ip", "link", "del", name)
	})
	return dev
}

// ipAddr is `ip -j addr show` with the fields these tests read.
type ipAddr struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	Address   string `json:"address"`
	PrefixLen int    `json:"prefixlen"`
	Broadcast string `json:"broadcast"`
}

func ipAddrs(t *testing.T, ns *netnstest.Namespace, name string) []ipAddr {
	t.Helper()
	var links []struct {
		AddrInfo []ipAddr `json:"addr_info"`
	}
	if err := ns.IPJSON(&links, "addr", "show", "dev", name); err != nil || len(links) != 1 {
		t.Fatalf("ip -j addr show dev %s: %v (%d links)", name, err, len(links))
	}
	var out []ipAddr
	for _, a := range links[0].AddrInfo {
		if !strings.HasPrefix(a.Local, "fe80:") {
			out = append(out, a)
		}
	}
	return out
}

// CreateBare makes the device tunctl makes: no address, down, with the
// owner, group, persistence and MTU asked for; it outlives Close.
func TestCreateBare(t *testing.T) {
	ns := netnstest.New(t)
	dev := bareIn(t, ns, Name("bare0"), TAP(), Persist(), Owner(54321), Group(54322), MTU(1400))
	d := details(t, ns, "bare0")
	t.Logf("ip -d -j link: %+v %+v", d.Link, d.LinkInfo.Data)
	if d.HasFlag("UP") || d.MTU != 1400 || d.LinkType != "ether" || d.Index != dev.Index() {
		t.Errorf("ip: flags %v mtu %d type %s index %d; want down, 1400, ether, %d", d.Flags, d.MTU, d.LinkType, d.Index, dev.Index())
	}
	data := d.LinkInfo.Data
	if data.Type != "tap" || data.PI || !data.Persist || data.User == nil || *data.User != 54321 || data.Group == nil || *data.Group != 54322 {
		t.Errorf("ip -d: %+v; want tap, no pi, persist, user 54321, group 54322", data)
	}
	if a := ipAddrs(t, ns, "bare0"); len(a) != 0 || dev.Addr().IsValid() {
		t.Errorf("addresses %+v, Addr %v; want none", a, dev.Addr())
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if d := details(t, ns, "bare0"); !d.LinkInfo.Data.Persist {
		t.Errorf("after Close: %+v", d.LinkInfo.Data)
	}

	// Not persistent: goes with Close, like Create's.
	dev = bareIn(t, ns, Name("bare%d"), Queues(2), CloneDevice("/dev/net/tun"))
	if d := details(t, ns, dev.Name()); !d.LinkInfo.Data.MultiQueue || d.LinkInfo.Data.NumQueues != 2 || d.LinkInfo.Data.Type != "tun" {
		t.Errorf("%s: %+v", dev.Name(), d.LinkInfo.Data)
	}
	dev.Close()
	requireGone(t, ns, dev.Name())

	// Offloads: the virtio-net header, reads split, writes not coalesced
	// (there is no address to probe them with), and a note that says so.
	dev = bareIn(t, ns, Name("bare5"), Offloads(AllOffloads))
	if d := details(t, ns, "bare5"); !d.LinkInfo.Data.VnetHdr || d.HasFlag("UP") {
		t.Errorf("bare5: %+v flags %v", d.LinkInfo.Data, d.Flags)
	}
	if notes := strings.Join(dev.OffloadNotes(), "; "); !strings.Contains(notes, "not coalesced") {
		t.Errorf("OffloadNotes %q", notes)
	}
	dev.Close()
	requireGone(t, ns, "bare5")

	// A clone device that does not exist: the error names it, nothing made.
	err := ns.Do(func() error {
		_, err := CreateBare(Name("bare9"), CloneDevice("/nonexistent/tun"))
		return err
	})
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "/nonexistent/tun") {
		t.Errorf("missing clone device: %v", err)
	}
	requireGone(t, ns, "bare9")
}

// CreateBare refuses the options that need an address, and checks the
// others as Create does. Pure: no privilege needed.
func TestCreateBareRefuses(t *testing.T) {
	for _, tc := range []struct {
		opt Option
		arg string
	}{
		{Peer("10.0.0.2"), "peer"},
		{Netmask("255.255.255.0"), "netmask"},
		{PrefixLen(24), "prefix length"},
		{KeepDAD(), "keep DAD"},
		{Mode(BrokerOnly), "mode"},
		{MTU(67), "mtu"},
		{Owner(-1), "owner"},
		{Group(1 << 32), "group"},
		{Queues(0), "queues"},
		{Name("a/b"), "name"},
	} {
		_, err := resolveBare([]Option{tc.opt})
		var e *Error
		if !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &e) || e.Arg != tc.arg {
			t.Errorf("%s: %v; want an argument error naming %q", tc.arg, err, tc.arg)
		}
	}
	s, err := resolveBare([]Option{MTU(576), TAP(), Persist(), Owner(0), CloneDevice("/dev/misc/net/tun")})
	if err != nil || s.mtu != 576 || !s.tun.TAP || !s.persist || s.owner != 0 || s.local.IsValid() || s.tun.CloneDevice != "/dev/misc/net/tun" {
		t.Errorf("resolveBare = %+v, %v", s, err)
	}
}

// The Device's settings, each checked with ip. The methods are called from
// the test's goroutine, outside the namespace: they act in the device's.
func TestDeviceSettings(t *testing.T) {
	ns := netnstest.New(t)
	dev := bareIn(t, ns, Name("set0"))

	if err := dev.SetMTU(1400); err != nil {
		t.Fatal(err)
	}
	if l, _ := ns.LinkByName("set0"); l.MTU != 1400 {
		t.Errorf("SetMTU(1400): ip says %d", l.MTU)
	}
	p4 := netip.MustParsePrefix("10.7.0.1/24")
	if err := dev.AddAddr(p4, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	p6 := netip.MustParsePrefix("fd00:7::1/64")
	peer6 := netip.MustParseAddr("fd00:7::2")
	if err := dev.AddAddr(p6, peer6); err != nil {
		t.Fatal(err)
	}
	got := ipAddrs(t, ns, "set0")
	t.Logf("ip -j addr: %+v", got)
	want := []ipAddr{
		{Family: "inet", Local: "10.7.0.1", PrefixLen: 24, Broadcast: "10.7.0.255"},
		{Family: "inet6", Local: "fd00:7::1", Address: "fd00:7::2", PrefixLen: 64},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ip addr = %+v, want %+v", got, want)
	}
	addrs, err := dev.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Prefix]LinkAddr{}
	for _, a := range addrs {
		seen[a.Prefix] = a
	}
	if a := seen[p4]; a.Broadcast != netip.MustParseAddr("10.7.0.255") || a.Peer.IsValid() {
		t.Errorf("Addrs %+v: %v has %+v", addrs, p4, a)
	}
	if a := seen[p6]; a.Peer != peer6 {
		t.Errorf("Addrs %+v: %v has %+v", addrs, p6, a)
	}

	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	if l, _ := ns.LinkByName("set0"); !l.HasFlag("UP") {
		t.Errorf("Up: flags %v", l.Flags)
	}
	// An IPv6 address is configured: an MTU below 1280 is refused, before
	// the kernel would drop the address.
	err = dev.SetMTU(1200)
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "fd00:7::1/64") {
		t.Errorf("SetMTU(1200) with an IPv6 address: %v", err)
	}
	if l, _ := ns.LinkByName("set0"); l.MTU != 1400 {
		t.Errorf("after the refused SetMTU: mtu %d", l.MTU)
	}
	if err := dev.DelAddr(p6, peer6); err != nil {
		t.Fatal(err)
	}
	if err := dev.DelAddr(p6, peer6); !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("deleting it twice: %v", err)
	}
	if err := dev.SetMTU(1200); err != nil {
		t.Errorf("SetMTU(1200) with IPv4 only: %v", err)
	}
	if err := dev.Down(); err != nil {
		t.Fatal(err)
	}
	if err := dev.SetOwner(54321); err != nil {
		t.Fatal(err)
	}
	if err := dev.SetGroup(54322); err != nil {
		t.Fatal(err)
	}
	d := details(t, ns, "set0")
	if d.HasFlag("UP") || d.MTU != 1200 || d.LinkInfo.Data.User == nil || *d.LinkInfo.Data.User != 54321 || d.LinkInfo.Data.Group == nil || *d.LinkInfo.Data.Group != 54322 {
		t.Errorf("ip -d: flags %v mtu %d %+v", d.Flags, d.MTU, d.LinkInfo.Data)
	}
	if got := ipAddrs(t, ns, "set0"); len(got) != 1 || got[0] != want[0] {
		t.Errorf("after DelAddr: %+v", got)
	}

	// Bad arguments: refused as Create refuses them, naming the argument,
	// and nothing changes.
	for _, tc := range []struct {
		what string
		err  error
		arg  string
	}{
		{"SetMTU(67)", dev.SetMTU(67), "mtu"},
		{"SetMTU(65536)", dev.SetMTU(65536), "mtu"},
		{"AddAddr(zero)", dev.AddAddr(netip.Prefix{}, netip.Addr{}), "address"},
		{"AddAddr(multicast)", dev.AddAddr(netip.MustParsePrefix("224.0.0.1/24"), netip.Addr{}), "address"},
		{"AddAddr(/0)", dev.AddAddr(netip.MustParsePrefix("10.8.0.1/0"), netip.Addr{}), "prefix length"},
		{"AddAddr(peer of the other family)", dev.AddAddr(netip.MustParsePrefix("10.8.0.1/32"), peer6), "peer"},
		{"AddAddr(peer is itself)", dev.AddAddr(netip.MustParsePrefix("10.8.0.1/32"), netip.MustParseAddr("10.8.0.1")), "peer"},
		{"DelAddr(IPv4-mapped)", dev.DelAddr(netip.MustParsePrefix("::ffff:10.7.0.1/120"), netip.Addr{}), "address"},
		{"SetOwner(-1)", dev.SetOwner(-1), "owner"},
		{"SetGroup(1<<32)", dev.SetGroup(1 << 32), "group"},
	} {
		var e *Error
		if !errors.Is(tc.err, ErrInvalidArgument) || !errors.As(tc.err, &e) || e.Arg != tc.arg || e.Name != "set0" {
			t.Errorf("%s: %v; want an argument error naming %q and set0", tc.what, tc.err, tc.arg)
		}
	}
	d2 := details(t, ns, "set0")
	if d2.MTU != 1200 || *d2.LinkInfo.Data.User != 54321 || len(ipAddrs(t, ns, "set0")) != 1 {
		t.Errorf("after refused calls: mtu %d %+v", d2.MTU, d2.LinkInfo.Data)
	}
	// A kernel refusal names the operation and keeps the errno.
	if err := dev.AddAddr(p4, netip.Addr{}); !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "add address") {
		t.Errorf("adding %v twice: %v", p4, err)
	}
	dev.Close()
	if err := dev.Up(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Up after Close: %v", err)
	}
}
