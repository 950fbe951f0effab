package nl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// asError fails the test unless err is an *Error and returns it.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var ne *Error
	if !errors.As(err, &ne) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return ne
}

// ackHandler acknowledges every request after queueing the datagrams that
// before returns for it.
func ackHandler(k *fakeKernel, before func(req message)) func(message) {
	return func(req message) {
		if before != nil {
			before(req)
		}
		k.deliver(0, k.ack(req))
	}
}

func TestRequestFlagsAndSequence(t *testing.T) {
	k := newFake()
	k.handle = ackHandler(k, nil)
	c := NewConn(k)
	for i := range 3 {
		if err := c.SetLinkUp(2); err != nil {
			t.Fatalf("SetLinkUp #%d: %v", i, err)
		}
	}
	for i, req := range k.sent {
		if req.Header.Seq != uint32(i+1) {
			t.Errorf("request %d: seq %d, want %d", i, req.Header.Seq, i+1)
		}
		if want := uint16(nlmFRequest | nlmFAck); req.Header.Flags != want {
			t.Errorf("request %d: flags %#x, want %#x", i, req.Header.Flags, want)
		}
	}
}

// Replies that are not for this request must be skipped, not taken for its
// answer: here each is an EPERM that would fail the request if believed.
func TestForeignRepliesSkipped(t *testing.T) {
	tests := []struct {
		name   string
		inject func(k *fakeKernel, req message)
	}{
		{"stale seq", func(k *fakeKernel, req message) {
			stale := req
			stale.Header.Seq--
			k.deliver(0, k.errMsg(stale, unix.EPERM, true, nil))
		}},
		{"future seq", func(k *fakeKernel, req message) {
			other := req
			other.Header.Seq += 7
			k.deliver(0, k.errMsg(other, unix.EPERM, true, nil))
		}},
		{"wrong pid", func(k *fakeKernel, req message) {
			m := k.errMsg(req, unix.EPERM, true, nil)
			nativeEndian.PutUint32(m[12:16], k.pid+1)
			k.deliver(0, m)
		}},
		{"non-kernel sender", func(k *fakeKernel, req message) {
			k.deliver(4242, k.errMsg(req, unix.EPERM, true, nil))
		}},
		{"stale message before the ack in one datagram", func(k *fakeKernel, req message) {
			stale := req
			stale.Header.Seq--
			k.deliver(0, k.errMsg(stale, unix.EPERM, false, extAck("old", 0)), k.ack(req))
		}},
		{"noop", func(k *fakeKernel, req message) {
			k.deliver(0, k.reply(req, nlmsgNoop, 0, nil))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFake()
			k.handle = ackHandler(k, func(req message) { tt.inject(k, req) })
			c := NewConn(k)
			c.seq = 10
			if err := c.SetLinkDown(2); err != nil {
				t.Fatalf("SetLinkDown: %v (the foreign reply was believed)", err)
			}
		})
	}
}

