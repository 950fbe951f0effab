package nl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"golang.org/x/sys/unix"
)

// These tests talk to the real kernel inside a private network namespace
// that disappears with the test (see netnstest); they skip without root
// unless TUNDRA_REQUIRE_PRIV=1, which makes them fail instead. Results are
// checked against iproute2's view of the namespace, not against this
// package's own decoders.

// dialIn opens a Conn inside ns and closes it when the test ends.
func dialIn(t *testing.T, ns *netnstest.Namespace) *Conn {
	t.Helper()
	return openIn(t, ns, "Dial", Dial)
}

// openIn calls open (named what) inside ns and closes what it opened when
// the test ends, failing the test if either fails.
func openIn[T interface{ Close() error }](t *testing.T, ns *netnstest.Namespace, what string, open func() (T, error)) T {
	t.Helper()
	var v T
	if err := ns.Do(func() (err error) { v, err = open(); return err }); err != nil {
		t.Fatalf("%s in namespace: %v", what, err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return v
}

// addTun creates a TUN device in ns and returns ip's view of it. The device
// is deleted when the test ends, under whatever name it has by then.
func addTun(t *testing.T, ns *netnstest.Namespace, name string) netnstest.Link {
	t.Helper()
	if out, err := ns.Output("ip", "tuntap", "add", "dev", name, "mode", "tun"); err != nil {
		t.Fatalf("ip tuntap add %s: %v: %s", name, err, out)
	}
	l, err := ns.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		links, err := ns.Links()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		for _, now := range links {
			if now.Index == l.Index {
				if out, err := ns.Output("ip", "link", "del", "dev", now.Name); err != nil {
					t.Errorf("cleanup: ip link del %s: %v: %s", now.Name, err, out)
				}
			}
		}
	})
	return l
}

// setup gives a namespace with a TUN device t0 and a Conn inside it.
func setup(t *testing.T) (*netnstest.Namespace, *Conn, netnstest.Link) {
	t.Helper()
	ns := netnstest.New(t)
	tun := addTun(t, ns, "t0")
	return ns, dialIn(t, ns), tun
}

