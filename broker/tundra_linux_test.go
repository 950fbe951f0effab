package broker_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/tun"
)

// Tundra's client protocol, end to end: a client written here from the
// layout (what the Elixir library's NIF does: one send of the 160-byte
// request, one recvmsg of the 32-byte response with room for exactly one
// descriptor) runs as another uid over the real socket.

// The helper modes of this file, run by startChild like helperMain's. They
// are dispatched here, before TestMain, so that helperMain stays as it is.
//
//	tundra-client   send TUNDRA_RAW (hex) in one write (then shut down
//	                writing if TUNDRA_HALFCLOSE is set), read the answer up
//	                to the end of the connection, print a tundraResult,
//	                hold any descriptor until stdin closes
//	tundra-reflect  the same, then answer ICMPv6 echo requests read from
//	                the descriptor (behind a PI header) until stdin closes
func init() {
	if mode := os.Getenv(helperEnv); strings.HasPrefix(mode, "tundra-") {
		os.Exit(tundraHelperMain(mode))
	}
}

// tundraResult is what a tundra-* helper prints.
type tundraResult struct {
	First      int    // bytes of the first recvmsg (of at most 32)
	FirstFds   int    // descriptors it carried
	CmsgOK     bool   // ... in one SCM_RIGHTS message of CMSG_LEN(sizeof(int))
	Type       int32  // response type
	Size       uint64 // response size field
	Name       string // response name
	Bytes      string // hex of everything received
	LaterFds   int    // descriptors received after the first recvmsg
	WriteErr   string // the request's write failed (the server closed first)
	End        string // how the connection ended: EOF, ECONNRESET, or the error
	Inspect    string // tun.Inspect of the descriptor: "name flags" or the error
	Event      string `json:",omitempty"` // for non-result lines
	SetupError string `json:",omitempty"`
}

func tundraHelperMain(mode string) int {
	out := json.NewEncoder(os.Stdout)
	raw, err := hex.DecodeString(os.Getenv("TUNDRA_RAW"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "TUNDRA_RAW:", err)
		return 2
	}
	res, fds := tundraExchange(os.Getenv("TUNDRA_SOCKET"), raw, os.Getenv("TUNDRA_HALFCLOSE") != "")
	out.Encode(res)
	if mode == "tundra-reflect" && len(fds) == 1 {
		go reflectEcho(fds[0], true, func() { out.Encode(tundraResult{Event: "echo request behind a PI header"}) })
	}
	io.Copy(io.Discard, os.Stdin)
	for _, fd := range fds {
		unix.Close(fd)
	}
	return 0
}