func TestErrorLayouts(t *testing.T) {
	tests := []struct {
		name    string
		capped  bool
		tlvs    []byte
		wantMsg string
		wantOff uint32
	}{
		{"capped, message and offset", true, extAck("mtu less than device minimum", 36), "mtu less than device minimum", 36},
		{"uncapped, message and offset", false, extAck("mtu less than device minimum", 36), "mtu less than device minimum", 36},
		{"capped, message only", true, extAck("IPv6 is disabled on this device", 0), "IPv6 is disabled on this device", 0},
		{"uncapped, message only", false, extAck("IPv6 is disabled on this device", 0), "IPv6 is disabled on this device", 0},
		{"capped, no ext-ack", true, nil, "", 0},
		{"uncapped, no ext-ack", false, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFake()
			k.handle = func(req message) { k.deliver(0, k.errMsg(req, unix.EINVAL, tt.capped, tt.tlvs)) }
			err := NewConn(k).SetLinkMTU(2, 10)
			ne := asError(t, err)
			if ne.Op != "setlinkmtu" || ne.Errno != unix.EINVAL || ne.Message != tt.wantMsg || ne.Offset != tt.wantOff || ne.Err != nil {
				t.Errorf("got %#v, want Op setlinkmtu, EINVAL, Message %q, Offset %d", *ne, tt.wantMsg, tt.wantOff)
			}
			if !errors.Is(err, unix.EINVAL) {
				t.Errorf("errors.Is(%v, EINVAL) is false", err)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "addaddr", Errno: unix.EINVAL, Message: "IPv6 is disabled on this device"},
			`nl: addaddr: ` + unix.EINVAL.Error() + `: "IPv6 is disabled on this device"`},
		{&Error{Op: "setlinkmtu", Errno: unix.EINVAL, Message: "bad", Offset: 36},
			`nl: setlinkmtu: ` + unix.EINVAL.Error() + `: "bad" (offset 36)`},
		{&Error{Op: "links", Err: ErrMalformed}, "nl: links: malformed netlink message"},
		{&Error{Op: "links", Errno: unix.EINTR, Err: ErrDumpInterrupted},
			"nl: links: dump interrupted by concurrent changes: " + unix.EINTR.Error()},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	e := &Error{Op: "links", Errno: unix.EINTR, Err: ErrDumpInterrupted}
	if !errors.Is(e, unix.EINTR) || !errors.Is(e, ErrDumpInterrupted) || errors.Is(e, ErrMalformed) {
		t.Errorf("errors.Is does not see exactly EINTR and ErrDumpInterrupted in %v", e)
	}
	if errors.Is(&Error{Op: "x", Errno: unix.EEXIST}, ErrMalformed) {
		t.Error("an errno-only error matched ErrMalformed")
	}
}

func TestGetLinkAndENODEV(t *testing.T) {
	f := newFakeRTNL()
	c := NewConn(f)
	l, err := c.LinkByName("tun0")
	if err != nil {
		t.Fatal(err)
	}
	if want := f.links[1]; !reflect.DeepEqual(l, want) {
		t.Errorf("LinkByName = %+v, want %+v", l, want)
	}
	l, err = c.LinkByIndex(1)
	if err != nil || l.Name != "lo" || l.HardwareAddr.String() != "00:00:00:00:00:00" {
		t.Errorf("LinkByIndex(1) = %+v, %v", l, err)
	}
	if want := f.links[0].Stats; l.Stats == nil || *l.Stats != *want {
		t.Errorf("LinkByIndex(1).Stats = %+v, want %+v", l.Stats, want)
	}
	for _, err := range []error{
		func() error { _, err := c.LinkByName("nope"); return err }(),
		func() error { _, err := c.LinkByIndex(99); return err }(),
	} {
		if ne := asError(t, err); ne.Errno != unix.ENODEV || !errors.Is(err, unix.ENODEV) {
			t.Errorf("missing link: %v, want ENODEV", err)
		}
	}
	if got := f.sent[0].Header.Flags; got != nlmFRequest {
		t.Errorf("get request flags %#x, want only NLM_F_REQUEST", got)
	}
}

func TestDumpMultipart(t *testing.T) {
	f := newFakeRTNL()
	for i := 3; i < 40; i++ {
		f.links = append(f.links, Link{Index: i, Name: fmt.Sprintf("tun%d", i), MTU: 1400 + i, Type: 65534})
	}
	// Serve the dump three links to a datagram, as the kernel fills its
	// buffer, with NLMSG_DONE alone at the end.
	f.handle = func(req message) {
		for i := 0; i < len(f.links); i += 3 {
			var parts [][]byte
			for _, l := range f.links[i:min(i+3, len(f.links))] {
				parts = append(parts, f.reply(req, rtmNewLink, nlmFMulti, linkPayload(l)))
			}
			f.deliver(0, parts...)
		}
		f.deliver(0, f.done(req, 0, 0, nil))
	}
	links, err := NewConn(f).Links()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(links, f.links) {
		t.Errorf("Links() = %+v\nwant %+v", links, f.links)
	}
	if got, want := f.sent[0].Header.Flags, uint16(nlmFRequest|nlmFDump); got != want {
		t.Errorf("dump flags %#x, want %#x", got, want)
	}
	if len(f.queue) != 0 {
		t.Errorf("%d datagrams left unread", len(f.queue))
	}
}

func TestDumpInterrupted(t *testing.T) {
	for _, cleanAfter := range []int{1, 3, maxDumpAttempts, maxDumpAttempts + 1} {
		t.Run(fmt.Sprintf("clean after %d", cleanAfter), func(t *testing.T) {
			f := newFakeRTNL()
			attempt := 0
			f.handle = func(req message) {
				attempt++
				var flags uint16
				if attempt < cleanAfter {
					flags = nlmFDumpIntr
				}
				// The flag may appear on any part; put it on the
				// second link only, and on DONE too.
				f.deliver(0, f.reply(req, rtmNewLink, nlmFMulti, linkPayload(f.links[0])))
				f.deliver(0, f.reply(req, rtmNewLink, nlmFMulti|flags, linkPayload(f.links[1])))
				f.deliver(0, f.done(req, flags, 0, nil))
			}
			links, err := NewConn(f).Links()
			if cleanAfter <= maxDumpAttempts {
				if err != nil || len(links) != 2 {
					t.Fatalf("Links() = %d links, %v; want 2 links after %d attempts", len(links), err, cleanAfter)
				}
				if len(f.sent) != cleanAfter {
					t.Errorf("%d requests sent, want %d", len(f.sent), cleanAfter)
				}
				return
			}
			ne := asError(t, err)
			if !errors.Is(err, ErrDumpInterrupted) || !errors.Is(err, unix.EINTR) || ne.Op != "links" {
				t.Errorf("got %v, want links: ErrDumpInterrupted/EINTR", err)
			}
			if len(f.sent) != maxDumpAttempts {
				t.Errorf("%d requests sent, want %d", len(f.sent), maxDumpAttempts)
			}
			seen := map[uint32]bool{}
			for _, r := range f.sent {
				if seen[r.Header.Seq] {
					t.Errorf("retry reused seq %d", r.Header.Seq)
				}
				seen[r.Header.Seq] = true
			}
		})
	}
}

func TestDumpDoneError(t *testing.T) {
	f := newFakeRTNL()
	f.handle = func(req message) {
		f.deliver(0, f.reply(req, rtmNewLink, nlmFMulti, linkPayload(f.links[0])))
		f.deliver(0, f.done(req, 0, unix.EMSGSIZE, extAck("dump too big", 0)))
	}
	_, err := NewConn(f).Links()
	ne := asError(t, err)
	if ne.Errno != unix.EMSGSIZE || ne.Message != "dump too big" || ne.Op != "links" {
		t.Errorf("got %#v, want EMSGSIZE with message", *ne)
	}
}

func TestDumpErrorMessage(t *testing.T) {
	f := newFakeRTNL()
	f.handle = func(req message) { f.deliver(0, f.errMsg(req, unix.EOPNOTSUPP, true, extAck("no dump", 0))) }
	_, err := NewConn(f).Addrs(0)
	if ne := asError(t, err); ne.Errno != unix.EOPNOTSUPP || ne.Message != "no dump" {
		t.Errorf("got %v, want EOPNOTSUPP \"no dump\"", err)
	}
}

// Broken replies are errors naming the operation: never a panic, a hang, or
// a partial answer taken for a whole one.
func TestMalformedReplies(t *testing.T) {
	tests := []struct {
		name  string
		reply func(k *fakeKernel, req message) datagram
		want  error
	}{
		{"truncated header", func(k *fakeKernel, req message) datagram {
			return datagram{b: k.ack(req)[:10]}
		}, ErrMalformed},
		{"nlmsg_len past the datagram", func(k *fakeKernel, req message) datagram {
			return datagram{b: k.reply(req, rtmNewLink, 0, linkPayload(Link{Index: 2, Name: "tun0"}))[:30]}
		}, ErrMalformed},
		{"nlmsg_len below the header", func(k *fakeKernel, req message) datagram {
			m := k.ack(req)
			nativeEndian.PutUint32(m, 8)
			return datagram{b: m}
		}, ErrMalformed},
		{"attribute shorter than its header", func(k *fakeKernel, req message) datagram {
			p := linkPayload(Link{Index: 2, Name: "tun0"})
			nativeEndian.PutUint16(p[sizeofIfInfomsg:], 2)
			return datagram{b: k.reply(req, rtmNewLink, 0, p)}
		}, ErrMalformed},
		{"attribute past the message", func(k *fakeKernel, req message) datagram {
			p := linkPayload(Link{Index: 2, Name: "tun0"})
			nativeEndian.PutUint16(p[sizeofIfInfomsg:], 200)
			return datagram{b: k.reply(req, rtmNewLink, 0, p)}
		}, ErrMalformed},
		{"MTU of 2 bytes", func(k *fakeKernel, req message) datagram {
			e := encoder{b: ifInfomsg{Index: 2}.marshal()}
			e.bytes(iflaMTU, []byte{1, 2})
			return datagram{b: k.reply(req, rtmNewLink, 0, e.b)}
		}, ErrMalformed},
		{"IFLA_STATS64 of 33 bytes", func(k *fakeKernel, req message) datagram {
			e := encoder{b: ifInfomsg{Index: 2}.marshal()}
			e.bytes(iflaStats64, make([]byte, 33))
			return datagram{b: k.reply(req, rtmNewLink, 0, e.b)}
		}, ErrMalformed},
		{"link header cut short", func(k *fakeKernel, req message) datagram {
			return datagram{b: k.reply(req, rtmNewLink, 0, make([]byte, 8))}
		}, ErrMalformed},
		{"NLMSG_ERROR too short", func(k *fakeKernel, req message) datagram {
			return datagram{b: k.reply(req, nlmsgError, 0, make([]byte, 8))}
		}, ErrMalformed},
		{"datagram truncated by the socket", func(k *fakeKernel, req message) datagram {
			return datagram{err: ErrTruncated}
		}, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFake()
			k.handle = func(req message) { k.queue = append(k.queue, tt.reply(k, req)) }
			_, err := NewConn(k).LinkByName("tun0")
			ne := asError(t, err)
			if !errors.Is(err, tt.want) || !strings.HasPrefix(ne.Op, "linkbyname") || ne.Errno != 0 {
				t.Errorf("got %v (%#v), want linkbyname wrapping %v", err, *ne, tt.want)
			}
		})
	}
}

