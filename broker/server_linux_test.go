package broker_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
)

func jsonEnv(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return name + "=" + string(b)
}

// A member (supplementary group) gets a working device: the server brings
// it up with the address, the child reflects ICMPv6 echo requests through
// its descriptor, and ping -6 from the namespace gets every answer. The
// device disappears when the child exits.
func TestMemberGetsWorkingDevice(t *testing.T) {
	ping := needPing(t)
	ts := startServer(t, nil)
	req := broker.Request{Addr: pfx("fd5e:7a11::1/64"), Peer: ip("fd5e:7a11::2"), MTU: 1400, Name: "tun%d"}
	c := ts.startChild(t, asMember, "reflect", jsonEnv(t, "TUNDRA_REQUEST", req))
	r := c.next(t)
	if r.Err != "" || !strings.HasPrefix(r.Name, "tun") || r.Index <= 0 || r.Fds != 1 {
		t.Fatalf("member's request: %+v", r)
	}

	l, err := ts.ns.LinkByName(r.Name)
	if err != nil {
		t.Fatal(err)
	}
	if l.Index != r.Index || l.MTU != 1400 || !l.HasFlag("UP") {
		t.Errorf("link %+v, want index %d, MTU 1400, UP", l, r.Index)
	}
	if a := ts.addr(t, r.Name, "fd5e:7a11::1"); a.PrefixLen != 64 || a.Address != "fd5e:7a11::2" || !a.NoDAD || a.Tentative {
		t.Errorf("address %+v: want /64, peer fd5e:7a11::2, nodad, not tentative", a)
	}
	ts.pingThrough(t, ping, "fd5e:7a11::2")

	a := ts.log.waitAudits(t, 1)[0]
	want := map[string]string{"uid": fmt.Sprint(memberUID), "gid": fmt.Sprint(memberUID), "groups": fmt.Sprintf("[%d]", tundraGID),
		"result": "created", "status": "ok", "device": r.Name, "index": fmt.Sprint(r.Index), "queues": "1",
		"request": "tun fd5e:7a11::1/64 peer fd5e:7a11::2 mtu 1400 name tun%d queues 1"}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("audit %s = %q, want %q (record %v)", k, a[k], v, a)
		}
	}
	if a["pid"] != fmt.Sprint(c.cmd.Process.Pid) {
		t.Errorf("audit pid = %s, want the child's %d", a["pid"], c.cmd.Process.Pid)
	}

	if err := c.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ts.waitLinks(t)
}

