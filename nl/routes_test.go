package nl

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Route messages written out by hand from struct rtmsg and struct
// rtnexthop (include/uapi/linux/rtnetlink.h).
func TestParseRoutesGolden(t *testing.T) {
	skipUnlessLittleEndian(t)
	tests := []struct {
		name string
		in   string
		want []Route
	}{
		{"IPv4 multipath: one Route per hop", `
			02 10 00 00 fe 03 00 01 00000000 // AF_INET /16, main, RTPROT_BOOT, universe, unicast
			0800 0f00 fe000000               // RTA_TABLE 254
			0800 0100 0a070000               // RTA_DST 10.7.0.0
			2400 0900                        // RTA_MULTIPATH, nla_len 36
			  1000 00 00 03000000            //   rtnexthop: len 16, flags 0, hops 0, ifindex 3
			  0800 0500 c0000203             //     RTA_GATEWAY 192.0.2.3
			  1000 00 01 04000000            //   rtnexthop: ifindex 4, weight 2 (hops 1)
			  0800 0500 c0000204             //     RTA_GATEWAY 192.0.2.4
		`, []Route{
			{Dst: mustPrefix("10.7.0.0/16"), Table: 254, Protocol: 3, Type: RouteUnicast, Index: 3, Gateway: mustAddr("192.0.2.3")},
			{Dst: mustPrefix("10.7.0.0/16"), Table: 254, Protocol: 3, Type: RouteUnicast, Index: 4, Gateway: mustAddr("192.0.2.4")},
		}},
		{"IPv6 default unreachable in table 1000", `
			0a 00 00 00 fc 04 00 07 00000000 // AF_INET6 /0, RT_TABLE_COMPAT, static, universe, unreachable
			0800 0f00 e8030000               // RTA_TABLE 1000: overrides rtm_table
			0800 0600 00040000               // RTA_PRIORITY 1024
		`, []Route{{Dst: mustPrefix("::/0"), Table: 1000, Protocol: 4, Type: RouteUnreachable, Priority: 1024}}},
		{"IPv4 local without RTA_TABLE", `
			02 20 00 00 ff 02 fe 02 00000000 // AF_INET /32, local table, kernel, host scope, local
			0800 0100 c0000202               // RTA_DST 192.0.2.2
			0800 0400 03000000               // RTA_OIF 3
			0800 0700 c0000202               // RTA_PREFSRC: not decoded
		`, []Route{{Dst: mustPrefix("192.0.2.2/32"), Table: 255, Protocol: 2, Scope: 254, Type: RouteLocal, Index: 3}}},
	}
	for _, tt := range tests {
		got, ok, err := parseRoutes(unhex(t, tt.in))
		if err != nil || !ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v, %v\nwant %+v", tt.name, got, ok, err, tt.want)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	mk := func(fam, dstLen uint8, fn func(e *encoder)) []byte {
		e := encoder{b: rtmsg{Family: fam, DstLen: dstLen, Table: 254, Type: 1}.marshal()}
		fn(&e)
		return e.b
	}
	nexthop := func(index int32, fn func(e *encoder)) []byte {
		inner := encoder{b: make([]byte, sizeofRtnexthop)}
		fn(&inner)
		nativeEndian.PutUint16(inner.b[0:2], uint16(len(inner.b)))
		nativeEndian.PutUint32(inner.b[4:8], uint32(index))
		return inner.b
	}
	// Family 128 is RTNL_FAMILY_IPMR, multicast routing: not ours.
	if rs, ok, err := parseRoutes(mk(128, 0, func(*encoder) {})); ok || err != nil || rs != nil {
		t.Errorf("IPMR family: %+v, %v, %v; want skipped", rs, ok, err)
	}
	// An empty RTA_MULTIPATH leaves the route itself.
	if rs, ok, err := parseRoutes(mk(afInet, 8, func(e *encoder) {
		e.bytes(rtaDst, []byte{10, 0, 0, 0})
		e.bytes(rtaMultipath, nil)
	})); !ok || err != nil || len(rs) != 1 || rs[0].Dst != mustPrefix("10.0.0.0/8") {
		t.Errorf("empty multipath: %+v, %v, %v", rs, ok, err)
	}
	// An IPv4 hop through an IPv6 neighbour (RTA_VIA) has no Gateway.
	if rs, _, err := parseRoutes(mk(afInet, 8, func(e *encoder) {
		e.bytes(rtaDst, []byte{10, 0, 0, 0})
		e.bytes(rtaMultipath, nexthop(5, func(e *encoder) { e.bytes(18, make([]byte, 18)) }))
	})); err != nil || len(rs) != 1 || rs[0].Gateway.IsValid() || rs[0].Index != 5 {
		t.Errorf("RTA_VIA hop: %+v, %v", rs, err)
	}

	bad := []struct {
		name string
		in   []byte
		want string
	}{
		{"short rtmsg", make([]byte, 11), "want at least 12"},
		{"IPv4 /33", mk(afInet, 33, func(*encoder) {}), "exceeds 32 bits"},
		{"IPv6 /129", mk(afInet6, 129, func(*encoder) {}), "exceeds 128 bits"},
		{"RTA_DST of 3 bytes", mk(afInet, 24, func(e *encoder) { e.bytes(rtaDst, []byte{10, 0, 0}) }), "RTA_DST of 3 bytes"},
		{"IPv6 RTA_DST of 4 bytes", mk(afInet6, 24, func(e *encoder) { e.bytes(rtaDst, []byte{10, 0, 0, 0}) }), "RTA_DST of 4 bytes"},
		{"gateway of 16 bytes in IPv4", mk(afInet, 0, func(e *encoder) { e.bytes(rtaGateway, make([]byte, 16)) }), "of 16 bytes"},
		{"OIF of 2 bytes", mk(afInet, 0, func(e *encoder) { e.bytes(rtaOIF, []byte{1, 0}) }), "want 4 for a u32"},
		{"table of 1 byte", mk(afInet, 0, func(e *encoder) { e.bytes(rtaTable, []byte{1}) }), "want 4 for a u32"},
		{"priority of 8 bytes", mk(afInet, 0, func(e *encoder) { e.bytes(rtaPriority, make([]byte, 8)) }), "want 4 for a u32"},
		{"stray attribute bytes", mk(afInet, 0, func(e *encoder) { e.b = append(e.b, 1, 2) }), "a header needs 4"},
		{"rtnexthop of 6 bytes", mk(afInet, 0, func(e *encoder) { e.bytes(rtaMultipath, make([]byte, 6)) }), "rtnexthop needs 8"},
		{"rtnh_len 4", mk(afInet, 0, func(e *encoder) {
			h := nexthop(3, func(*encoder) {})
			h[0] = 4
			e.bytes(rtaMultipath, h)
		}), "rtnh_len 4 outside"},
		{"rtnh_len past the end", mk(afInet, 0, func(e *encoder) {
			h := nexthop(3, func(*encoder) {})
			h[0] = 12
			e.bytes(rtaMultipath, h)
		}), "rtnh_len 12 outside"},
		{"hop attributes broken", mk(afInet, 0, func(e *encoder) {
			e.bytes(rtaMultipath, nexthop(3, func(e *encoder) { e.b = append(e.b, 9, 0, 5, 0) }))
		}), "runs past"},
		{"hop gateway of 4 bytes in IPv6", mk(afInet6, 0, func(e *encoder) {
			e.bytes(rtaMultipath, nexthop(3, func(e *encoder) { e.bytes(rtaGateway, []byte{1, 2, 3, 4}) }))
		}), "of 4 bytes"},
	}
	for _, tt := range bad {
		if rs, _, err := parseRoutes(tt.in); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %+v, %v; want ErrMalformed mentioning %q", tt.name, rs, err, tt.want)
		}
	}
}