func TestNoReplyTimesOut(t *testing.T) {
	k := newFake() // never answers: recv reports EAGAIN as SO_RCVTIMEO would
	err := NewConn(k).SetLinkUp(2)
	if ne := asError(t, err); ne.Op != "setlinkup: recv" || !errors.Is(err, unix.EAGAIN) {
		t.Errorf("got %v (op %q), want setlinkup: recv EAGAIN", err, ne.Op)
	}
}

func TestClose(t *testing.T) {
	k := newFake()
	c := NewConn(k)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if k.closes != 1 {
		t.Errorf("transport closed %d times, want 1", k.closes)
	}
	_, err := c.Links()
	if ne := asError(t, err); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) || ne.Op != "links" {
		t.Errorf("Links after Close: %v, want links: ErrClosed matching net.ErrClosed", err)
	}
	if err.Error() != "nl: links: use of closed netlink connection" {
		t.Errorf("Links after Close: %q", err)
	}
	if len(k.sent) != 0 {
		t.Errorf("%d requests sent after Close", len(k.sent))
	}
}

// Arguments that cannot be right are refused with EINVAL and a reason naming
// them, before anything is sent.
func TestArgumentsRejected(t *testing.T) {
	v4 := mustPrefix("10.0.0.1/24")
	tests := []rejectCase{
		{"empty name", func(c *Conn) error { _, err := c.LinkByName(""); return err }, "empty link name"},
		{"long name", func(c *Conn) error { _, err := c.LinkByName("abcdefghijklmnop"); return err }, "limit is 15"},
		{"NUL in name", func(c *Conn) error { return c.RenameLink(2, "a\x00b") }, "NUL"},
		{"index 0", func(c *Conn) error { _, err := c.LinkByIndex(0); return err }, "link index 0"},
		{"negative MTU", func(c *Conn) error { return c.SetLinkMTU(2, -1) }, "MTU -1"},
		{"huge MTU", func(c *Conn) error { return c.SetLinkMTU(2, 1<<40) }, "out of range"},
		{"addr index", func(c *Conn) error { return c.AddAddr(Addr{Prefix: v4}) }, "Addr.Index 0"},
		{"zero prefix", func(c *Conn) error { return c.AddAddr(Addr{Index: 2}) }, "Addr.Prefix"},
		{"4-in-6 prefix", func(c *Conn) error {
			return c.AddAddr(Addr{Index: 2, Prefix: mustPrefix("::ffff:10.0.0.1/120")})
		}, "Addr.Prefix ::ffff:10.0.0.1 is an IPv4-mapped"},
		{"4-in-6 peer", func(c *Conn) error {
			return c.AddAddr(Addr{Index: 2, Prefix: mustPrefix("fd00::1/64"), Peer: mustAddr("::ffff:10.0.0.2")})
		}, "Addr.Peer"},
		{"peer family", func(c *Conn) error {
			return c.ReplaceAddr(Addr{Index: 2, Prefix: v4, Peer: mustAddr("fd00::2")})
		}, "different families"},
		{"route without way out", func(c *Conn) error { return c.AddRoute(Route{Dst: mustPrefix("10.9.0.0/16")}) }, "neither Index nor Gateway"},
		{"route gateway family", func(c *Conn) error {
			return c.AddRoute(Route{Dst: mustPrefix("10.9.0.0/16"), Gateway: mustAddr("fe80::1")})
		}, "different families"},
		{"route 4-in-6 gateway", func(c *Conn) error {
			return c.DeleteRoute(Route{Dst: mustPrefix("fd00::/64"), Gateway: mustAddr("::ffff:1.2.3.4")})
		}, "Route.Gateway"},
		{"addrs index", func(c *Conn) error { _, err := c.Addrs(-1); return err }, "link index -1"},
	}
	checkRejected(t, tests)
}