// tundraExchange is the client: it returns what it saw and every
// descriptor it received.
func tundraExchange(path string, req []byte, halfClose bool) (tundraResult, []int) {
	var r tundraResult
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return tundraResult{SetupError: err.Error()}, nil
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := uc.Write(req); err != nil {
		// The server may refuse (and close) before reading everything.
		r.WriteErr = err.Error()
	}
	if halfClose {
		uc.CloseWrite()
	}
	var fds []int
	collect := func(oob []byte) (n int, oneRights bool) {
		msgs, err := unix.ParseSocketControlMessage(oob)
		if err != nil {
			return 0, false
		}
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
				n += len(got)
			}
		}
		return n, len(msgs) == 1 && msgs[0].Header.Level == unix.SOL_SOCKET && msgs[0].Header.Type == unix.SCM_RIGHTS &&
			msgs[0].Header.Len == uint64(unix.CmsgLen(4))
	}
	var all []byte
	ended := func(err error) string {
		switch {
		case err == nil:
			return ""
		case errors.Is(err, io.EOF):
			return "EOF"
		case errors.Is(err, unix.ECONNRESET):
			return "ECONNRESET"
		}
		return err.Error()
	}
	// Like the NIF: one recvmsg of sizeof(struct response_t) with room
	// for one descriptor.
	first := make([]byte, 32)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := uc.ReadMsgUnix(first, oob)
	n, oobn = max(n, 0), max(oobn, 0) // the syscall's -1 on error passes through
	r.First = n
	r.FirstFds, r.CmsgOK = collect(oob[:oobn])
	all = append(all, first[:n]...)
	if err == nil && n == 0 {
		err = io.EOF
	}
	if err == nil {
		// Whatever else comes, up to the end of the connection.
		buf := make([]byte, 4096)
		big := make([]byte, unix.CmsgSpace(4*16))
		for {
			n, oobn, _, _, err = uc.ReadMsgUnix(buf, big)
			n, oobn = max(n, 0), max(oobn, 0)
			all = append(all, buf[:n]...)
			later, _ := collect(big[:oobn])
			r.LaterFds += later
			if err == nil && n == 0 {
				err = io.EOF
			}
			if err != nil {
				break
			}
		}
	}
	r.End = ended(err)
	r.Bytes = hex.EncodeToString(all)
	if len(all) >= 32 {
		r.Type = int32(binary.NativeEndian.Uint32(all[0:]))
		r.Size = binary.NativeEndian.Uint64(all[8:])
		name := all[16:32]
		if i := strings.IndexByte(string(name), 0); i >= 0 {
			r.Name = string(name[:i])
		} else {
			r.Name = "(no NUL) " + string(name)
		}
	}
	if len(fds) == 1 {
		name, flags, err := tun.Inspect(fds[0])
		if err != nil {
			r.Inspect = err.Error()
		} else {
			r.Inspect = name + " " + flags.String()
		}
	}
	return r, fds
}

// nextTundra returns a tundra-* helper's next line.
func (c *child) nextTundra(t testing.TB) tundraResult {
	t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			// c.done is left for stop, which reports the exit status
			// and the helper's standard error.
			t.Fatal("helper exited without output")
		}
		var r tundraResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("helper printed %q: %v", line, err)
		}
		if r.SetupError != "" {
			t.Fatalf("helper: %s", r.SetupError)
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the helper")
	}
	return tundraResult{}
}

func tundraRaw(b []byte) string { return "TUNDRA_RAW=" + hex.EncodeToString(b) }

