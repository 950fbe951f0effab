package nl

import (
	"errors"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// Owner and group ids for the tests: no passwd or group entry has them, so
// ip prints them as numbers rather than names.
const (
	testUID = 54321
	testGID = 54322
)

// ipLinkDetail is the part of `ip -j -d link show` output that Kind, Tun
// and Alias are checked against (iproute2 prints linkinfo.info_data for
// kind "tun" in ip/iptuntap.c).
type ipLinkDetail struct {
	Index    int    `json:"ifindex"`
	Name     string `json:"ifname"`
	Alias    string `json:"ifalias"`
	LinkInfo *struct {
		Kind string `json:"info_kind"`
		Data *struct {
			Type        string  `json:"type"`
			PI          *bool   `json:"pi"`
			VnetHdr     *bool   `json:"vnet_hdr"`
			MultiQueue  *bool   `json:"multi_queue"`
			Persist     *bool   `json:"persist"`
			NumQueues   *uint32 `json:"numqueues"`   // multi-queue devices only
			NumDisabled *uint32 `json:"numdisabled"` // multi-queue devices only
			User        *uint32 `json:"user"`        // only when an owner is set
			Group       *uint32 `json:"group"`       // only when a group is set
		} `json:"info_data"`
	} `json:"linkinfo"`
}

func ipLinkDetails(t *testing.T, ns *netnstest.Namespace) map[int]ipLinkDetail {
	t.Helper()
	var links []ipLinkDetail
	if err := ns.IPJSON(&links, "-d", "link", "show"); err != nil {
		t.Fatal(err)
	}
	m := make(map[int]ipLinkDetail, len(links))
	for _, l := range links {
		m[l.Index] = l
	}
	return m
}

// checkLinkInfo compares Kind, Tun and Alias with ip's view of the link.
func checkLinkInfo(t *testing.T, got Link, ip ipLinkDetail) {
	t.Helper()
	if got.Alias != ip.Alias {
		t.Errorf("%s: Alias %q, ip says %q", ip.Name, got.Alias, ip.Alias)
	}
	if ip.LinkInfo == nil {
		if got.Kind != "" || got.Tun != nil {
			t.Errorf("%s: Kind %q Tun %+v, ip shows no linkinfo", ip.Name, got.Kind, got.Tun)
		}
		return
	}
	if got.Kind != ip.LinkInfo.Kind {
		t.Errorf("%s: Kind %q, ip says %q", ip.Name, got.Kind, ip.LinkInfo.Kind)
	}
	if ip.LinkInfo.Kind != "tun" {
		if got.Tun != nil {
			t.Errorf("%s: kind %q with Tun %+v", ip.Name, ip.LinkInfo.Kind, got.Tun)
		}
		return
	}
	d := ip.LinkInfo.Data
	if got.Tun == nil || d == nil {
		t.Fatalf("%s: Tun %+v, ip's info_data %+v", ip.Name, got.Tun, d)
	}
	tu := got.Tun
	wantType := map[string]uint8{"tun": 1, "tap": 2}[d.Type]
	if wantType == 0 || tu.Type != wantType {
		t.Errorf("%s: Tun.Type %d, ip says %q", ip.Name, tu.Type, d.Type)
	}
	for _, f := range []struct {
		name string
		got  bool
		ip   *bool
	}{{"pi", tu.PI, d.PI}, {"vnet_hdr", tu.VnetHdr, d.VnetHdr}, {"multi_queue", tu.MultiQueue, d.MultiQueue}, {"persist", tu.Persist, d.Persist}} {
		if f.ip == nil || *f.ip != f.got {
			t.Errorf("%s: %s is %v here, ip says %v", ip.Name, f.name, f.got, deref(f.ip))
		}
	}
	for _, f := range []struct {
		name string
		got  uint32
		has  bool
		ip   *uint32
	}{
		{"user", tu.Owner, tu.HasOwner, d.User},
		{"group", tu.Group, tu.HasGroup, d.Group},
		{"numqueues", tu.NumQueues, tu.MultiQueue, d.NumQueues},
		{"numdisabled", tu.NumDisabledQueues, tu.MultiQueue, d.NumDisabled},
	} {
		if f.has != (f.ip != nil) || f.ip != nil && *f.ip != f.got {
			t.Errorf("%s: %s is %d (present %v) here, ip says %v", ip.Name, f.name, f.got, f.has, deref(f.ip))
		}
		if f.ip == nil && f.got != 0 {
			t.Errorf("%s: %s is %d but absent", ip.Name, f.name, f.got)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "absent"
	}
	return *p
}

// openTun opens a device with the project's tun package inside ns and
// closes it when the test ends; a persistent one is deleted too.
func openTun(t *testing.T, ns *netnstest.Namespace, cfg tun.Config) *tun.Device {
	t.Helper()
	var dev *tun.Device
	if err := ns.Do(func() (err error) { dev, err = tun.Open(cfg); return err }); err != nil {
		t.Fatalf("tun.Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		dev.Close()
		ns.Output("ip", "link", "del", "dev", cfg.Name) // a persistent one stays otherwise
	})
	return dev
}

// Kind and Tun of a TUN and a TAP device made with different flags, of a
// veth pair and of lo, from Links and LinkByIndex, each as `ip -d` shows.
func TestKernelLinkInfo(t *testing.T) {
	ns := netnstest.New(t)
	c := dialIn(t, ns)

	// A persistent TUN device with the PI header, an owner and a group.
	t1 := openTun(t, ns, tun.Config{Name: "lt1", PacketInfo: true})
	for _, err := range []error{t1.SetPersist(true), t1.SetOwner(testUID), t1.SetGroup(testGID)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A multi-queue TAP device with vnet headers: three queues, one of
	// them detached.
	t2 := openTun(t, ns, tun.Config{Name: "lt2", TAP: true, MultiQueue: true, VnetHdr: true})
	for range 2 {
		if err := ns.Do(func() error { _, err := t2.AddQueue(); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := t2.Queues()[2].Detach(); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Output("ip", "link", "add", "lv0", "type", "veth", "peer", "name", "lv1"); err != nil {
		t.Fatalf("ip link add veth: %v: %s", err, out)
	}
	t.Cleanup(func() { ns.Output("ip", "link", "del", "dev", "lv0") })

	links, err := c.Links()
	if err != nil {
		t.Fatal(err)
	}
	ip := ipLinkDetails(t, ns)
	if len(links) != 5 || len(ip) != 5 {
		t.Fatalf("Links() has %d links, ip %d; want 5 (lo, lt1, lt2, lv0, lv1)", len(links), len(ip))
	}
	byName := map[string]Link{}
	for _, l := range links {
		checkLinkInfo(t, l, ip[l.Index])
		byName[l.Name] = l
		one, err := c.LinkByIndex(l.Index)
		if err != nil {
			t.Fatal(err)
		}
		checkLinkInfo(t, one, ip[l.Index])
	}

	// What the test set, independently of ip.
	want := map[string]struct {
		kind string
		tun  *TunInfo
	}{
		"lo":  {"", nil},
		"lv0": {"veth", nil},
		"lv1": {"veth", nil},
		"lt1": {"tun", &TunInfo{Type: 1, PI: true, Persist: true, Owner: testUID, HasOwner: true, Group: testGID, HasGroup: true}},
		"lt2": {"tun", &TunInfo{Type: 2, VnetHdr: true, MultiQueue: true, NumQueues: 2, NumDisabledQueues: 1}},
	}
	for name, w := range want {
		l, ok := byName[name]
		if !ok {
			t.Errorf("Links() lacks %s", name)
			continue
		}
		if l.Kind != w.kind || (l.Tun == nil) != (w.tun == nil) || l.Tun != nil && *l.Tun != *w.tun {
			t.Errorf("%s: Kind %q Tun %+v; want %q %+v", name, l.Kind, l.Tun, w.kind, w.tun)
		}
	}
}

func TestKernelSetLinkAlias(t *testing.T) {
	ns, c, tun := setup(t)
	check := func(want string) {
		t.Helper()
		if got := ipLinkDetails(t, ns)[tun.Index].Alias; got != want {
			t.Errorf("ip shows alias %q, want %q", got, want)
		}
		l, err := c.LinkByIndex(tun.Index)
		if err != nil {
			t.Fatal(err)
		}
		if l.Alias != want {
			t.Errorf("LinkByIndex: Alias %q, want %q", l.Alias, want)
		}
	}
	for _, alias := range []string{"tundra broker uid=1000", "größe ✓", strings.Repeat("a", 255)} {
		if err := c.SetLinkAlias(tun.Index, alias); err != nil {
			t.Fatalf("SetLinkAlias(%q): %v", alias, err)
		}
		check(alias)
	}
	if err := c.SetLinkAlias(tun.Index, ""); err != nil {
		t.Fatal(err)
	}
	check("")

	for _, bad := range []string{strings.Repeat("a", 256), "a\x00b"} {
		err := c.SetLinkAlias(tun.Index, bad)
		if ne := asError(t, err); ne.Errno != unix.EINVAL || ne.Op != "setlinkalias" {
			t.Errorf("SetLinkAlias of %d bytes: %v, want setlinkalias EINVAL", len(bad), err)
		}
	}
	if err := c.SetLinkAlias(9999, "x"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("SetLinkAlias of a missing link: %v, want ENODEV", err)
	}
}

func TestKernelDeleteLink(t *testing.T) {
	ns, c, tun := setup(t)
	veth := "dv0"
	if out, err := ns.Output("ip", "link", "add", veth, "type", "veth", "peer", "name", "dv1"); err != nil {
		t.Fatalf("ip link add veth: %v: %s", err, out)
	}
	t.Cleanup(func() { ns.Output("ip", "link", "del", "dev", veth) })
	v := ipLink(t, ns, veth)

	for _, l := range []netnstest.Link{tun, v} {
		if err := c.DeleteLink(l.Index); err != nil {
			t.Fatalf("DeleteLink(%s): %v", l.Name, err)
		}
	}
	links, err := ns.Links()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Name != "lo" {
		t.Errorf("ip shows %+v after deleting t0 and the veth pair, want only lo", links)
	}
	err = c.DeleteLink(tun.Index)
	if ne := asError(t, err); !errors.Is(err, unix.ENODEV) || ne.Op != "deletelink" {
		t.Errorf("DeleteLink of a deleted link: %v, want deletelink ENODEV", err)
	}
	lo := ipLink(t, ns, "lo")
	err = c.DeleteLink(lo.Index)
	ne := asError(t, err)
	if ne.Errno == 0 {
		t.Errorf("DeleteLink(lo): %v, want the kernel's refusal", err)
	}
	t.Logf("DeleteLink(lo): %v", err)
	if _, err := ns.LinkByName("lo"); err != nil {
		t.Errorf("lo after a refused DeleteLink: %v", err)
	}
}

// addrDetail adds the broadcast address to ip's address view.
type addrDetail struct {
	netnstest.AddrInfo
	Broadcast string `json:"broadcast"`
}

func TestKernelAddrBroadcast(t *testing.T) {
	ns := netnstest.New(t)
	// A broadcast address needs a link that broadcasts: a TAP device.
	if out, err := ns.Output("ip", "tuntap", "add", "dev", "bc0", "mode", "tap"); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}
	t.Cleanup(func() { ns.Output("ip", "link", "del", "dev", "bc0") })
	l := ipLink(t, ns, "bc0")
	c := dialIn(t, ns)

	with := Addr{Index: l.Index, Prefix: mustPrefix("10.1.2.3/24"), Broadcast: mustAddr("10.1.2.255")}
	without := Addr{Index: l.Index, Prefix: mustPrefix("10.5.0.1/16")}
	odd := Addr{Index: l.Index, Prefix: mustPrefix("10.6.0.1/16"), Broadcast: mustAddr("10.6.1.2")}
	if err := c.AddAddr(with); err != nil {
		t.Fatal(err)
	}
	if err := c.ReplaceAddr(without); err != nil {
		t.Fatal(err)
	}
	if err := c.ReplaceAddr(odd); err != nil {
		t.Fatal(err)
	}
	var ipv []struct {
		AddrInfo []addrDetail `json:"addr_info"`
	}
	if err := ns.IPJSON(&ipv, "-4", "addr", "show", "dev", "bc0"); err != nil {
		t.Fatal(err)
	}
	if len(ipv) != 1 {
		t.Fatalf("ip -4 addr show dev bc0: %+v", ipv)
	}
	ipBcast := map[string]string{}
	for _, a := range ipv[0].AddrInfo {
		ipBcast[a.Local] = a.Broadcast
	}
	want := map[string]string{"10.1.2.3": "10.1.2.255", "10.5.0.1": "", "10.6.0.1": "10.6.1.2"}
	addrs, err := c.Addrs(l.Index)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 3 || len(ipBcast) != 3 {
		t.Fatalf("Addrs %+v, ip %v; want 3 addresses", addrs, ipBcast)
	}
	for _, a := range addrs {
		local := a.Prefix.Addr().String()
		got := ""
		if a.Broadcast.IsValid() {
			got = a.Broadcast.String()
		}
		if got != want[local] || ipBcast[local] != want[local] {
			t.Errorf("%s: Broadcast %q, ip says %q, want %q", local, got, ipBcast[local], want[local])
		}
	}
	err = c.AddAddr(Addr{Index: l.Index, Prefix: mustPrefix("fd00::1/64"), Broadcast: mustAddr("fd00::ff")})
	if ne := asError(t, err); ne.Errno != unix.EINVAL || !strings.Contains(err.Error(), "only IPv4") {
		t.Errorf("IPv6 with a broadcast address: %v, want EINVAL", err)
	}
	for _, a := range []Addr{with, without, odd} {
		if err := c.DeleteAddr(a); err != nil {
			t.Errorf("DeleteAddr(%v): %v", a.Prefix, err)
		}
	}
}
