package nl

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzParseMessages feeds arbitrary datagrams to the decoders, to a Conn
// and to a LinkWatcher.
// Nothing may panic or loop; every failure must be ErrMalformed; what parses
// must account for every byte. Besides the seeds added here, testdata/fuzz
// holds datagrams captured from a real 6.18 kernel (link and address dumps,
// a get, an ack, capped and uncapped errors with ext-ack text; the link
// replies carry IFLA_STATS64) and any crasher found so far.
func FuzzParseMessages(f *testing.F) {
	k := newFake()
	req := message{Header: header{Len: 32, Type: rtmSetLink, Flags: nlmFRequest | nlmFAck, Seq: 1}, Data: setFlagsRequest(2, true)}
	lo := Link{Index: 1, Name: "lo", Flags: 0x49, MTU: 65536, Type: 772, HardwareAddr: make([]byte, 6),
		Stats: &LinkStats{RxPackets: 10, TxPackets: 10, RxBytes: 840, TxBytes: 840}}
	f.Add(k.ack(req))
	f.Add(k.errMsg(req, unix.EINVAL, true, extAck("mtu less than device minimum", 36)))
	f.Add(k.errMsg(req, unix.EINVAL, false, extAck("IPv6 is disabled on this device", 0)))
	f.Add(bytes.Join([][]byte{
		k.reply(req, rtmNewLink, nlmFMulti, linkPayload(lo)),
		k.reply(req, rtmNewAddr, nlmFMulti|nlmFDumpIntr, addrPayload(Addr{Index: 2, Prefix: mustPrefix("fd00::1/64"), Peer: mustAddr("fd00::2"), Flags: IFA_F_NODAD})),
		k.reply(req, rtmNewAddr, nlmFMulti, addrPayload(Addr{Index: 2, Prefix: mustPrefix("10.1.2.3/24")})),
	}, nil))
	f.Add(k.done(req, 0, unix.EINTR, extAck("dump interrupted", 0)))
	f.Add(marshalMessage(header{Type: rtmNewRoute}, routeRequest(Route{Dst: mustPrefix("fd00::/64"), Index: 3, Gateway: mustAddr("fe80::1")}, true)))
	// Link info of a tun device and an alias, as a dump part and as
	// notifications; an address with a broadcast address.
	tunLink := Link{Index: 9, Name: "tun9", Type: 65534, Alias: "web", Kind: "tun",
		Tun: &TunInfo{Type: 2, Owner: 1000, HasOwner: true, Group: 100, HasGroup: true, MultiQueue: true, NumQueues: 3, NumDisabledQueues: 1}}
	f.Add(k.reply(req, rtmNewLink, nlmFMulti, linkPayload(tunLink)))
	f.Add(bytes.Join([][]byte{
		marshalMessage(header{Type: rtmNewLink, Pid: 77}, linkPayload(tunLink)),
		marshalMessage(header{Type: rtmDelLink}, linkPayload(Link{Index: 4, Name: "v0", Kind: "veth"})),
	}, nil))
	f.Add(k.reply(req, rtmNewAddr, nlmFMulti, addrPayload(Addr{Index: 2, Prefix: mustPrefix("10.1.2.3/24"), Broadcast: mustAddr("10.1.2.255")})))
	// Routes of a dump: a multipath IPv4 route and an IPv6 route in a
	// table above 255.
	mp := encoder{b: rtmsg{Family: afInet, DstLen: 16, Table: 254, Protocol: 3, Type: 1}.marshal()}
	mp.bytes(rtaDst, []byte{10, 7, 0, 0})
	mp.bytes(rtaMultipath, []byte{
		16, 0, 0, 0, 3, 0, 0, 0, 8, 0, 5, 0, 192, 0, 2, 3,
		16, 0, 0, 1, 4, 0, 0, 0, 8, 0, 5, 0, 192, 0, 2, 4,
	})
	f.Add(bytes.Join([][]byte{
		k.reply(req, rtmNewRoute, nlmFMulti, mp.b),
		k.reply(req, rtmNewRoute, nlmFMulti, routePayload(Route{Dst: mustPrefix("::/0"), Table: 1000, Type: 1, Index: 2, Gateway: mustAddr("fe80::1"), Priority: 1024})),
	}, nil))

	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := parseMessages(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parseMessages error %v is not ErrMalformed", err)
			}
		} else {
			checkMessages(t, b, msgs)
		}
		fuzzConn(t, b)
		fuzzWatcher(t, b)
	})
}

