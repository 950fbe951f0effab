package nl

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
)

// ipRouteDetail is one route of `ip -N -d -j route show table all`: with
// -N, ip prints type, table, protocol and scope as numbers.
type ipRouteDetail struct {
	Type     string `json:"type"`
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Dev      string `json:"dev"`
	Table    string `json:"table"`
	Protocol string `json:"protocol"`
	Scope    string `json:"scope"`
	Metric   uint32 `json:"metric"`
	Nexthops []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	} `json:"nexthops"`
}

// ipRouteKeys lists ip's routes of one family ("-4", "-6") as routeKeys,
// one per next hop of a multipath route as Routes reports them.
func ipRouteKeys(t *testing.T, ns *netnstest.Namespace, fam string) []string {
	t.Helper()
	var rs []ipRouteDetail
	if err := ns.IPJSON(&rs, "-N", "-d", fam, "route", "show", "table", "all"); err != nil {
		t.Fatal(err)
	}
	links, err := ns.Links()
	if err != nil {
		t.Fatal(err)
	}
	index := map[string]int{"": 0}
	for _, l := range links {
		index[l.Name] = l.Index
	}
	num := func(what, s string) uint8 {
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			t.Fatalf("ip route: %s %q is not a number", what, s)
		}
		return uint8(n)
	}
	var keys []string
	for _, ir := range rs {
		dst := ir.Dst
		switch {
		case dst == "default" && fam == "-4":
			dst = "0.0.0.0/0"
		case dst == "default":
			dst = "::/0"
		case !strings.Contains(dst, "/"):
			dst = netip.PrefixFrom(netip.MustParseAddr(dst), map[string]int{"-4": 32, "-6": 128}[fam]).String()
		}
		table, err := strconv.ParseUint(ir.Table, 10, 32)
		if err != nil {
			t.Fatalf("ip route: table %q is not a number", ir.Table)
		}
		r := Route{Dst: netip.MustParsePrefix(dst), Table: uint32(table), Type: num("type", ir.Type),
			Protocol: num("protocol", ir.Protocol), Scope: num("scope", ir.Scope), Priority: ir.Metric}
		hops := ir.Nexthops
		if len(hops) == 0 {
			hops = append(hops, struct {
				Gateway string `json:"gateway"`
				Dev     string `json:"dev"`
			}{ir.Gateway, ir.Dev})
		}
		for _, h := range hops {
			hr := r
			hr.Index = index[h.Dev]
			if h.Gateway != "" {
				hr.Gateway = netip.MustParseAddr(h.Gateway)
			}
			keys = append(keys, routeKey(hr))
		}
	}
	return keys
}

// Routes lists what `ip route show table all` lists, family by family: a
// default route and a connected one in main, a route in table 100 that a
// policy rule uses, a multipath route, a blackhole, the local table's
// local and broadcast entries, and the IPv6 ones of the issue's
// reproduction.
func TestKernelRoutesAllTables(t *testing.T) {
	ns := netnstest.New(t)
	for _, args := range [][]string{
		{"link", "add", "rv0", "type", "veth", "peer", "name", "rv1"},
		{"link", "set", "rv0", "up"},
		{"link", "set", "rv1", "up"},
		{"addr", "add", "192.0.2.2/24", "dev", "rv0"},
		{"-6", "addr", "add", "fd00::2/64", "dev", "rv0", "nodad"},
		{"route", "add", "default", "via", "192.0.2.1"},
		{"route", "add", "10.5.0.0/16", "via", "192.0.2.1", "table", "100"},
		{"rule", "add", "from", "10.0.0.0/8", "table", "100"},
		{"route", "add", "10.7.0.0/16", "nexthop", "via", "192.0.2.3", "nexthop", "via", "192.0.2.4"},
		{"route", "add", "blackhole", "10.66.0.0/16", "table", "1000"},
		{"-6", "route", "add", "fd12:3456::/48", "via", "fd00::1", "metric", "7"},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { ns.Output("ip", "link", "del", "dev", "rv0") })
	rv0 := ipLink(t, ns, "rv0").Index
	lo := ipLink(t, ns, "lo").Index
	c := dialIn(t, ns)

	// IPv6 adds the local routes of addresses from a work queue; the
	// dumps are compared until two agree, as routes may still appear.
	var routes []Route
	var want, got []string
	for attempt := 1; ; attempt++ {
		var err error
		if routes, err = c.Routes(); err != nil {
			t.Fatal(err)
		}
		want = append(ipRouteKeys(t, ns, "-4"), ipRouteKeys(t, ns, "-6")...)
		got = got[:0]
		for _, r := range routes {
			got = append(got, routeKey(r))
		}
		if slices.Equal(got, want) {
			break
		}
		if attempt == 20 {
			t.Fatalf("Routes() and ip route show table all differ:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	}
	t.Logf("%d routes:\n%s", len(got), strings.Join(got, "\n"))

	// And what the test configured, independently of ip.
	must := []Route{
		{Dst: mustPrefix("0.0.0.0/0"), Table: 254, Type: RouteUnicast, Protocol: 3, Index: rv0, Gateway: mustAddr("192.0.2.1")},
		{Dst: mustPrefix("192.0.2.0/24"), Table: 254, Type: RouteUnicast, Protocol: 2, Scope: 253, Index: rv0},
		{Dst: mustPrefix("10.5.0.0/16"), Table: 100, Type: RouteUnicast, Protocol: 3, Index: rv0, Gateway: mustAddr("192.0.2.1")},
		{Dst: mustPrefix("10.7.0.0/16"), Table: 254, Type: RouteUnicast, Protocol: 3, Index: rv0, Gateway: mustAddr("192.0.2.3")},
		{Dst: mustPrefix("10.7.0.0/16"), Table: 254, Type: RouteUnicast, Protocol: 3, Index: rv0, Gateway: mustAddr("192.0.2.4")},
		{Dst: mustPrefix("10.66.0.0/16"), Table: 1000, Type: RouteBlackhole, Protocol: 3},
		{Dst: mustPrefix("192.0.2.2/32"), Table: 255, Type: RouteLocal, Protocol: 2, Scope: 254, Index: rv0},
		{Dst: mustPrefix("192.0.2.255/32"), Table: 255, Type: RouteBroadcast, Protocol: 2, Scope: 253, Index: rv0},
		{Dst: mustPrefix("127.0.0.0/8"), Table: 255, Type: RouteLocal, Protocol: 2, Scope: 254, Index: lo},
		{Dst: mustPrefix("fd12:3456::/48"), Table: 254, Type: RouteUnicast, Protocol: 3, Index: rv0, Gateway: mustAddr("fd00::1"), Priority: 7},
		{Dst: mustPrefix("fd00::2/128"), Table: 255, Type: RouteLocal, Protocol: 2, Index: rv0},
	}
	for _, m := range must {
		if !slices.Contains(got, routeKey(m)) {
			t.Errorf("Routes() lacks %s", routeKey(m))
		}
	}
}