// A member using Tundra's protocol gets exactly one descriptor with the
// 32-byte response in one recvmsg, for a TUN device configured as asked
// (address, prefix length from the netmask, peer, MTU, up) with the PI
// header Tundra's clients expect; ping reaches the peer through it. The
// device goes with the client.
func TestTundraClientGetsWorkingDevice(t *testing.T) {
	ping := needPing(t)
	ts := startServer(t, nil)
	req := broker.TundraRequestForTest(152, "fd5e:7a11::1", "fd5e:7a11::2", "ffff:ffff:ffff:ffff::", 1400)
	c := ts.startChild(t, asMember, "tundra-reflect", tundraRaw(req))
	r := c.nextTundra(t)
	t.Logf("client saw %+v", r)
	if r.First != 32 || r.FirstFds != 1 || !r.CmsgOK || r.LaterFds != 0 || len(r.Bytes) != 64 || r.End != "EOF" {
		t.Fatalf("want 32 bytes and exactly one descriptor in one SCM_RIGHTS message in the first recvmsg, nothing else, then EOF; got %+v", r)
	}
	if r.Type != 0 || r.Size != 24 || !strings.HasPrefix(r.Name, "tun") {
		t.Fatalf("response type %d size %d name %q, want 0, 24, tunN", r.Type, r.Size, r.Name)
	}
	// TUNGETIFF cannot tell PI from NO_PI (the NOFILTER alias); the
	// reflector below shows the header.
	if !strings.HasPrefix(r.Inspect, r.Name+" TUN") || strings.Contains(r.Inspect, "TAP") || strings.Contains(r.Inspect, "MULTI_QUEUE") {
		t.Errorf("tun.Inspect of the descriptor: %q, want %s, TUN, one queue", r.Inspect, r.Name)
	}

	l, err := ts.ns.LinkByName(r.Name)
	if err != nil {
		t.Fatal(err)
	}
	if l.MTU != 1400 || !l.HasFlag("UP") {
		t.Errorf("link %+v, want MTU 1400, UP", l)
	}
	if a := ts.addr(t, r.Name, "fd5e:7a11::1"); a.PrefixLen != 64 || a.Address != "fd5e:7a11::2" {
		t.Errorf("address %+v: want /64 (from the netmask), peer fd5e:7a11::2", a)
	}
	ts.pingThrough(t, ping, "fd5e:7a11::2")
	if ev := c.nextTundra(t); ev.Event != "echo request behind a PI header" {
		t.Errorf("reflector said %+v", ev)
	}

	a := ts.log.waitAudits(t, 1)[0]
	want := map[string]string{"uid": fmt.Sprint(memberUID), "proto": "tundra", "result": "created", "status": "ok",
		"device": r.Name, "queues": "1", "request": "tun fd5e:7a11::1/64 peer fd5e:7a11::2 mtu 1400 queues 1 pi"}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("audit %s = %q, want %q (record %v)", k, a[k], v, a)
		}
	}
	if err := c.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ts.waitLinks(t)

	// No dstaddr, no MTU: no peer, the kernel's MTU.
	req = broker.TundraRequestForTest(152, "fd5e:7a12::1", "", "ffff:ffff:ffff:ffff:ffff:ffff::", 0)
	c = ts.startChild(t, asPrimary, "tundra-client", tundraRaw(req))
	r = c.nextTundra(t)
	if r.FirstFds != 1 || !r.CmsgOK {
		t.Fatalf("second request: %+v", r)
	}
	if l, err := ts.ns.LinkByName(r.Name); err != nil || l.MTU != 1500 || !l.HasFlag("UP") {
		t.Errorf("link %+v, %v: want MTU 1500 (the kernel's default), UP", l, err)
	}
	if a := ts.addr(t, r.Name, "fd5e:7a12::1"); a.PrefixLen != 96 || a.Address != "" {
		t.Errorf("address %+v: want /96, no peer", a)
	}
	c.stop(10 * time.Second)
	ts.waitLinks(t)
}