// Routes through the fake kernel: both families, tables above 255, and a
// route from Routes handed back to DeleteRoute as it is.
func TestRoutesRoundTrip(t *testing.T) {
	f := newFakeRTNL()
	f.routes = []Route{
		{Dst: mustPrefix("0.0.0.0/0"), Table: 254, Protocol: 3, Type: RouteUnicast, Index: 2, Gateway: mustAddr("10.0.0.1")},
		{Dst: mustPrefix("fd00::/64"), Table: 254, Protocol: 2, Type: RouteUnicast, Index: 2, Priority: 256},
		{Dst: mustPrefix("10.5.0.0/16"), Table: 100, Protocol: 4, Type: RouteUnicast, Index: 2, Gateway: mustAddr("10.0.0.1")},
		{Dst: mustPrefix("10.66.0.0/16"), Table: 1000, Protocol: 3, Type: RouteBlackhole},
		{Dst: mustPrefix("127.0.0.1/32"), Table: 255, Protocol: 2, Scope: 254, Type: RouteLocal, Index: 1},
		{Dst: mustPrefix("::/0"), Table: 70000, Protocol: 3, Type: RouteUnicast, Index: 2, Gateway: mustAddr("fe80::1")},
	}
	got, err := NewConn(f).Routes()
	if err != nil {
		t.Fatal(err)
	}
	// IPv4 first, then IPv6, each in the kernel's order.
	want := []Route{f.routes[0], f.routes[2], f.routes[3], f.routes[4], f.routes[1], f.routes[5]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Routes() = %+v\nwant %+v", got, want)
	}
}

