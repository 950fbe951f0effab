package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tundra-go/tundra/broker"
)

// The reproduction: a namespace standing in for a cloud host, with
// a default route, a route to the metadata service, a static IPv6 route
// and a route in table 100 that an ip rule selects. A member may not claim
// a prefix the host routes (the new device's connected route would win),
// whichever table holds the route; default routes, fe80::/64 and the local
// table do not stop it. The host's routing is unchanged afterwards.
func TestRouteCheck(t *testing.T) {
	ts := startServer(t, func(c *broker.Config) {
		// IPv4 link-local allowed by the administrator, so that the route
		// check, not the prefix list, is what refuses the metadata range.
		c.Policy.AllowedPrefixes = append(c.Policy.AllowedPrefixes, pfx("169.254.0.0/16"))
	})
	ns := ts.ns
	t.Cleanup(func() { ns.Output("ip", "link", "del", "v0") })
	for _, args := range [][]string{
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"link", "set", "v0", "up"},
		{"link", "set", "v1", "up"},
		{"addr", "add", "192.0.2.2/24", "dev", "v0"},
		{"addr", "add", "fd00::2/64", "dev", "v0", "nodad"},
		{"route", "add", "default", "via", "192.0.2.1"},
		{"route", "add", "169.254.169.254", "via", "192.0.2.1"},
		{"-6", "route", "add", "default", "via", "fd00::1"},
		{"-6", "route", "add", "fd12:3456::/48", "via", "fd00::1"},
		{"-6", "route", "add", "fd55::/32", "via", "fd00::1", "table", "100"},
		{"-6", "rule", "add", "to", "fd55::/32", "lookup", "100"},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	routeGet := func(dst string) string {
		t.Helper()
		var rs []struct {
			Gateway string `json:"gateway"`
			Dev     string `json:"dev"`
		}
		if err := ns.IPJSON(&rs, "route", "get", dst); err != nil || len(rs) != 1 {
			t.Fatalf("ip route get %s: %v %v", dst, rs, err)
		}
		return rs[0].Gateway + " " + rs[0].Dev
	}
	before := map[string]string{}
	for _, dst := range []string{"169.254.169.254", "fd12:3456::80", "fd55::80"} {
		before[dst] = routeGet(dst)
	}

	type tc struct {
		what string
		req  broker.Request
		want string // "" = allowed
	}
	cases := []tc{
		{"metadata service", broker.Request{Addr: pfx("169.254.169.1/24")},
			"address: 169.254.169.1/24 overlaps the route to 169.254.169.254/32 via 192.0.2.1 dev v0 (table main)"},
		{"static IPv6 route", broker.Request{Addr: pfx("fd12:3456::1/64")},
			"address: fd12:3456::1/64 overlaps the route to fd12:3456::/48 via fd00::1 dev v0 (table main)"},
		{"table 100", broker.Request{Addr: pfx("fd55:0:1::1/64")},
			"address: fd55:0:1::1/64 overlaps the route to fd55::/32 via fd00::1 dev v0 (table 100)"},
		{"peer routed", broker.Request{Addr: pfx("fd77::1/128"), Peer: ip("fd12:3456::9")},
			"peer: fd12:3456::9 is inside the route to fd12:3456::/48 via fd00::1 dev v0 (table main)"},
		{"IPv4 beside the routes", broker.Request{Addr: pfx("169.254.7.1/24")}, ""},
		{"IPv6 beside the routes", broker.Request{Addr: pfx("fd77::1/64")}, ""},
	}
	var reqs []broker.Request
	for _, c := range cases {
		reqs = append(reqs, c.req)
	}
	c := ts.startChild(t, asMember, "batch", jsonEnv(t, "TUNDRA_BATCH", reqs))
	for _, tc := range cases {
		r := c.next(t)
		switch {
		case tc.want == "" && r.Err != "":
			t.Errorf("%s: refused: %+v", tc.what, r)
		case tc.want != "" && (r.Status != "denied by policy" || r.Message != tc.want):
			t.Errorf("%s: got %+v, want denied with %q", tc.what, r, tc.want)
		}
	}
	for dst, via := range before {
		if got := routeGet(dst); got != via {
			t.Errorf("ip route get %s: %q, was %q", dst, got, via)
		}
	}
	c.stop(10 * time.Second)
	ts.waitLinks(t, "v0", "v1")

	// The refusal is in the audit log as on the wire.
	ts.log.waitRecord(t, func(a map[string]string) bool {
		return a["msg"] == "audit" && a["result"] == "refused" && strings.Contains(a["reason"], "(table 100)")
	})
}