// Every refusal closes the connection with no descriptor and no bytes
// (Tundra's protocol has no error reply), and the audit log says why,
// tagged proto=tundra. The server leaks nothing and goes on serving.
func TestTundraRefusals(t *testing.T) {
	// Every refusal in full: the two oversize cases share their reason,
	// which the flood summary would otherwise count instead of logging.
	ts := startServer(t, func(c *broker.Config) {
		c.Policy.MaxDevicesPerUID = 1
		c.RefusalWindow = -1
	})
	ts.rootCreate(t, "fd00:1::1/64") // warm up, as in TestAbuse
	fdsBefore := leakcheck.FDs(t)
	audits := len(ts.log.audits())

	good := func() []byte {
		return broker.TundraRequestForTest(152, "fd5e:7a11::1", "", "ffff:ffff:ffff:ffff::", 1400)
	}
	cases := []struct {
		name      string
		who       cred
		req       []byte
		halfClose bool
		status    string // audit status
		result    string // audit result
		reason    string // in the audit reason
		noProto   bool   // refused before a byte was read: no protocol known
	}{
		{name: "non-member", who: asOutsider, req: good(), status: "unauthorized", result: "refused",
			reason: fmt.Sprintf("uid %d is neither root nor a member of group %d", outsiderUID, tundraGID), noProto: true},
		{name: "policy: foreign prefix", who: asMember,
			req:    broker.TundraRequestForTest(152, "2001:db8::1", "", "ffff:ffff:ffff:ffff::", 0),
			status: "denied by policy", result: "refused", reason: "address: 2001:db8::1/64 is not inside an allowed prefix"},
		{name: "policy: MTU", who: asMember,
			req:    broker.TundraRequestForTest(152, "fd5e:7a11::1", "", "ffff:ffff:ffff:ffff::", 9001),
			status: "denied by policy", result: "refused", reason: "mtu: 9001 is outside the allowed 1280..9000"},
		{name: "bad size field", who: asMember,
			req:    broker.TundraRequestForTest(153, "fd5e:7a11::1", "", "ffff:ffff:ffff:ffff::", 0),
			status: "bad request", result: "refused", reason: "invalid Tundra request: size field 153 at offset 8, want 152"},
		{name: "non-contiguous netmask", who: asMember,
			req:    broker.TundraRequestForTest(152, "fd5e:7a11::1", "", "ffff:ff00:ffff::", 0),
			status: "bad request", result: "refused", reason: "netmask: ffff:ff00:ffff:: is not contiguous"},
		{name: "invalid MTU", who: asMember,
			req:    broker.TundraRequestForTest(152, "fd5e:7a11::1", "", "ffff:ffff:ffff:ffff::", 70000),
			status: "bad request", result: "refused", reason: "mtu: 70000 is outside 68..65535"},
		{name: "truncated, half-closed", who: asMember, req: good()[:100], halfClose: true,
			status: "bad request", result: "dropped", reason: "truncated frame: the client closed after 100 of 160 request bytes"},
		{name: "truncated in the type", who: asMember, req: []byte{0, 0, 0}, halfClose: true,
			status: "bad request", result: "dropped", reason: "truncated frame: the client closed after 3 of 160 request bytes"},
		{name: "truncated, silent", who: asMember, req: good()[:100],
			status: "bad request", result: "dropped", reason: "no complete request within 1s (read 100 of 160 request bytes)"},
		{name: "oversize by one byte", who: asMember, req: append(good(), 0),
			status: "bad request", result: "refused", reason: "the client sent more than the 160 bytes of a Tundra request"},
		{name: "oversize", who: asMember, req: append(good(), make([]byte, 4000)...),
			status: "bad request", result: "refused", reason: "the client sent more than the 160 bytes of a Tundra request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{tundraRaw(tc.req)}
			if tc.halfClose {
				env = append(env, "TUNDRA_HALFCLOSE=1")
			}
			c := ts.startChild(t, tc.who, "tundra-client", env...)
			r := c.nextTundra(t)
			c.stop(10 * time.Second)
			if r.FirstFds != 0 || r.LaterFds != 0 || (r.End != "EOF" && r.End != "ECONNRESET") {
				t.Errorf("client saw %+v; want the connection closed without a descriptor", r)
			}
			if !tc.noProto && r.Bytes != "" {
				t.Errorf("the server wrote %s to a refused Tundra client", r.Bytes)
			}
			audits++
			a := ts.log.waitAudits(t, audits)[audits-1]
			if a["status"] != tc.status || a["result"] != tc.result || !strings.Contains(a["reason"], tc.reason) ||
				a["uid"] != fmt.Sprint(tc.who.uid) {
				t.Errorf("audit %v; want status %q, result %q, reason with %q", a, tc.status, tc.result, tc.reason)
			}
			if wantProto := map[bool]string{false: "tundra", true: ""}[tc.noProto]; a["proto"] != wantProto {
				t.Errorf("audit proto = %q, want %q", a["proto"], wantProto)
			}
			ts.waitLinks(t)
		})
	}
	// Still serving both protocols; and the quota counts Tundra's
	// devices: with one held, the member's next request is refused.
	ts.rootCreate(t, "fd00:2::1/64")
	holder := ts.startChild(t, asMember, "tundra-client", tundraRaw(good()))
	held := holder.nextTundra(t)
	if held.FirstFds != 1 {
		t.Fatalf("a good Tundra request after the refusals: %+v", held)
	}
	c := ts.startChild(t, asMember, "tundra-client",
		tundraRaw(broker.TundraRequestForTest(152, "fd5e:7a12::1", "", "ffff:ffff:ffff:ffff::", 0)))
	if r := c.nextTundra(t); r.FirstFds != 0 || r.Bytes != "" || r.End != "EOF" {
		t.Errorf("over the quota: %+v; want the connection closed without a descriptor", r)
	}
	c.stop(10 * time.Second)
	// The holder's record may land before or after this one.
	a := ts.log.waitAuditSince(t, audits, func(a map[string]string) bool { return a["result"] == "refused" })
	if want := fmt.Sprintf("devices: uid %d holds 1 devices (%s), the limit is 1", memberUID, held.Name); a["proto"] != "tundra" ||
		a["status"] != "denied by policy" || a["reason"] != want {
		t.Errorf("audit %v; want proto=tundra, denied by policy, %q", a, want)
	}
	ts.waitLinks(t, held.Name)
	holder.stop(10 * time.Second)
	ts.waitLinks(t)

	leakcheck.NoNewFDs(t, fdsBefore) // with its grace period for closes in flight
}