// Each family's dump is redone whole when the kernel marks it interrupted;
// an IPv6 dump that answers with IPv4 routes too (a kernel without IPv6
// falls back to dumping every family) does not list them twice.
func TestRoutesDumpInterruptedAndForeignFamily(t *testing.T) {
	f := newFakeRTNL()
	v4 := Route{Dst: mustPrefix("10.0.0.0/8"), Table: 254, Type: RouteUnicast, Index: 2}
	v6 := Route{Dst: mustPrefix("fd00::/8"), Table: 254, Type: RouteUnicast, Index: 2}
	attempts := map[uint8]int{}
	f.handle = func(req message) {
		fam := req.Data[0]
		attempts[fam]++
		var flags uint16
		if attempts[fam] == 1 {
			flags = nlmFDumpIntr
		}
		f.deliver(0, f.reply(req, rtmNewRoute, nlmFMulti|flags, routePayload(v4)))
		if fam == afInet6 {
			f.deliver(0, f.reply(req, rtmNewRoute, nlmFMulti, routePayload(v6)))
		}
		f.deliver(0, f.done(req, 0, 0, nil))
	}
	got, err := NewConn(f).Routes()
	if err != nil || !reflect.DeepEqual(got, []Route{v4, v6}) {
		t.Errorf("Routes() = %+v, %v; want %+v", got, err, []Route{v4, v6})
	}
	if attempts[afInet] != 2 || attempts[afInet6] != 2 {
		t.Errorf("dump attempts %v, want 2 per family", attempts)
	}

	f.handle = func(req message) { f.deliver(0, f.errMsg(req, unix.EOPNOTSUPP, true, nil)) }
	_, err = NewConn(f).Routes()
	if ne := asError(t, err); ne.Op != "routes" || ne.Errno != unix.EOPNOTSUPP {
		t.Errorf("refused dump: %v", err)
	}
	f.handle = func(req message) {
		bad := routePayload(v4)
		bad[1] = 40 // dst_len 40 in IPv4
		f.deliver(0, f.reply(req, rtmNewRoute, nlmFMulti, bad))
		f.deliver(0, f.done(req, 0, 0, nil))
	}
	_, err = NewConn(f).Routes()
	if ne := asError(t, err); ne.Op != "routes" || !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed route: %v", err)
	}
}

// routeKey is a route written out in full, for comparing lists.
func routeKey(r Route) string {
	gw := "-"
	if r.Gateway.IsValid() {
		gw = r.Gateway.String()
	}
	return fmt.Sprintf("%v table %d type %d proto %d scope %d metric %d oif %d via %s",
		r.Dst, r.Table, r.Type, r.Protocol, r.Scope, r.Priority, r.Index, gw)
}