// ipLink fetches ip's view of a link by name, failing the test if missing.
func ipLink(t *testing.T, ns *netnstest.Namespace, name string) netnstest.Link {
	t.Helper()
	l, err := ns.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ipFlags are the IFF_* bits ip prints by these names (include/uapi/linux/if.h).
var ipFlags = map[string]uint32{
	"UP": 0x1, "BROADCAST": 0x2, "LOOPBACK": 0x8, "POINTOPOINT": 0x10,
	"NOARP": 0x80, "MULTICAST": 0x1000, "LOWER_UP": 0x10000,
}

var ipOperStates = map[string]uint8{
	"UNKNOWN": OperUnknown, "NOTPRESENT": OperNotPresent, "DOWN": OperDown,
	"LOWERLAYERDOWN": OperLowerLayerDown, "TESTING": OperTesting, "DORMANT": OperDormant, "UP": OperUp,
}

var ipLinkTypes = map[string]uint16{"none": unix.ARPHRD_NONE, "loopback": unix.ARPHRD_LOOPBACK}

// checkLinkMatches compares a Link with ip's view of the same link.
func checkLinkMatches(t *testing.T, got Link, ip netnstest.Link) {
	t.Helper()
	if got.Index != ip.Index || got.Name != ip.Name || got.MTU != ip.MTU {
		t.Errorf("link %+v, ip says index %d name %s mtu %d", got, ip.Index, ip.Name, ip.MTU)
	}
	for name, bit := range ipFlags {
		if has := got.Flags&bit != 0; has != ip.HasFlag(name) {
			t.Errorf("link %s: flag %s is %v in %#x, ip says %v (%v)", ip.Name, name, has, got.Flags, !has, ip.Flags)
		}
	}
	if want, ok := ipOperStates[ip.OperState]; !ok || got.OperState != want {
		t.Errorf("link %s: operstate %d, ip says %s", ip.Name, got.OperState, ip.OperState)
	}
	if want, ok := ipLinkTypes[ip.LinkType]; !ok || got.Type != want {
		t.Errorf("link %s: type %d, ip says %s", ip.Name, got.Type, ip.LinkType)
	}
	if got.HardwareAddr.String() != ip.Address {
		t.Errorf("link %s: address %q, ip says %q", ip.Name, got.HardwareAddr, ip.Address)
	}
}

func TestKernelLinks(t *testing.T) {
	ns, c, tun := setup(t)
	want, err := ns.Links()
	if err != nil {
		t.Fatal(err)
	}
	links, err := c.Links()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != len(want) || len(links) != 2 {
		t.Fatalf("Links() = %+v; ip lists %d links (lo, t0)", links, len(want))
	}
	for i := range want {
		checkLinkMatches(t, links[i], want[i])
	}
	byName, err := c.LinkByName("t0")
	if err != nil {
		t.Fatal(err)
	}
	byIndex, err := c.LinkByIndex(tun.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(byName, links[1]) || !reflect.DeepEqual(byIndex, links[1]) {
		t.Errorf("LinkByName %+v and LinkByIndex %+v differ from the dump's %+v", byName, byIndex, links[1])
	}
	for what, err := range map[string]error{
		"name":  func() error { _, err := c.LinkByName("missing0"); return err }(),
		"index": func() error { _, err := c.LinkByIndex(9999); return err }(),
	} {
		ne := asError(t, err)
		if !errors.Is(err, unix.ENODEV) || ne.Errno != unix.ENODEV {
			t.Errorf("missing link by %s: %v, want ENODEV", what, err)
		}
		t.Logf("missing link by %s: %v", what, err)
	}
}

func TestKernelSetLinkUpDown(t *testing.T) {
	ns, c, tun := setup(t)
	before, err := c.LinkByIndex(tun.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !tun.HasFlag("NOARP") || !tun.HasFlag("POINTOPOINT") || tun.HasFlag("UP") {
		t.Fatalf("fresh TUN flags %v, want NOARP and POINTOPOINT, not UP", tun.Flags)
	}
	if err := c.SetLinkUp(tun.Index); err != nil {
		t.Fatal(err)
	}
	up := ipLink(t, ns, "t0")
	if !up.HasFlag("UP") || !up.HasFlag("NOARP") || !up.HasFlag("POINTOPOINT") || !up.HasFlag("MULTICAST") {
		t.Errorf("after SetLinkUp ip shows %v, want UP with NOARP, POINTOPOINT, MULTICAST kept", up.Flags)
	}
	after, err := c.LinkByIndex(tun.Index)
	if err != nil {
		t.Fatal(err)
	}
	// IFF_UP may bring IFF_RUNNING-type state bits with it, never take
	// configured ones away.
	if configured := uint32(0x10 | 0x80 | 0x1000); after.Flags&configured != before.Flags&configured {
		t.Errorf("flags %#x before, %#x after SetLinkUp", before.Flags, after.Flags)
	}
	if err := c.SetLinkDown(tun.Index); err != nil {
		t.Fatal(err)
	}
	down := ipLink(t, ns, "t0")
	if down.HasFlag("UP") || !down.HasFlag("NOARP") || !down.HasFlag("POINTOPOINT") || !down.HasFlag("MULTICAST") {
		t.Errorf("after SetLinkDown ip shows %v, want NOARP, POINTOPOINT, MULTICAST and not UP", down.Flags)
	}
	if err := c.SetLinkUp(9999); !errors.Is(err, unix.ENODEV) {
		t.Errorf("SetLinkUp of a missing link: %v, want ENODEV", err)
	}
}

func TestKernelSetLinkMTU(t *testing.T) {
	ns, c, tun := setup(t)
	if err := c.SetLinkMTU(tun.Index, 1400); err != nil {
		t.Fatal(err)
	}
	if got := ipLink(t, ns, "t0").MTU; got != 1400 {
		t.Errorf("ip shows MTU %d, want 1400", got)
	}
	err := c.SetLinkMTU(tun.Index, 10)
	ne := asError(t, err)
	if ne.Errno != unix.EINVAL || ne.Op != "setlinkmtu" {
		t.Errorf("MTU 10: %v, want setlinkmtu EINVAL", err)
	}
	t.Logf("MTU 10: errno %d (%v), ext-ack message %q, offset %d", ne.Errno, ne.Errno, ne.Message, ne.Offset)
	if got := ipLink(t, ns, "t0").MTU; got != 1400 {
		t.Errorf("failed SetLinkMTU changed the MTU to %d", got)
	}
}

func TestKernelRenameLink(t *testing.T) {
	ns, c, tun := setup(t)
	if err := c.RenameLink(tun.Index, "t9"); err != nil {
		t.Fatal(err)
	}
	// Whether a link that is up may be renamed depends on the kernel
	// (EBUSY before 6.x); only report it.
	if err := c.SetLinkUp(tun.Index); err != nil {
		t.Fatal(err)
	}
	t.Logf("rename while up: %v", c.RenameLink(tun.Index, "t8"))
	if err := c.SetLinkDown(tun.Index); err != nil {
		t.Fatal(err)
	}
	if err := c.RenameLink(tun.Index, "t9"); err != nil {
		t.Fatal(err)
	}
	if l := ipLink(t, ns, "t9"); l.Index != tun.Index {
		t.Errorf("t9 has index %d, want %d", l.Index, tun.Index)
	}
	if _, err := ns.LinkByName("t0"); !errors.Is(err, netnstest.ErrNoLink) {
		t.Errorf("t0 still there after rename: %v", err)
	}
	if l, err := c.LinkByIndex(tun.Index); err != nil || l.Name != "t9" {
		t.Errorf("LinkByIndex after rename: %+v, %v", l, err)
	}
	err := c.RenameLink(tun.Index, "lo")
	ne := asError(t, err)
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("rename onto lo: %v, want EEXIST", err)
	}
	t.Logf("rename onto an existing name: errno %v, ext-ack %q", ne.Errno, ne.Message)
}

// addrInfo is the part of `ip -j addr` output these tests check, beyond
// netnstest.AddrInfo.
type addrInfo struct {
	netnstest.AddrInfo
	NoPrefixRoute bool `json:"noprefixroute"`
}

func ipAddrs(t *testing.T, ns *netnstest.Namespace, dev, family string) []addrInfo {
	t.Helper()
	var links []struct {
		AddrInfo []addrInfo `json:"addr_info"`
	}
	if err := ns.IPJSON(&links, family, "addr", "show", "dev", dev); err != nil {
		t.Fatal(err)
	}
	switch len(links) {
	case 0: // ip lists no link when it has no address of the family
		return nil
	case 1:
		return links[0].AddrInfo
	}
	t.Fatalf("ip addr show dev %s: %d links", dev, len(links))
	return nil
}

func TestKernelAddrIPv4(t *testing.T) {
	ns, c, tun := setup(t)
	a := Addr{Index: tun.Index, Prefix: mustPrefix("10.1.2.3/24"), Peer: mustAddr("10.1.2.4")}
	if err := c.AddAddr(a); err != nil {
		t.Fatal(err)
	}
	got := ipAddrs(t, ns, "t0", "-4")
	if len(got) != 1 || got[0].Local != "10.1.2.3" || got[0].Address != "10.1.2.4" || got[0].PrefixLen != 24 || got[0].Family != "inet" {
		t.Fatalf("ip -4 addr: %+v, want local 10.1.2.3 peer 10.1.2.4 /24", got)
	}
	err := c.AddAddr(a)
	ne := asError(t, err)
	if !errors.Is(err, unix.EEXIST) || ne.Op != "addaddr" {
		t.Errorf("duplicate AddAddr: %v, want addaddr EEXIST", err)
	}
	t.Logf("duplicate IPv4 address: errno %v, ext-ack %q", ne.Errno, ne.Message)
	if err := c.ReplaceAddr(a); err != nil {
		t.Errorf("ReplaceAddr of the existing address: %v", err)
	}
	plain := Addr{Index: tun.Index, Prefix: mustPrefix("10.5.0.1/16")}
	if err := c.ReplaceAddr(plain); err != nil {
		t.Errorf("ReplaceAddr creating an address: %v", err)
	}
	addrs, err := c.Addrs(tun.Index)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 2 || addrs[0].Prefix != a.Prefix || addrs[0].Peer != a.Peer || addrs[1].Prefix != plain.Prefix || addrs[1].Peer.IsValid() {
		t.Errorf("Addrs(%d) = %+v, want %v peer %v and %v", tun.Index, addrs, a.Prefix, a.Peer, plain.Prefix)
	}
	for _, x := range []Addr{a, plain} {
		if err := c.DeleteAddr(x); err != nil {
			t.Errorf("DeleteAddr(%v): %v", x.Prefix, err)
		}
	}
	if got := ipAddrs(t, ns, "t0", "-4"); len(got) != 0 {
		t.Errorf("addresses left after DeleteAddr: %+v", got)
	}
	err = c.DeleteAddr(a)
	ne = asError(t, err)
	if !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("DeleteAddr of a missing address: %v, want EADDRNOTAVAIL", err)
	}
	t.Logf("delete missing IPv4 address: errno %v, ext-ack %q", ne.Errno, ne.Message)
}

func TestKernelAddrIPv6(t *testing.T) {
	ns, c, tun := setup(t)
	nodad := Addr{Index: tun.Index, Prefix: mustPrefix("fd00::1/64"), Flags: IFA_F_NODAD}
	peer := Addr{Index: tun.Index, Prefix: mustPrefix("fd00:1::1/128"), Peer: mustAddr("fd00:1::2"), Flags: IFA_F_NODAD}
	for _, a := range []Addr{nodad, peer} {
		if err := c.AddAddr(a); err != nil {
			t.Fatalf("AddAddr(%v): %v", a.Prefix, err)
		}
	}
	got := ipAddrs(t, ns, "t0", "-6")
	byLocal := map[string]addrInfo{}
	for _, g := range got {
		byLocal[g.Local] = g
	}
	if g := byLocal["fd00::1"]; g.PrefixLen != 64 || !g.NoDAD || g.Tentative || g.Address != "" {
		t.Errorf("fd00::1: ip shows %+v, want /64 nodad, not tentative, no peer", g)
	}
	if g := byLocal["fd00:1::1"]; g.PrefixLen != 128 || !g.NoDAD || g.Address != "fd00:1::2" {
		t.Errorf("fd00:1::1: ip shows %+v, want /128 nodad peer fd00:1::2", g)
	}
	addrs, err := c.Addrs(tun.Index)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, a := range addrs {
		switch a.Prefix {
		case nodad.Prefix:
			found++
			if a.Peer.IsValid() || a.Flags&IFA_F_NODAD == 0 {
				t.Errorf("Addrs: %+v, want no peer and NODAD", a)
			}
		case peer.Prefix:
			found++
			if a.Peer != peer.Peer || a.Flags&IFA_F_NODAD == 0 {
				t.Errorf("Addrs: %+v, want peer %v and NODAD", a, peer.Peer)
			}
		}
	}
	if found != 2 {
		t.Errorf("Addrs(%d) = %+v, missing the two addresses", tun.Index, addrs)
	}

	err = c.AddAddr(nodad)
	ne := asError(t, err)
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("duplicate IPv6 AddAddr: %v, want EEXIST", err)
	}
	t.Logf("duplicate IPv6 address: errno %v, ext-ack %q", ne.Errno, ne.Message)

	// Replace changes the flags of an existing IPv6 address in place.
	nodad.Flags |= IFA_F_NOPREFIXROUTE
	if err := c.ReplaceAddr(nodad); err != nil {
		t.Fatal(err)
	}
	for _, g := range ipAddrs(t, ns, "t0", "-6") {
		if g.Local == "fd00::1" && !g.NoPrefixRoute {
			t.Errorf("after ReplaceAddr with NOPREFIXROUTE ip shows %+v", g)
		}
	}
	for _, a := range []Addr{nodad, peer} {
		if err := c.DeleteAddr(a); err != nil {
			t.Errorf("DeleteAddr(%v): %v", a.Prefix, err)
		}
	}
	for _, g := range ipAddrs(t, ns, "t0", "-6") {
		if g.Scope == "global" {
			t.Errorf("global address left after DeleteAddr: %+v", g)
		}
	}
}