// SetLinkUp and SetLinkDown must change IFF_UP only; the fake applies
// ifi_change as the kernel does, where a zero mask replaces every flag.
func TestSetLinkUpKeepsOtherFlags(t *testing.T) {
	f := newFakeRTNL()
	c := NewConn(f)
	before := f.links[1].Flags
	if err := c.SetLinkUp(2); err != nil {
		t.Fatal(err)
	}
	if got := f.links[1].Flags; got != before|iffUp {
		t.Errorf("after SetLinkUp flags %#x, want %#x", got, before|iffUp)
	}
	if err := c.SetLinkDown(2); err != nil {
		t.Fatal(err)
	}
	if got := f.links[1].Flags; got != before {
		t.Errorf("after SetLinkDown flags %#x, want %#x", got, before)
	}
	if err := c.SetLinkMTU(2, 1280); err != nil || f.links[1].MTU != 1280 || f.links[1].Flags != before {
		t.Errorf("SetLinkMTU: %v, link %+v", err, f.links[1])
	}
	if err := c.RenameLink(2, "wg7"); err != nil || f.links[1].Name != "wg7" {
		t.Errorf("RenameLink: %v, link %+v", err, f.links[1])
	}
	err := c.SetLinkMTU(2, 10)
	if ne := asError(t, err); ne.Errno != unix.EINVAL || ne.Message != "mtu less than device minimum" {
		t.Errorf("SetLinkMTU(10): %v", err)
	}
}