// The device lives exactly as long as the client's descriptor: closing it
// removes the device while the client still runs, and so does the
// client's exit. The primary group counts as membership.
func TestDeviceLifetime(t *testing.T) {
	ts := startServer(t, nil)

	c := ts.startChild(t, asPrimary, "close", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:1::1/64")}))
	r := c.next(t)
	if r.Err != "" {
		t.Fatalf("primary-group member refused: %+v", r)
	}
	if ev := c.next(t); ev.Event != "closed" {
		t.Fatalf("helper said %+v", ev)
	}
	ts.waitLinks(t) // gone, though the child is still running
	if err := c.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the child is not running: %v", err)
	}
	c.stop(10 * time.Second)

	c = ts.startChild(t, asPrimary, "create", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:2::1/64"), Name: "tapx", TAP: true}))
	r = c.next(t)
	if r.Name != "tapx" {
		t.Fatalf("TAP request: %+v", r)
	}
	l, err := ts.ns.LinkByName("tapx")
	if err != nil || l.LinkType != "ether" || !l.HasFlag("UP") {
		t.Fatalf("tapx: %+v, %v", l, err)
	}
	c.stop(10 * time.Second)
	ts.waitLinks(t)

	c = ts.startChild(t, asPrimary, "exit", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:3::1/64"), Queues: 3}))
	r = c.next(t)
	if r.Err != "" || r.Fds != 3 {
		t.Fatalf("three-queue request: %+v", r)
	}
	if err := c.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ts.waitLinks(t)
}

// Only root and members are served. A non-member and a process whose gid
// and groups are all wrong are refused with a message that says why, as
// a permission error; root is served, and is not bound by the policy.
func TestAuthorization(t *testing.T) {
	ts := startServer(t, nil)
	req := jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:1::1/64")})
	for _, who := range []cred{asOutsider, asWrongGID} {
		c := ts.startChild(t, who, "create", req)
		r := c.next(t)
		want := fmt.Sprintf("uid %d is neither root nor a member of group %d (gid %d): its gid is %d and its supplementary groups are %v",
			who.uid, tundraGID, tundraGID, who.gid, who.groups)
		if r.Status != "unauthorized" || r.Message != want || !r.Perm || r.Op != "create" {
			t.Errorf("uid %d: got %+v, want unauthorized with %q", who.uid, r, want)
		}
		c.stop(10 * time.Second)
	}
	audits := ts.log.waitAudits(t, 2)
	for i, who := range []cred{asOutsider, asWrongGID} {
		a := audits[i]
		if a["uid"] != fmt.Sprint(who.uid) || a["result"] != "refused" || a["status"] != "unauthorized" || !strings.Contains(a["reason"], "neither root nor a member") {
			t.Errorf("audit of uid %d: %v", who.uid, a)
		}
		if _, ok := a["request"]; ok {
			t.Errorf("an unauthorized request was parsed: %v", a)
		}
	}
	if got := ts.links(t); len(got) != 0 {
		t.Errorf("devices after refusals: %v", got)
	}

	// A member whose group is the 41st of its supplementary groups: the
	// server's first SO_PEERGROUPS buffer holds 32, so it must grow it.
	many := cred{uid: 4251, gid: 4251}
	for g := uint32(5000); g < 5040; g++ {
		many.groups = append(many.groups, g)
	}
	c := ts.startChild(t, cred{many.uid, many.gid, append(many.groups, tundraGID)}, "exit", req)
	if r := c.next(t); r.Err != "" {
		t.Errorf("member with 41 groups: %+v", r)
	}
	c.stop(10 * time.Second)
	c = ts.startChild(t, many, "create", req)
	if r := c.next(t); r.Status != "unauthorized" || !strings.HasSuffix(r.Message, "[5000 5001 5002 5003 5004 5005 5006 5007 5008 5009 5010 5011 5012 5013 5014 5015... (40 in all)]") {
		t.Errorf("non-member with 40 groups: %+v", r)
	}
	c.stop(10 * time.Second)
	ts.waitLinks(t)

	// Root, outside the member policy (an RFC 1918 prefix).
	rc := broker.Client{Path: ts.path}
	cr, err := rc.Create(context.Background(), broker.Request{Addr: pfx("10.77.0.1/24"), Name: "root0"})
	if err != nil {
		t.Fatalf("root refused: %v", err)
	}
	if cr.Name != "root0" || len(cr.Fds) != 1 {
		t.Errorf("root got %+v", cr)
	}
	cr.Close()
	ts.waitLinks(t)
}

// With the production mode (0660, group tundra) the socket file itself
// keeps non-members out, and says so; it never appears with another mode.
func TestSocketPermissions(t *testing.T) {
	ts := startServer(t, func(c *broker.Config) { c.SocketMode = 0 })
	fi, err := os.Lstat(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != os.ModeSocket|0o660 || st.Uid != 0 || st.Gid != tundraGID {
		t.Fatalf("socket is %v %d:%d, want srw-rw---- 0:%d", fi.Mode(), st.Uid, st.Gid, tundraGID)
	}
	entries, _ := os.ReadDir(ts.dir)
	if len(entries) != 1 {
		t.Errorf("socket directory holds %v, want only the socket", entries)
	}

	c := ts.startChild(t, asOutsider, "create", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:1::1/64")}))
	r := c.next(t)
	if r.Op != "dial" || !r.Perm || !strings.Contains(r.Err, "permission denied") || !strings.Contains(r.Err, fmt.Sprintf("group %d", tundraGID)) ||
		!strings.Contains(r.Err, fmt.Sprintf("uid %d must be a member", outsiderUID)) {
		t.Errorf("outsider: %+v", r)
	}
	c = ts.startChild(t, asMember, "exit", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:1::1/64")}))
	if r := c.next(t); r.Err != "" {
		t.Errorf("member: %+v", r)
	}
	c.stop(10 * time.Second)
	ts.waitLinks(t)
}

// Listen must never expose the socket with a wider mode or another group,
// even for an instant. inotify on the directory shows how the name came to
// be: it must appear by a rename (IN_MOVED_TO) of a socket already set up
// elsewhere, never be created (IN_CREATE) or have its mode or owner
// changed (IN_ATTRIB) in place.
func TestListenHasNoWindow(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	dir := testDir(t)
	path := filepath.Join(dir, "s.sock")
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ino)
	if _, err := unix.InotifyAddWatch(ino, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	srv, err := broker.NewServer(broker.Config{Create: tundra.BrokerCreate, Group: fmt.Sprint(tundraGID), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Listen(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != os.ModeSocket|0o660 || st.Gid != tundraGID {
		t.Errorf("socket is %v gid %d", fi.Mode(), st.Gid)
	}
	if _, err := srv.Listen(path); err == nil || !strings.Contains(err.Error(), "another server is accepting") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	srv.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}

	buf := make([]byte, 64*1024)
	n, err := unix.Read(ino, buf)
	if err != nil {
		t.Fatalf("reading inotify events: %v", err)
	}
	var events []string
	movedIn := 0
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
		name := strings.TrimRight(string(nameBytes), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		events = append(events, fmt.Sprintf("%s %#x", name, ev.Mask))
		if name != "s.sock" {
			if !strings.HasPrefix(name, ".tundra-sock-") || ev.Mask&unix.IN_ISDIR == 0 {
				t.Errorf("unexpected event on %q (mask %#x)", name, ev.Mask)
			}
			continue
		}
		if ev.Mask&^unix.IN_MOVED_TO != 0 {
			t.Errorf("the socket's name saw mask %#x: it was created or changed in place", ev.Mask)
			continue
		}
		movedIn++
	}
	if movedIn != 1 {
		t.Errorf("the socket was renamed into place %d times; events: %v", movedIn, events)
	}
	t.Logf("inotify events: %v", events)

	// A stale socket is replaced; a regular file is not.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	srv, err = broker.NewServer(broker.Config{Create: tundra.BrokerCreate, Group: fmt.Sprint(tundraGID), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Listen(path); err != nil {
		t.Errorf("Listen over a stale socket: %v", err)
	}
	srv.Close()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err = broker.NewServer(broker.Config{Create: tundra.BrokerCreate, Group: fmt.Sprint(tundraGID), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Listen(path); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	srv.Close()
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the regular file was touched: %v, %v", fi, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".tundra-sock-*"))
	if len(leftovers) != 0 {
		t.Errorf("private directories left behind: %v", leftovers)
	}
}

// Every forbidden request is refused with its reason and leaves no device.
func TestPolicyRefusals(t *testing.T) {
	ts := startServer(t, func(c *broker.Config) { c.Policy.MaxDevicesPerUID = 2 })
	// Another interface with a ULA prefix the members must not claim.
	// (A persistent TUN device: this kernel has no dummy driver.)
	t.Cleanup(func() { ts.ns.Output("ip", "link", "del", "dummy0") })
	for _, args := range [][]string{
		{"tuntap", "add", "dev", "dummy0", "mode", "tun"},
		{"addr", "add", "fd00:aaaa::1/64", "dev", "dummy0", "nodad"},
		{"link", "set", "dummy0", "up"},
	} {
		if out, err := ts.ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	cases := []struct {
		what   string
		req    broker.Request
		status string
		reason string
	}{
		{"foreign prefix", broker.Request{Addr: pfx("2001:db8::1/64")}, "denied by policy",
			"address: 2001:db8::1/64 is not inside an allowed prefix (fc00::/7, fe80::/10)"},
		{"private IPv4", broker.Request{Addr: pfx("192.168.7.1/24")}, "denied by policy", "192.168.7.1/24 is not inside an allowed prefix"},
		{"the metadata range", broker.Request{Addr: pfx("169.254.169.1/24")}, "denied by policy",
			"address: 169.254.169.1/24 is not inside an allowed prefix (fc00::/7, fe80::/10)"},
		{"half of fc00::/7", broker.Request{Addr: pfx("fd00::1/8")}, "denied by policy",
			"address: prefix length /8 of fd00::1/8 is outside the allowed /48../128 for IPv6"},
		{"another interface's prefix", broker.Request{Addr: pfx("fd00:aaaa::2/64")}, "denied by policy",
			"address: fd00:aaaa::2/64 overlaps fd00:aaaa::1/64 of interface dummy0"},
		{"a prefix containing it", broker.Request{Addr: pfx("fd00:aaaa::1/48")}, "denied by policy", "overlaps fd00:aaaa::1/64 of interface dummy0"},
		{"a peer on it", broker.Request{Addr: pfx("fd00:1::1/128"), Peer: ip("fd00:aaaa::9")}, "denied by policy",
			"peer: fd00:aaaa::9 is inside fd00:aaaa::1/64 of interface dummy0"},
		{"loopback", broker.Request{Addr: pfx("::1/128")}, "denied by policy", "not inside an allowed prefix"},
		{"bad name", broker.Request{Addr: pfx("fd00:1::1/64"), Name: "eth0"}, "denied by policy",
			"name: eth0 matches none of the allowed patterns (tun*, tap*)"},
		{"MTU too high", broker.Request{Addr: pfx("fd00:1::1/64"), MTU: 9001}, "denied by policy", "mtu: 9001 is outside the allowed 1280..9000"},
		{"MTU too low", broker.Request{Addr: pfx("169.254.3.1/24"), MTU: 576}, "denied by policy", "mtu: 576 is outside the allowed 1280..9000"},
		{"too many queues", broker.Request{Addr: pfx("fd00:1::1/64"), Queues: 9}, "denied by policy", "queues: 9 exceeds the limit of 8"},
	}
	var reqs []broker.Request
	for _, tc := range cases {
		reqs = append(reqs, tc.req)
	}
	// Then the quota: two devices are allowed, the third is not.
	reqs = append(reqs,
		broker.Request{Addr: pfx("fd00:1::1/64")},
		broker.Request{Addr: pfx("fd00:2::1/64")},
		broker.Request{Addr: pfx("fd00:3::1/64")})
	c := ts.startChild(t, asMember, "batch", jsonEnv(t, "TUNDRA_BATCH", reqs))
	for _, tc := range cases {
		r := c.next(t)
		if r.Status != tc.status || !strings.Contains(r.Message, tc.reason) || !r.Perm {
			t.Errorf("%s: got %+v, want %s with %q", tc.what, r, tc.status, tc.reason)
		}
	}
	var held []string
	for i := 0; i < 2; i++ {
		r := c.next(t)
		if r.Err != "" {
			t.Fatalf("allowed request %d refused: %+v", i, r)
		}
		held = append(held, r.Name)
	}
	r := c.next(t)
	if wantMsg := fmt.Sprintf("devices: uid %d holds 2 devices (%s), the limit is 2", memberUID, strings.Join(held, ", ")); r.Status != "denied by policy" || r.Message != wantMsg {
		t.Errorf("third device: got %+v, want %q", r, wantMsg)
	}
	ts.waitLinks(t, append(held, "dummy0")...)

	// The audit says why each was refused.
	audits := ts.log.waitAudits(t, len(reqs))
	// (Records are written as connections finish, so their order may
	// differ from the requests'.)
	for _, tc := range cases {
		found := false
		for _, a := range audits {
			if a["result"] == "refused" && a["status"] == "denied by policy" && strings.Contains(a["reason"], tc.reason) &&
				a["uid"] == fmt.Sprint(memberUID) && a["request"] == tc.req.String() {
				found = true
			}
		}
		if !found {
			t.Errorf("no audit record of %s (%s): %v", tc.what, tc.req, audits)
		}
	}
	c.stop(10 * time.Second)
	ts.waitLinks(t, "dummy0")

	// Once the devices are gone the quota is free again.
	c = ts.startChild(t, asMember, "exit", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:4::1/64")}))
	if r := c.next(t); r.Err != "" {
		t.Errorf("after the devices were closed: %+v", r)
	}
	c.stop(10 * time.Second)
	ts.waitLinks(t, "dummy0")

	// A default route never reaches the server through the Client, which
	// validates first; sent raw, the server refuses it too.
	c = ts.startChild(t, asMember, "create", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00::1/0")}))
	if r := c.next(t); r.Op != "validate" || !strings.Contains(r.Err, "prefix length /0") {
		t.Errorf("client-side /0: %+v", r)
	}
	c.stop(10 * time.Second)
	raw := frame(1, 1, attr(1, append(pfx("fd00::1/128").Addr().AsSlice(), 0)))
	c = ts.startChild(t, asMember, "raw", "TUNDRA_RAW="+hex.EncodeToString(raw))
	if r := c.next(t); r.Status != "bad request" || !strings.Contains(r.Message, "address: prefix length /0 would route every address through the device") {
		t.Errorf("raw /0: %+v", r)
	}
	c.stop(10 * time.Second)
	// Names with control characters or non-ASCII bytes, which ip(8) would
	// print raw, are refused by the server too (the Client refuses them
	// before sending).
	for _, name := range []string{"tun\x1b]0;PWN\x07", "tun\xff\xfe"} {
		raw = frame(1, 1, attr(1, append(pfx("fd00:1::1/128").Addr().AsSlice(), 64)), attr(4, []byte(name)))
		c = ts.startChild(t, asMember, "raw", "TUNDRA_RAW="+hex.EncodeToString(raw))
		if r := c.next(t); r.Status != "bad request" || !strings.Contains(r.Message, "byte 0x") || !strings.Contains(r.Message, "at offset 3 is not allowed") {
			t.Errorf("raw name %q: %+v", name, r)
		}
		c.stop(10 * time.Second)
	}
	ts.waitLinks(t, "dummy0")
}

// frame builds a frame by hand: magic, version, type, reserved, length.
func frame(version, typ byte, body ...[]byte) []byte {
	b := []byte{'T', 'N', 'D', 'R', version, typ, 0, 0, 0, 0, 0, 0}
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	return b
}

func attr(typ uint16, v []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// Too many connections overall are answered with StatusBusy at once.
func TestConnectionLimit(t *testing.T) {
	ts := startServer(t, func(c *broker.Config) { c.MaxConns = 2; c.Timeout = 10 * time.Second })
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("unix", ts.path)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// The two idle connections are admitted before the third is looked
	// at: accept is sequential.
	c := broker.Client{Path: ts.path}
	_, err := c.Create(context.Background(), broker.Request{Addr: pfx("fd00:1::1/64")})
	var be *broker.Error
	if !errors.As(err, &be) || be.Status != broker.StatusBusy || be.Message != "server is handling its limit of 2 connections; retry later" {
		t.Fatalf("third connection: %v", err)
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	ts.log.waitAudits(t, 3)
	ts.rootCreate(t, "fd00:2::1/64")
}

// The abuse battery. Each attack is followed by a legitimate client that
// must be served; at the end the server holds exactly the descriptors it
// held before and no device is left.
func TestAbuse(t *testing.T) {
	ts := startServer(t, func(c *broker.Config) {
		c.MaxConnsPerUID = 4
		c.RefusalWindow = -1 // one audit record per connection, to count them (TestRefusalFloodSummarised covers the summaries)
		// Long enough that the flood's four admitted connections are
		// not dropped, freeing their slots, before the server has
		// refused the other 996, also under load and -race.
		c.Timeout = 5 * time.Second
	})
	ts.rootCreate(t, "fd00:1::1/64") // warm up: the first use opens the netpoller
	base := len(ts.log.audits())
	fdsBefore := leakcheck.FDs(t)
	t.Logf("server process descriptors before: %d", len(fdsBefore))
	expectAudits := base

	send := func(t *testing.T, b []byte) result {
		t.Helper()
		return rawExchange(ts.path, b, nil)
	}
	check := func(t *testing.T, r result, status, msg string) {
		t.Helper()
		if r.Status != status || !strings.Contains(r.Message, msg) {
			t.Errorf("got %+v, want %q with %q", r, status, msg)
		}
	}
	legit := func(t *testing.T) {
		t.Helper()
		ts.rootCreate(t, "fd00:9::1/64")
		expectAudits++
	}

	t.Run("garbage", func(t *testing.T) {
		check(t, send(t, []byte("GET / HTTP/1.1\r\nHost: tundra\r\n\r\n")), "bad request", "bad magic 47 45 54 20")
		expectAudits++
		legit(t)
	})
	t.Run("length over the cap", func(t *testing.T) {
		b := frame(1, 1)
		binary.BigEndian.PutUint32(b[8:], 0xfffffff0)
		check(t, send(t, b), "bad request", "body length 4294967280 exceeds the cap of 1012 bytes")
		expectAudits++
		legit(t)
	})
	t.Run("other version", func(t *testing.T) {
		check(t, send(t, frame(7, 1)), "unsupported protocol version", "protocol version 7 is not supported; this server speaks version 1")
		expectAudits++
		legit(t)
	})
	t.Run("unknown attribute", func(t *testing.T) {
		check(t, send(t, frame(1, 1, attr(1, append(pfx("fd00::1/128").Addr().AsSlice(), 64)), attr(77, nil))), "bad request", "unknown request attribute 77")
		expectAudits++
		legit(t)
	})
	t.Run("truncated frame", func(t *testing.T) {
		full := frame(1, 1, attr(1, append(pfx("fd00::1/128").Addr().AsSlice(), 64)))
		for _, cut := range []int{5, 12, 20} {
			conn, err := net.Dial("unix", ts.path)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(full[:cut])
			conn.(*net.UnixConn).CloseWrite()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			r := readStatus(conn.(*net.UnixConn), "")
			conn.Close()
			want := fmt.Sprintf("truncated frame: the client closed after %d of 12 header bytes", cut)
			if cut >= 12 {
				want = fmt.Sprintf("truncated frame: the client closed after %d of 21 body bytes", cut-12)
			}
			check(t, r, "bad request", want)
			expectAudits++
		}
		legit(t)
	})
	t.Run("slow client", func(t *testing.T) {
		conn, err := net.Dial("unix", ts.path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		conn.Write([]byte("TNDR\x01")) // half a header, then silence
		legit(t)                       // served while the slow one waits
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		r := readStatus(conn.(*net.UnixConn), "")
		check(t, r, "bad request", "no complete request within 5s (read 5 of 12 header bytes)")
		t.Logf("slow client dropped after %v", time.Since(start).Round(10*time.Millisecond))
		expectAudits++
	})
	t.Run("a thousand connections", func(t *testing.T) {
		const n = 1000
		c := ts.startChild(t, asFlooder, "flood", fmt.Sprintf("TUNDRA_FLOOD=%d", n))
		open := c.next(t)
		if open.Event != "open" || len(open.Counts) != 0 {
			t.Fatalf("flood: %+v", open)
		}
		legit(t) // while the thousand are open
		answers := c.next(t)
		t.Logf("answers to %d connections from one uid: %v", n, answers.Counts)
		if answers.Counts["busy"] != n-4 || answers.Counts["dropped after the timeout"] != 4 {
			t.Errorf("flood answers %v, want %d busy and 4 dropped after the timeout", answers.Counts, n-4)
		}
		c.stop(10 * time.Second)
		expectAudits += n
		legit(t)
	})
	t.Run("client closes mid-response", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			conn, err := net.Dial("unix", ts.path)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(frame(1, 1, attr(1, append(pfx(fmt.Sprintf("fd00:%x::1/64", 0x100+i)).Addr().AsSlice(), 64))))
			conn.Close()
			expectAudits++
			a := ts.log.waitAudits(t, expectAudits)
			last := a[len(a)-1]
			t.Logf("closed mid-response: server %s: %s", last["result"], last["reason"])
			if last["result"] != "failed" && last["result"] != "created" {
				t.Errorf("audit %v", last)
			}
			ts.waitLinks(t)
		}
		legit(t)
	})
	t.Run("client sends descriptors", func(t *testing.T) {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		r := rawExchange(ts.path, frame(1, 1, attr(1, append(pfx("fd00:5::1/64").Addr().AsSlice(), 64))), []int{p[1], int(devnull.Fd())})
		check(t, r, "bad request", "the client sent file descriptors, which the server does not accept")
		expectAudits++
		// If the server had kept the write end, this read would block.
		unix.Close(p[1])
		rf := os.NewFile(uintptr(p[0]), "pipe")
		defer rf.Close()
		done := make(chan error, 1)
		go func() { _, err := rf.Read(make([]byte, 1)); done <- err }()
		select {
		case err := <-done:
			if err != io.EOF {
				t.Errorf("reading the pipe: %v, want EOF", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the pipe's write end is still open somewhere: the server kept a descriptor")
			unix.Close(p[0])
		}
		legit(t)
	})

	ts.log.waitAudits(t, expectAudits)
	deadline := time.Now().Add(10 * time.Second)
	for len(leakcheck.FDs(t)) != len(fdsBefore) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	after := leakcheck.FDs(t)
	t.Logf("server process descriptors after: %d", len(after))
	leakcheck.NoNewFDs(t, fdsBefore)
	if len(after) != len(fdsBefore) {
		t.Errorf("descriptors: %d before, %d after", len(fdsBefore), len(after))
	}
	ts.waitLinks(t)
}

// Root's view of the Client: descriptors are close-on-exec and
// non-blocking, a name in use fails with the kernel's EBUSY (and leaves
// the existing device alone), and tun.AdoptQueues turns them into a ready
// *tun.Device.
func TestRootClient(t *testing.T) {
	ts := startServer(t, nil)
	c := broker.Client{Path: ts.path}
	ctx := context.Background()
	cr, err := c.Create(ctx, broker.Request{Addr: pfx("fd00:1::1/64"), Name: "root0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	fd := cr.Fds[0]
	fdFlags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	flFlags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if fd < 3 || fdFlags&unix.FD_CLOEXEC == 0 || flFlags&unix.O_NONBLOCK == 0 {
		t.Errorf("fd %d: FD flags %#x, file flags %#x; want >= 3, close-on-exec, non-blocking", fd, fdFlags, flFlags)
	}

	_, err = c.Create(ctx, broker.Request{Addr: pfx("fd00:2::1/64"), Name: "root0"})
	var be *broker.Error
	if !errors.As(err, &be) || be.Status != broker.StatusFailed || !errors.Is(err, unix.EBUSY) || !strings.Contains(be.Message, "root0") {
		t.Errorf("name in use: %v", err)
	}
	ts.waitLinks(t, "root0")
	if addrs, err := ts.ns.Addrs("root0"); err != nil || len(addrs) == 0 || addrs[0].Local != "fd00:1::1" {
		t.Errorf("the existing device was changed: %+v, %v", addrs, err)
	}

	cr1, err := c.Create(ctx, broker.Request{Addr: pfx("169.254.9.1/24"), Peer: ip("169.254.9.2"), MTU: 576, Name: "root1", PacketInfo: true})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := tun.AdoptQueues(cr1.Fds)
	if err != nil {
		cr1.Close()
		t.Fatal(err)
	}
	if dev.Name() != "root1" {
		t.Errorf("AdoptQueues returned %s", dev.Name())
	}
	l, err := ts.ns.LinkByName("root1")
	if err != nil || l.MTU != 576 || !l.HasFlag("UP") {
		t.Errorf("root1: %+v, %v", l, err)
	}
	dev.Close()
	cr.Close()
	ts.waitLinks(t)
}

// Shutdown waits for connections in progress, and when its context ends
// first it closes them; the socket is gone at once either way.
func TestShutdownClosesStragglers(t *testing.T) {
	ts := startServer(t, func(c *broker.Config) { c.Timeout = time.Minute; c.MaxConns = 1 })
	conn, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("TNDR")) // and nothing more
	// Accept is sequential: a second client refused as over the limit of
	// one proves the straggler was admitted.
	c := broker.Client{Path: ts.path}
	var be *broker.Error
	if _, err := c.Create(context.Background(), broker.Request{Addr: pfx("fd00:1::1/64")}); !errors.As(err, &be) || be.Status != broker.StatusBusy {
		t.Fatalf("second client: %v, want busy", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = ts.srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if _, err := os.Lstat(ts.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there: %v", err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 64)); err != io.EOF {
		t.Errorf("the straggler's connection: %v, want EOF", err)
	}
	a := ts.log.waitRecord(t, func(a map[string]string) bool { return a["msg"] == "audit" && a["result"] != "refused" })
	if a["result"] != "dropped" || a["reason"] != "the server closed the connection while shutting down (read 4 of 12 header bytes)" {
		t.Errorf("audit: %v", a)
	}
	if _, err := net.Dial("unix", ts.path); err == nil {
		t.Error("dial after Shutdown succeeded")
	}
}