// Below 1280 bytes a link has no IPv6: the kernel refuses an address.
func TestKernelIPv6NeedsMTU1280(t *testing.T) {
	_, c, tun := setup(t)
	if err := c.SetLinkMTU(tun.Index, 1000); err != nil {
		t.Fatal(err)
	}
	err := c.AddAddr(Addr{Index: tun.Index, Prefix: mustPrefix("fd00::1/64"), Flags: IFA_F_NODAD})
	ne := asError(t, err)
	if ne.Errno != unix.EINVAL || ne.Op != "addaddr" {
		t.Fatalf("IPv6 address on MTU 1000: %v, want addaddr EINVAL", err)
	}
	t.Logf("IPv6 address on MTU 1000: errno %d (%v), ext-ack message %q", ne.Errno, ne.Errno, ne.Message)
}

// ipRoute is the part of `ip -j route` output these tests check.
type ipRoute struct {
	Dst      string `json:"dst"`
	Dev      string `json:"dev"`
	Gateway  string `json:"gateway"`
	Protocol string `json:"protocol"`
	Scope    string `json:"scope"`
	Metric   int    `json:"metric"`
	Table    string `json:"table"`
}

func ipRoutes(t *testing.T, ns *netnstest.Namespace, args ...string) []ipRoute {
	t.Helper()
	var rs []ipRoute
	if err := ns.IPJSON(&rs, args...); err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestKernelRoutes(t *testing.T) {
	ns, c, tun := setup(t)
	// Routes onto a link need it up; the gateway needs a connected
	// route, which the address brings.
	err := c.AddRoute(Route{Dst: mustPrefix("10.9.0.0/16"), Index: tun.Index})
	ne := asError(t, err)
	if !errors.Is(err, unix.ENETDOWN) {
		t.Errorf("route onto a down link: %v, want ENETDOWN", err)
	}
	t.Logf("route onto a down link: errno %v, ext-ack %q", ne.Errno, ne.Message)
	if err := c.SetLinkUp(tun.Index); err != nil {
		t.Fatal(err)
	}
	if err := c.AddAddr(Addr{Index: tun.Index, Prefix: mustPrefix("10.1.2.3/24")}); err != nil {
		t.Fatal(err)
	}
	onLink := Route{Dst: mustPrefix("10.9.0.0/16"), Index: tun.Index}
	viaGW := Route{Dst: mustPrefix("10.8.0.0/16"), Index: tun.Index, Gateway: mustAddr("10.1.2.4"), Priority: 50}
	v6 := Route{Dst: mustPrefix("fd00:9::/64"), Index: tun.Index, Priority: 7, Table: 1000}
	for _, r := range []Route{onLink, viaGW, v6} {
		if err := c.AddRoute(r); err != nil {
			t.Fatalf("AddRoute(%+v): %v", r, err)
		}
	}
	want := []struct {
		args []string
		want ipRoute
	}{
		{[]string{"-4", "route", "show", "10.9.0.0/16"}, ipRoute{Dst: "10.9.0.0/16", Dev: "t0", Protocol: "static", Scope: "link"}},
		{[]string{"-4", "route", "show", "10.8.0.0/16"}, ipRoute{Dst: "10.8.0.0/16", Dev: "t0", Gateway: "10.1.2.4", Protocol: "static", Metric: 50}},
		{[]string{"-6", "route", "show", "table", "all", "fd00:9::/64"}, ipRoute{Dst: "fd00:9::/64", Dev: "t0", Protocol: "static", Metric: 7, Table: "1000"}},
	}
	for _, w := range want {
		got := ipRoutes(t, ns, w.args...)
		if len(got) != 1 || got[0] != w.want {
			t.Errorf("ip %s: %+v, want %+v", strings.Join(w.args, " "), got, w.want)
		}
	}

	err = c.AddRoute(onLink)
	ne = asError(t, err)
	if !errors.Is(err, unix.EEXIST) || ne.Op != "addroute" {
		t.Errorf("duplicate AddRoute: %v, want addroute EEXIST", err)
	}
	t.Logf("duplicate route: errno %v, ext-ack %q", ne.Errno, ne.Message)

	err = c.AddRoute(Route{Dst: mustPrefix("10.7.0.1/16"), Index: tun.Index})
	ne = asError(t, err)
	if ne.Errno != unix.EINVAL {
		t.Errorf("route with host bits: %v, want EINVAL", err)
	}
	t.Logf("route with host bits set: errno %v, ext-ack %q", ne.Errno, ne.Message)

	for _, r := range []Route{onLink, viaGW, v6} {
		if err := c.DeleteRoute(r); err != nil {
			t.Errorf("DeleteRoute(%+v): %v", r, err)
		}
	}
	if got := ipRoutes(t, ns, "-4", "route", "show", "proto", "static"); len(got) != 0 {
		t.Errorf("IPv4 routes left: %+v", got)
	}
	if got := ipRoutes(t, ns, "-6", "route", "show", "table", "1000"); len(got) != 0 {
		t.Errorf("IPv6 routes left: %+v", got)
	}
	err = c.DeleteRoute(onLink)
	ne = asError(t, err)
	if !errors.Is(err, unix.ESRCH) {
		t.Errorf("DeleteRoute of a missing route: %v, want ESRCH", err)
	}
	t.Logf("delete missing route: errno %v, ext-ack %q", ne.Errno, ne.Message)
}

// With NETLINK_CAP_ACK off the kernel echoes the whole request in its
// error; the ext-ack text and offset after it must still be found, and
// equal what the capped layout gave.
func TestKernelUncappedErrors(t *testing.T) {
	_, c, tun := setup(t)
	bad := func() []Error {
		var errs []Error
		errs = append(errs, *asError(t, c.SetLinkMTU(tun.Index, 10)))
		e := encoder{b: ifInfomsg{Index: int32(tun.Index)}.marshal()}
		e.bytes(iflaMTU, []byte{0xdc, 0x05}) // malformed: the kernel sets an offset
		_, err := c.execute("setlinkmtu", rtmSetLink, 0, e.b, modeAck)
		return append(errs, *asError(t, err))
	}
	capped := bad()
	s := c.t.(*socket)
	if err := unix.SetsockoptInt(s.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 0); err != nil {
		t.Fatal(err)
	}
	uncapped := bad()
	for i := range capped {
		if capped[i].Errno == 0 || uncapped[i] != capped[i] {
			t.Errorf("request %d: uncapped error %#v differs from capped %#v", i, uncapped[i], capped[i])
		}
		t.Logf("request %d: %v", i, &uncapped[i])
	}
	if err := c.SetLinkUp(tun.Index); err != nil {
		t.Errorf("uncapped ack: %v", err)
	}
}

// countingTransport counts datagrams that did not come from the kernel.
type countingTransport struct {
	Transport
	foreign int
}

func (ct *countingTransport) Recv() ([]byte, uint32, error) {
	b, from, err := ct.Transport.Recv()
	if err == nil && from != 0 {
		ct.foreign++
	}
	return b, from, err
}

// Another process can send to our port id. A forged error, addressed and
// numbered exactly like the kernel's answer, must be ignored.
func TestKernelForgedReplyIgnored(t *testing.T) {
	ns, c, tun := setup(t)
	ct := &countingTransport{Transport: c.t}
	c.t = ct
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		fake := newFake()
		fake.pid = ct.PortID()
		req := message{Header: header{Type: rtmSetLink, Flags: nlmFRequest | nlmFAck, Seq: c.seq + 1}, Data: setFlagsRequest(tun.Index, true)}
		forged := fake.errMsg(req, unix.EPERM, true, extAck("forged", 0))
		return unix.Sendto(fd, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: ct.PortID()})
	})
	if err != nil {
		t.Fatalf("sending the forged reply: %v", err)
	}
	if err := c.SetLinkUp(tun.Index); err != nil {
		t.Fatalf("SetLinkUp believed the forged reply: %v", err)
	}
	if ct.foreign != 1 {
		t.Errorf("%d foreign datagrams seen, want the 1 forged", ct.foreign)
	}
	if !ipLink(t, ns, "t0").HasFlag("UP") {
		t.Error("link not up")
	}
}

