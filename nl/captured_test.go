package nl

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readCorpus returns the datagram of one file of testdata/fuzz, whose
// format is "go test fuzz v1" and one []byte("...") line.
func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParseMessages", name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a one-value corpus file", name)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}

// Datagrams a 6.18 kernel (x86-64) sent to this package, captured once in
// a private namespace into testdata/fuzz: a multi-queue TAP device cap0
// with vnet headers, made persistent and given owner 1000 and an alias,
// with 192.0.2.2/24 broadcast 192.0.2.255, a multipath route to
// 10.7.0.0/16 and a route in table 1000; then deleted. They are decoded
// here without privileges, so that a change to the parsers that breaks
// on the real thing fails everywhere.
func TestCapturedKernelDatagrams(t *testing.T) {
	skipUnlessLittleEndian(t)
	wantTun := TunInfo{Type: 2, VnetHdr: true, Persist: true, MultiQueue: true, Owner: 1000, HasOwner: true, NumQueues: 1}

	var cap0 *Link
	for _, m := range mustMessages(t, readCorpus(t, "kernel-linkdump-tun-0")) {
		l, err := parseLink(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if l.Name == "cap0" {
			cap0 = &l
		}
	}
	if cap0 == nil || cap0.Kind != "tun" || cap0.Tun == nil || *cap0.Tun != wantTun || cap0.Alias != "tundra uid=1000" {
		t.Errorf("link dump: cap0 %+v (Tun %+v), want a tun link with %+v and its alias", cap0, tunOf(cap0), wantTun)
	}

	var addrs []Addr
	for _, m := range mustMessages(t, readCorpus(t, "kernel-addrdump-broadcast-0")) {
		if a, ok, err := parseAddr(m.Data); err != nil {
			t.Fatal(err)
		} else if ok && a.Prefix.Addr().Is4() {
			addrs = append(addrs, a)
		}
	}
	if !slices.ContainsFunc(addrs, func(a Addr) bool {
		return a.Prefix == mustPrefix("192.0.2.2/24") && a.Broadcast == mustAddr("192.0.2.255")
	}) {
		t.Errorf("address dump: %+v, want 192.0.2.2/24 with broadcast 192.0.2.255", addrs)
	}

	var keys []string
	for _, name := range []string{"kernel-routedump-0", "kernel-routedump-2"} {
		for _, m := range mustMessages(t, readCorpus(t, name)) {
			rs, ok, err := parseRoutes(m.Data)
			if err != nil || !ok {
				t.Fatalf("%s: %v, %v", name, ok, err)
			}
			for _, r := range rs {
				keys = append(keys, routeKey(r))
			}
		}
	}
	for _, want := range []Route{
		{Dst: mustPrefix("10.7.0.0/16"), Table: 254, Type: RouteUnicast, Protocol: 3, Index: cap0Index(cap0), Gateway: mustAddr("192.0.2.3")},
		{Dst: mustPrefix("10.7.0.0/16"), Table: 254, Type: RouteUnicast, Protocol: 3, Index: cap0Index(cap0), Gateway: mustAddr("192.0.2.4")},
		{Dst: mustPrefix("10.5.0.0/16"), Table: 1000, Type: RouteUnicast, Protocol: 3, Index: cap0Index(cap0), Gateway: mustAddr("192.0.2.1")},
		{Dst: mustPrefix("192.0.2.255/32"), Table: 255, Type: RouteBroadcast, Protocol: 2, Scope: 253, Index: cap0Index(cap0)},
	} {
		if !slices.Contains(keys, routeKey(want)) {
			t.Errorf("route dump lacks %s; has\n%s", routeKey(want), strings.Join(keys, "\n"))
		}
	}

	// The last notification is the deletion, with the device's last state.
	evs, err := parseLinkEvents(readCorpus(t, "kernel-linkevent-6"))
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if !last.Deleted || last.Link.Name != "cap0" || last.Link.Tun == nil || *last.Link.Tun != wantTun {
		t.Errorf("last event: %+v (Tun %+v), want cap0 deleted with %+v", last, tunOf(&last.Link), wantTun)
	}
}

func mustMessages(t *testing.T, b []byte) []message {
	t.Helper()
	ms, err := parseMessages(b)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func tunOf(l *Link) any {
	if l == nil || l.Tun == nil {
		return nil
	}
	return *l.Tun
}

func cap0Index(l *Link) int {
	if l == nil {
		return -1
	}
	return l.Index
}