func TestAddrsRoundTrip(t *testing.T) {
	f := newFakeRTNL()
	c := NewConn(f)
	addrs := []Addr{
		{Index: 2, Prefix: mustPrefix("10.1.2.3/24"), Peer: mustAddr("10.1.2.4")},
		{Index: 2, Prefix: mustPrefix("10.5.0.1/16")},
		{Index: 2, Prefix: mustPrefix("fd00::1/64"), Flags: IFA_F_NODAD},
		{Index: 2, Prefix: mustPrefix("fd00:1::1/128"), Peer: mustAddr("fd00:1::2"), Flags: IFA_F_NODAD | IFA_F_NOPREFIXROUTE},
		{Index: 1, Prefix: mustPrefix("127.0.0.2/8"), Scope: 254},
	}
	for _, a := range addrs {
		if err := c.AddAddr(a); err != nil {
			t.Fatalf("AddAddr(%+v): %v", a, err)
		}
	}
	got, err := c.Addrs(0)
	if err != nil || !reflect.DeepEqual(got, addrs) {
		t.Errorf("Addrs(0) = %+v, %v\nwant %+v", got, err, addrs)
	}
	got, err = c.Addrs(1)
	if err != nil || !reflect.DeepEqual(got, addrs[4:]) {
		t.Errorf("Addrs(1) = %+v, %v", got, err)
	}
	err = c.AddAddr(addrs[0])
	if ne := asError(t, err); !errors.Is(err, unix.EEXIST) || ne.Message == "" {
		t.Errorf("duplicate AddAddr: %v, want EEXIST with a message", err)
	}
	if err := c.ReplaceAddr(addrs[0]); err != nil {
		t.Errorf("ReplaceAddr of an existing address: %v", err)
	}
	if err := c.DeleteAddr(addrs[2]); err != nil {
		t.Errorf("DeleteAddr: %v", err)
	}
	if err := c.DeleteAddr(addrs[2]); !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("second DeleteAddr: %v, want EADDRNOTAVAIL", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newFakeRTNL()
	c := NewConn(f)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				l, err := c.LinkByIndex(1 + (g+i)%2)
				if err == nil && l.Index != 1+(g+i)%2 {
					err = fmt.Errorf("asked for link %d, got %d", 1+(g+i)%2, l.Index)
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
	if len(f.sent) != 400 {
		t.Errorf("%d requests, want 400", len(f.sent))
	}
}

func TestRouteRequests(t *testing.T) {
	k := newFake()
	k.handle = ackHandler(k, nil)
	c := NewConn(k)
	r := Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), Index: 4}
	if err := c.AddRoute(r); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRoute(Route{Dst: r.Dst}); err != nil {
		t.Fatal(err)
	}
	if got, want := k.sent[0].Header.Flags, uint16(nlmFRequest|nlmFAck|nlmFCreate|nlmFExcl); got != want {
		t.Errorf("AddRoute flags %#x, want %#x", got, want)
	}
	if got, want := k.sent[1].Header.Type, uint16(rtmDelRoute); got != want {
		t.Errorf("DeleteRoute type %d, want %d", got, want)
	}
}

// rejectCase is a call whose argument cannot be right, and what the error
// must mention.
type rejectCase struct {
	name string
	call func(c *Conn) error
	want string
}

// checkRejected runs each call on a fake kernel: it must fail with EINVAL
// mentioning want, before anything is sent.
func checkRejected(t *testing.T, tests []rejectCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFake()
			err := tt.call(NewConn(k))
			ne := asError(t, err)
			if ne.Errno != unix.EINVAL || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want EINVAL mentioning %q", err, tt.want)
			}
			if len(k.sent) != 0 {
				t.Errorf("request sent for an invalid argument")
			}
		})
	}
}