// A panic while serving a request is contained: a client of our protocol
// is told StatusFailed, a Tundra client sees the connection close without
// a byte (its protocol has no error reply), both are audited as failed,
// the panic is logged, no reservation outlives it, and the server goes on
// serving.
func TestPanicContained(t *testing.T) {
	var panics atomic.Int32 // Create calls left to panic in
	ts := startServer(t, func(c *broker.Config) {
		c.Policy.MaxDevicesPerUID = 1
		create := c.Create
		c.Create = func(ctx context.Context, r broker.Request) (broker.Created, error) {
			if panics.Add(-1) >= 0 {
				panic("planted by TestPanicContained")
			}
			return create(ctx, r)
		}
	})
	ts.log.allowPanics.Store(true)
	ts.rootCreate(t, "fd00:1::1/64") // warm up, as in TestAbuse
	fdsBefore := leakcheck.FDs(t)
	good := broker.TundraRequestForTest(152, "fd5e:7a11::1", "", "ffff:ffff:ffff:ffff::", 1400)

	audits := len(ts.log.audits())
	panics.Store(1)
	c := broker.Client{Path: ts.path}
	_, err := c.Create(context.Background(), broker.Request{Addr: pfx("fd00:2::1/64")})
	var be *broker.Error
	if !errors.As(err, &be) || be.Status != broker.StatusFailed || be.Message != "internal server error" {
		t.Errorf("our client: %v; want StatusFailed, internal server error", err)
	}
	a := ts.log.waitAuditSince(t, audits, func(map[string]string) bool { return true })
	if a["result"] != "failed" || a["reason"] != "internal error" || a["proto"] != "" {
		t.Errorf("audit %v; want result failed, reason internal error, no proto", a)
	}

	audits = len(ts.log.audits())
	panics.Store(1)
	m := ts.startChild(t, asMember, "tundra-client", tundraRaw(good))
	r := m.nextTundra(t)
	m.stop(10 * time.Second)
	if r.FirstFds != 0 || r.LaterFds != 0 || r.Bytes != "" || (r.End != "EOF" && r.End != "ECONNRESET") {
		t.Errorf("Tundra client saw %+v; want the connection closed without a byte", r)
	}
	a = ts.log.waitAuditSince(t, audits, func(map[string]string) bool { return true })
	if a["result"] != "failed" || a["proto"] != "tundra" || a["uid"] != fmt.Sprint(memberUID) {
		t.Errorf("audit %v; want result failed, proto tundra, uid %d", a, memberUID)
	}
	if n := len(slices.DeleteFunc(ts.log.all(), func(m map[string]string) bool { return m["msg"] != "panic while handling a connection" })); n != 2 {
		t.Errorf("%d panic records, want 2", n)
	}

	// Served again, and the member's quota of one is free: the panic
	// released its reservation.
	ts.rootCreate(t, "fd00:3::1/64")
	m = ts.startChild(t, asMember, "tundra-client", tundraRaw(good))
	if r := m.nextTundra(t); r.FirstFds != 1 {
		t.Errorf("the member after the panics: %+v; want its device", r)
	}
	m.stop(10 * time.Second)
	ts.waitLinks(t)
	leakcheck.NoNewFDs(t, fdsBefore) // with its grace period for closes in flight
}