// checkMessages checks that parsed messages cover b exactly and decodes
// each payload as what its type says it is.
func checkMessages(t *testing.T, b []byte, msgs []message) {
	off := 0
	for i, m := range msgs {
		if int(m.Header.Len) != nlmsgHdrLen+len(m.Data) {
			t.Fatalf("message %d: nlmsg_len %d but %d payload bytes", i, m.Header.Len, len(m.Data))
		}
		end := off + int(m.Header.Len)
		if end > len(b) {
			t.Fatalf("message %d ends at %d, past the %d-byte input", i, end, len(b))
		}
		if re := marshalMessage(m.Header, m.Data); !bytes.Equal(re[:m.Header.Len], b[off:end]) {
			t.Fatalf("message %d does not re-encode to its input bytes", i)
		}
		off = min(off+nlmsgAlign(int(m.Header.Len)), len(b))

		var err error
		switch m.Header.Type {
		case nlmsgError, nlmsgDone:
			var st status
			if m.Header.Type == nlmsgError {
				st, err = parseError(m)
			} else {
				st, err = parseDone(m)
			}
			if st.TLVErr != nil && !errors.Is(st.TLVErr, ErrMalformed) {
				t.Fatalf("ext-ack error %v is not ErrMalformed", st.TLVErr)
			}
		case rtmNewLink, rtmDelLink:
			_, err = parseLink(m.Data)
		case rtmNewRoute:
			var rs []Route
			var ok bool
			rs, ok, err = parseRoutes(m.Data)
			if err == nil && ok && len(rs) == 0 {
				t.Fatalf("message %d: a route message of no routes", i)
			}
		case rtmNewAddr:
			_, _, err = parseAddr(m.Data)
		default:
			_, err = parseAttrs(m.Data)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("message %d (type %d): error %v is not ErrMalformed", i, m.Header.Type, err)
		}
	}
	if off != len(b) {
		t.Fatalf("messages cover %d of %d bytes", off, len(b))
	}
}

// fuzzConn hands b to a Conn as the reply to a get, a dump and a change,
// first as it is and then with every header addressed to the request, so
// that the reply loop sees it rather than skipping it as stale.
func fuzzConn(t *testing.T, b []byte) {
	calls := []func(c *Conn) error{
		func(c *Conn) error { _, err := c.LinkByIndex(2); return err },
		func(c *Conn) error { _, err := c.Links(); return err },
		func(c *Conn) error { _, err := c.Addrs(0); return err },
		func(c *Conn) error { return c.SetLinkUp(2) },
		func(c *Conn) error { _, err := c.Routes(); return err },
		func(c *Conn) error { return c.SetLinkAlias(2, "x") },
		func(c *Conn) error { return c.DeleteLink(2) },
	}
	for _, stamp := range []bool{false, true} {
		for _, call := range calls {
			k := newFake()
			k.handle = func(req message) {
				d := bytes.Clone(b)
				if stamp {
					addressTo(d, req.Header.Seq, k.pid)
				}
				k.deliver(0, d)
			}
			err := call(NewConn(k))
			var ne *Error
			if err != nil && !errors.As(err, &ne) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
		}
	}
}

// fuzzWatcher hands b to a LinkWatcher as a notification from the kernel.
// It may yield events or an ErrMalformed *Error, nothing else.
func fuzzWatcher(t *testing.T, b []byte) {
	src := newFakeEvents()
	src.ch <- datagram{b: b}
	w := &LinkWatcher{src: src}
	defer w.Close()
	evs, err := w.Next(0)
	if err != nil {
		var ne *Error
		if !errors.As(err, &ne) || !errors.Is(err, ErrMalformed) {
			t.Fatalf("watcher error %v (%T) is not an ErrMalformed *Error", err, err)
		}
		return
	}
	for _, ev := range evs {
		if ev.Link.Tun != nil && ev.Link.Kind != "tun" {
			t.Fatalf("event with Tun but Kind %q", ev.Link.Kind)
		}
	}
}

// addressTo rewrites the seq and pid of every message header it can walk to.
func addressTo(b []byte, seq, pid uint32) {
	for off := 0; off+nlmsgHdrLen <= len(b); {
		nativeEndian.PutUint32(b[off+8:], seq)
		nativeEndian.PutUint32(b[off+12:], pid)
		l := int(nativeEndian.Uint32(b[off:]))
		if l < nlmsgHdrLen {
			return
		}
		off += nlmsgAlign(l)
	}
}