func TestKernelNoFDLeak(t *testing.T) {
	ns := netnstest.New(t)
	before := leakcheck.FDs(t)
	err := ns.Do(func() error {
		for range 3 {
			c, err := Dial()
			if err != nil {
				return err
			}
			if _, err := c.Links(); err != nil {
				return err
			}
			if err := c.Close(); err != nil {
				return err
			}
			if err := c.Close(); err != nil {
				return fmt.Errorf("second Close: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	leakcheck.NoNewFDs(t, before)
}

func TestKernelConcurrentUse(t *testing.T) {
	_, c, tun := setup(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 4 {
		wg.Go(func() {
			for range 25 {
				var err error
				switch g % 4 {
				case 0:
					var l Link
					if l, err = c.LinkByName("t0"); err == nil && l.Index != tun.Index {
						err = fmt.Errorf("LinkByName(t0) gave index %d", l.Index)
					}
				case 1:
					_, err = c.Links()
				case 2:
					_, err = c.Addrs(0)
				case 3:
					err = c.SetLinkUp(tun.Index)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A malformed attribute makes the kernel point at it with
// NLMSGERR_ATTR_OFFS: here an IFLA_MTU of 2 bytes instead of 4, built by
// hand since the API cannot send one.
func TestKernelExtAckOffset(t *testing.T) {
	_, c, tun := setup(t)
	e := encoder{b: ifInfomsg{Index: int32(tun.Index)}.marshal()}
	e.bytes(iflaMTU, []byte{0xdc, 0x05})
	_, err := c.execute("setlinkmtu", rtmSetLink, 0, e.b, modeAck)
	ne := asError(t, err)
	// 6.18 answers ERANGE (a length outside the policy); older kernels
	// EINVAL.
	if ne.Errno != unix.ERANGE && ne.Errno != unix.EINVAL {
		t.Fatalf("2-byte IFLA_MTU: %v, want ERANGE or EINVAL", err)
	}
	t.Logf("2-byte IFLA_MTU: errno %v, ext-ack %q, offset %d", ne.Errno, ne.Message, ne.Offset)
	if want := uint32(nlmsgHdrLen + sizeofIfInfomsg); ne.Offset != 0 && ne.Offset != want {
		t.Errorf("offset %d, want %d (the IFLA_MTU attribute)", ne.Offset, want)
	}
}

// RouteGet answers as `ip route get` does: local for the host's own
// address, unicast through the link for a neighbour, an error for what is
// unreachable.
func TestKernelRouteGet(t *testing.T) {
	ns := netnstest.New(t)
	for _, args := range [][]string{
		{"tuntap", "add", "dev", "rg0", "mode", "tun"},
		{"link", "set", "rg0", "up"},
		{"addr", "add", "10.8.0.1/24", "dev", "rg0"},
		{"-6", "addr", "add", "fd08::1/64", "dev", "rg0", "nodad"},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	l, err := ns.LinkByName("rg0")
	if err != nil {
		t.Fatal(err)
	}
	var lo netnstest.Link
	if lo, err = ns.LinkByName("lo"); err != nil {
		t.Fatal(err)
	}
	err = ns.Do(func() error {
		c, err := Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		waitLocal := func(a string) RouteLookup {
			// IPv6 installs an address's local route from a work queue:
			// give it a moment, as Create does.
			var r RouteLookup
			for range 200 {
				if r, err = c.RouteGet(netip.MustParseAddr(a)); err == nil && r.Type == RouteLocal {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			return r
		}
		for _, a := range []string{"10.8.0.1", "fd08::1"} {
			if r := waitLocal(a); r.Type != RouteLocal || r.Index != lo.Index {
				t.Errorf("%s: %+v, want local through lo (%d)", a, r, lo.Index)
			}
		}
		for _, a := range []string{"10.8.0.9", "fd08::9"} {
			r, err := c.RouteGet(netip.MustParseAddr(a))
			if err != nil || r.Type != RouteUnicast || r.Index != l.Index {
				t.Errorf("%s: %+v, %v; want unicast through rg0 (%d)", a, r, err, l.Index)
			}
		}
		if _, err := c.RouteGet(netip.MustParseAddr("192.0.2.1")); !errors.Is(err, unix.ENETUNREACH) {
			t.Errorf("unroutable: %v, want ENETUNREACH", err)
		}
		if _, err := c.RouteGet(netip.Addr{}); !errors.Is(err, unix.EINVAL) {
			t.Errorf("zero address: %v, want EINVAL", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ipStatsFields maps the stats64 counters of `ip -j -s -s link show`, by
// direction and ip's name, to LinkStats. ip prints the optional ones only
// when they are not zero (and carrier_changes, which it also prints there,
// is not part of stats64).
var ipStatsFields = []struct {
	dir, name string
	optional  bool
	get       func(*LinkStats) uint64
}{
	{"rx", "packets", false, func(s *LinkStats) uint64 { return s.RxPackets }},
	{"rx", "bytes", false, func(s *LinkStats) uint64 { return s.RxBytes }},
	{"rx", "errors", false, func(s *LinkStats) uint64 { return s.RxErrors }},
	{"rx", "dropped", false, func(s *LinkStats) uint64 { return s.RxDropped }},
	{"rx", "over_errors", false, func(s *LinkStats) uint64 { return s.RxOverErrors }},
	{"rx", "multicast", false, func(s *LinkStats) uint64 { return s.Multicast }},
	{"rx", "length_errors", false, func(s *LinkStats) uint64 { return s.RxLengthErrors }},
	{"rx", "crc_errors", false, func(s *LinkStats) uint64 { return s.RxCRCErrors }},
	{"rx", "frame_errors", false, func(s *LinkStats) uint64 { return s.RxFrameErrors }},
	{"rx", "fifo_errors", false, func(s *LinkStats) uint64 { return s.RxFIFOErrors }},
	{"rx", "missed_errors", false, func(s *LinkStats) uint64 { return s.RxMissedErrors }},
	{"rx", "compressed", true, func(s *LinkStats) uint64 { return s.RxCompressed }},
	{"rx", "nohandler", true, func(s *LinkStats) uint64 { return s.RxNoHandler }},
	{"rx", "otherhost", true, func(s *LinkStats) uint64 { return s.RxOtherhostDropped }},
	{"tx", "packets", false, func(s *LinkStats) uint64 { return s.TxPackets }},
	{"tx", "bytes", false, func(s *LinkStats) uint64 { return s.TxBytes }},
	{"tx", "errors", false, func(s *LinkStats) uint64 { return s.TxErrors }},
	{"tx", "dropped", false, func(s *LinkStats) uint64 { return s.TxDropped }},
	{"tx", "carrier_errors", false, func(s *LinkStats) uint64 { return s.TxCarrierErrors }},
	{"tx", "collisions", false, func(s *LinkStats) uint64 { return s.Collisions }},
	{"tx", "aborted_errors", false, func(s *LinkStats) uint64 { return s.TxAbortedErrors }},
	{"tx", "fifo_errors", false, func(s *LinkStats) uint64 { return s.TxFIFOErrors }},
	{"tx", "window_errors", false, func(s *LinkStats) uint64 { return s.TxWindowErrors }},
	{"tx", "heartbeat_errors", false, func(s *LinkStats) uint64 { return s.TxHeartbeatErrors }},
	{"tx", "compressed", true, func(s *LinkStats) uint64 { return s.TxCompressed }},
}

// ipLinkStats returns ip's stats64 counters for one link, by direction
// ("rx", "tx") and ip's name for the counter.
func ipLinkStats(t *testing.T, ns *netnstest.Namespace, dev string) map[string]map[string]uint64 {
	t.Helper()
	var links []struct {
		Stats64 map[string]map[string]uint64 `json:"stats64"`
	}
	if err := ns.IPJSON(&links, "-s", "-s", "link", "show", "dev", dev); err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Stats64 == nil {
		t.Fatalf("ip -j -s -s link show dev %s: %+v, want one link with stats64", dev, links)
	}
	return links[0].Stats64
}

// heldStats reads a quiet link's counters with LinkByName, then ip's,
// then again with LinkByIndex and Links. When the library's three reads
// agree, nothing moved in between and ip's read must equal them; a stray
// packet only costs another round. It returns the library's counters and
// checks ip's against them.
func heldStats(t *testing.T, ns *netnstest.Namespace, c *Conn, name string) LinkStats {
	t.Helper()
	for attempt := 1; ; attempt++ {
		byName, err := c.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		ip := ipLinkStats(t, ns, name)
		byIndex, err := c.LinkByIndex(byName.Index)
		if err != nil {
			t.Fatal(err)
		}
		links, err := c.Links()
		if err != nil {
			t.Fatal(err)
		}
		reads := []*LinkStats{byName.Stats, byIndex.Stats}
		for _, l := range links {
			if l.Stats == nil {
				t.Errorf("Links: %s has no Stats", l.Name)
			}
			if l.Index == byName.Index {
				reads = append(reads, l.Stats)
			}
		}
		if len(reads) != 3 || slices.Contains(reads, nil) {
			t.Fatalf("%s: Stats from LinkByName, LinkByIndex, Links: %v; want three", name, reads)
		}
		if *reads[0] != *reads[1] || *reads[0] != *reads[2] {
			if attempt == 5 {
				t.Fatalf("%s: counters never held still across LinkByName, ip, LinkByIndex, Links: last %+v, %+v, %+v", name, *reads[0], *reads[1], *reads[2])
			}
			t.Logf("%s, attempt %d: counters moved during the reads; again", name, attempt)
			continue
		}
		got := *reads[0]
		for _, f := range ipStatsFields {
			want, ok := ip[f.dir][f.name]
			if !ok {
				if !f.optional {
					t.Errorf("%s: ip printed no stats64.%s.%s: %v", name, f.dir, f.name, ip)
				}
				continue
			}
			if have := f.get(&got); have != want {
				t.Errorf("%s: stats64.%s.%s is %d here, ip says %d", name, f.dir, f.name, have, want)
			}
		}
		t.Logf("%s: %+v", name, got)
		return got
	}
}

// Loopback's counters, after pings through it, equal ip's from each of
// LinkByName, LinkByIndex and Links, and have risen by the pings. In a
// fresh namespace nothing but the test uses lo, so they hold still between
// the reads.
func TestKernelLinkStats(t *testing.T) {
	ns := netnstest.New(t)
	c := dialIn(t, ns)
	before := heldStats(t, ns, c, "lo")

	// Each echo request and each reply crosses lo once, counted as sent
	// and as received; lo counts bytes from the IP header on.
	const pings, size = 5, 20 + 8 + 56 // IPv4 header, ICMP header, -s 56
	if out, err := ns.Output("ping", "-c", "5", "-i", "0.05", "-s", "56", "-w", "10", "127.0.0.1"); err != nil {
		t.Fatalf("ping 127.0.0.1: %v: %s", err, out)
	}
	after := heldStats(t, ns, c, "lo")

	for _, r := range []struct {
		what          string
		before, after uint64
		least         uint64
	}{
		{"RxPackets", before.RxPackets, after.RxPackets, 2 * pings},
		{"TxPackets", before.TxPackets, after.TxPackets, 2 * pings},
		{"RxBytes", before.RxBytes, after.RxBytes, 2 * pings * size},
		{"TxBytes", before.TxBytes, after.TxBytes, 2 * pings * size},
	} {
		if r.after < r.before || r.after-r.before < r.least {
			t.Errorf("lo %s went from %d to %d over %d pings, want a rise of at least %d", r.what, r.before, r.after, pings, r.least)
		}
	}
}

// kernelAtLeast reports whether the running kernel is major.minor or newer.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	var haveMajor, haveMinor int
	if _, err := fmt.Sscanf(release, "%d.%d", &haveMajor, &haveMinor); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	return haveMajor > major || haveMajor == major && haveMinor >= minor
}

// Loopback cannot tell received from sent (its counters are equal), so a
// veth pair checks the directions: datagrams sent out of v0 are counted as
// sent there and as received on v1, exactly. v0 does not use ARP, so the
// frames carry v0's own MAC address as their destination and v1 drops
// them as addressed to another host (rx_otherhost_dropped, Linux 5.19).
// IPv6 is off on both ends, so nothing else crosses the pair.
func TestKernelLinkStatsVeth(t *testing.T) {
	ns := netnstest.New(t)
	if out, err := ns.Output("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"); err != nil {
		t.Fatalf("ip link add v0 type veth: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Deleting one end deletes the pair.
		if out, err := ns.Output("ip", "link", "del", "dev", "v0"); err != nil {
			t.Errorf("cleanup: ip link del v0: %v: %s", err, out)
		}
	})
	for _, dev := range []string{"v0", "v1"} {
		if err := ns.WriteSysctl("net/ipv6/conf/"+dev+"/disable_ipv6", "1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"link", "set", "v0", "arp", "off"},
		{"link", "set", "v0", "up"},
		{"link", "set", "v1", "up"},
		{"addr", "add", "10.9.0.1/24", "dev", "v0"},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	c := dialIn(t, ns)
	for _, dev := range []string{"v0", "v1"} {
		if s := heldStats(t, ns, c, dev); s != (LinkStats{}) {
			t.Fatalf("%s has counted traffic before the test sent any: %+v", dev, s)
		}
	}

	const datagrams, payload = 7, 100
	const size = 14 + 20 + 8 + payload // veth counts the Ethernet header too
	err := ns.Do(func() error {
		conn, err := net.Dial("udp4", "10.9.0.2:9")
		if err != nil {
			return err
		}
		defer conn.Close()
		for range datagrams {
			if _, err := conn.Write(make([]byte, payload)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending through v0: %v", err)
	}

	sent := LinkStats{TxPackets: datagrams, TxBytes: datagrams * size}
	received := LinkStats{RxPackets: datagrams, RxBytes: datagrams * size}
	if kernelAtLeast(t, 5, 19) {
		received.RxOtherhostDropped = datagrams
	}
	if got := heldStats(t, ns, c, "v0"); got != sent {
		t.Errorf("v0: %+v\nwant %+v", got, sent)
	}
	if got := heldStats(t, ns, c, "v1"); got != received {
		t.Errorf("v1: %+v\nwant %+v", got, received)
	}
}
