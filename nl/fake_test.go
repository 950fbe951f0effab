package nl

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// fakeKernel is an in-process stand-in for the kernel end of a netlink
// socket, so that the protocol logic of Conn is tested without privileges.
// Each request is handed to handle, which queues the datagrams recv will
// return. Conn serialises its calls, so the fake needs no lock of its own.
type fakeKernel struct {
	pid    uint32     // the socket's port id
	queue  []datagram // what recv returns, in order
	sent   []message  // every request, copied
	handle func(req message)
	closes int
}

// datagram is one recv result: bytes from a sender, or an error.
type datagram struct {
	from uint32
	b    []byte
	err  error
}

var _ Transport = (*fakeKernel)(nil)

func newFake() *fakeKernel { return &fakeKernel{pid: 0x1234} }

func (k *fakeKernel) Send(b []byte) error {
	ms, err := parseMessages(b)
	if err != nil || len(ms) != 1 {
		return fmt.Errorf("fake kernel: request of %d messages: %v", len(ms), err)
	}
	m := ms[0]
	m.Data = bytes.Clone(m.Data)
	k.sent = append(k.sent, m)
	if k.handle != nil {
		k.handle(m)
	}
	return nil
}

func (k *fakeKernel) Recv() ([]byte, uint32, error) {
	if len(k.queue) == 0 {
		return nil, 0, &Error{Errno: unix.EAGAIN, Err: errors.New("fake kernel: no reply queued")}
	}
	d := k.queue[0]
	k.queue = k.queue[1:]
	return d.b, d.from, d.err
}

func (k *fakeKernel) PortID() uint32 { return k.pid }
func (k *fakeKernel) Close() error   { k.closes++; return nil }

// deliver queues one datagram holding msgs, sent by port from (0 = kernel).
func (k *fakeKernel) deliver(from uint32, msgs ...[]byte) {
	k.queue = append(k.queue, datagram{from: from, b: bytes.Join(msgs, nil)})
}

// reply builds a message answering req as the kernel would address it.
func (k *fakeKernel) reply(req message, typ, flags uint16, payload []byte) []byte {
	return marshalMessage(header{Type: typ, Flags: flags, Seq: req.Header.Seq, Pid: k.pid}, payload)
}

// errMsg builds an NLMSG_ERROR for req: capped (header only) or with the
// whole request echoed, followed by ext-ack attributes if tlvs is not empty.
func (k *fakeKernel) errMsg(req message, errno unix.Errno, capped bool, tlvs []byte) []byte {
	var flags uint16
	echo := marshalMessage(req.Header, req.Data)
	if capped || errno == 0 {
		flags |= nlmFCapped
		echo = echo[:nlmsgHdrLen]
	}
	if len(tlvs) > 0 {
		flags |= nlmFAckTLVs
	}
	p := make([]byte, 4, 4+len(echo)+len(tlvs))
	nativeEndian.PutUint32(p, uint32(-int32(errno)))
	p = append(p, echo...)
	p = append(p, tlvs...)
	return k.reply(req, nlmsgError, flags, p)
}

// ack builds the acknowledgement of req.
func (k *fakeKernel) ack(req message) []byte { return k.errMsg(req, 0, true, nil) }

// done builds the NLMSG_DONE ending a dump, with an optional error.
func (k *fakeKernel) done(req message, flags uint16, errno unix.Errno, tlvs []byte) []byte {
	p := make([]byte, 4)
	nativeEndian.PutUint32(p, uint32(-int32(errno)))
	if len(tlvs) > 0 {
		flags |= nlmFAckTLVs
		p = append(p, tlvs...)
	}
	return k.reply(req, nlmsgDone, nlmFMulti|flags, p)
}

// extAck encodes NLMSGERR_ATTR_MSG and, when off is not 0, NLMSGERR_ATTR_OFFS.
func extAck(msg string, off uint32) []byte {
	var e encoder
	if msg != "" {
		e.str(nlmsgerrAttrMsg, msg)
	}
	if off != 0 {
		e.u32(nlmsgerrAttrOffs, off)
	}
	return e.b
}

// linkPayload encodes a link as the kernel's RTM_NEWLINK payload.
func linkPayload(l Link) []byte {
	e := encoder{b: ifInfomsg{Type: l.Type, Index: int32(l.Index), Flags: l.Flags}.marshal()}
	e.str(iflaIfname, l.Name)
	e.u32(iflaMTU, uint32(l.MTU))
	e.bytes(iflaOperstate, []byte{l.OperState})
	if l.HardwareAddr != nil {
		e.bytes(iflaAddress, l.HardwareAddr)
	}
	if l.Stats != nil {
		e.bytes(iflaStats64, statsPayload(l.Stats))
	}
	if l.Alias != "" {
		e.str(iflaIfalias, l.Alias)
	}
	if l.Kind != "" {
		e.nested(iflaLinkinfo, func(e *encoder) {
			e.str(iflaInfoKind, l.Kind)
			if l.Tun != nil {
				e.nested(iflaInfoData, func(e *encoder) { tunPayload(e, l.Tun) })
			}
		})
	}
	return e.b
}

// tunPayload encodes TunInfo as drivers/net/tun.c's tun_fill_info does:
// owner and group only when set, queue counts only for multi-queue.
func tunPayload(e *encoder, t *TunInfo) {
	e.bytes(iflaTunType, []byte{t.Type})
	if t.HasOwner {
		e.u32(iflaTunOwner, t.Owner)
	}
	if t.HasGroup {
		e.u32(iflaTunGroup, t.Group)
	}
	b := func(v bool) []byte {
		if v {
			return []byte{1}
		}
		return []byte{0}
	}
	e.bytes(iflaTunPI, b(t.PI))
	e.bytes(iflaTunVnetHdr, b(t.VnetHdr))
	e.bytes(iflaTunPersist, b(t.Persist))
	e.bytes(iflaTunMultiQueue, b(t.MultiQueue))
	if t.MultiQueue {
		e.u32(iflaTunNumQueues, t.NumQueues)
		e.u32(iflaTunNumDisabledQueues, t.NumDisabledQueues)
	}
}

// routePayload encodes a single-path route as the kernel reports it in a
// dump: rtm_table holds the id when it fits (RT_TABLE_COMPAT, 252, when
// not) and RTA_TABLE always.
func routePayload(r Route) []byte {
	m := rtmsg{Family: family(r.Dst.Addr()), DstLen: uint8(r.Dst.Bits()), Table: 252,
		Protocol: r.Protocol, Scope: r.Scope, Type: r.Type}
	if r.Table < 256 {
		m.Table = uint8(r.Table)
	}
	e := encoder{b: m.marshal()}
	e.u32(rtaTable, r.Table)
	if r.Dst.Bits() > 0 {
		e.bytes(rtaDst, ipBytes(r.Dst.Addr()))
	}
	if r.Priority != 0 {
		e.u32(rtaPriority, r.Priority)
	}
	if r.Gateway.IsValid() {
		e.bytes(rtaGateway, ipBytes(r.Gateway))
	}
	if r.Index != 0 {
		e.u32(rtaOIF, uint32(r.Index))
	}
	return e.b
}

// statsPayload encodes counters as the current kernel's 25-counter struct
// rtnl_link_stats64. The layout itself is checked against hand-written
// bytes in TestParseLinkStats64.
func statsPayload(s *LinkStats) []byte {
	var b []byte
	for _, p := range s.fields() {
		b = nativeEndian.AppendUint64(b, *p)
	}
	return b
}

// addrPayload encodes an address as the kernel reports it: IPv6 without a
// peer carries only IFA_ADDRESS.
func addrPayload(a Addr) []byte {
	local := a.Prefix.Addr()
	e := encoder{b: ifAddrmsg{Family: family(local), PrefixLen: uint8(a.Prefix.Bits()), Flags: uint8(a.Flags), Scope: a.Scope, Index: uint32(a.Index)}.marshal()}
	peer := local
	if a.Peer.IsValid() {
		peer = a.Peer
	}
	e.bytes(ifaAddress, ipBytes(peer))
	if local.Is4() || a.Peer.IsValid() {
		e.bytes(ifaLocal, ipBytes(local))
	}
	if a.Broadcast.IsValid() {
		e.bytes(ifaBroadcast, ipBytes(a.Broadcast))
	}
	e.u32(ifaFlags, a.Flags)
	return e.b
}

// fakeRTNL is a small model of the kernel's link and address tables behind
// a fakeKernel, for end-to-end tests of the request builders and parsers.
// It applies SETLINK flags the way the kernel does, honouring ifi_change.
type fakeRTNL struct {
	*fakeKernel
	links  []Link
	addrs  []Addr
	routes []Route // served by the RTM_GETROUTE dump, by family
}

func newFakeRTNL() *fakeRTNL {
	f := &fakeRTNL{fakeKernel: newFake()}
	f.links = []Link{
		{Index: 1, Name: "lo", Flags: 0x49, MTU: 65536, Type: 772, HardwareAddr: make([]byte, 6),
			Stats: &LinkStats{RxPackets: 10, TxPackets: 10, RxBytes: 840, TxBytes: 840, RxOtherhostDropped: 1}},
		// POINTOPOINT|NOARP|MULTICAST, as a fresh TUN device.
		{Index: 2, Name: "tun0", Flags: 0x1090, MTU: 1500, Type: 65534, OperState: OperDown, Stats: &LinkStats{}},
	}
	f.handle = f.serve
	return f
}

func (f *fakeRTNL) link(index int, name string) *Link {
	for i := range f.links {
		if (index != 0 && f.links[i].Index == index) || (index == 0 && f.links[i].Name == name) {
			return &f.links[i]
		}
	}
	return nil
}

func (f *fakeRTNL) fail(req message, errno unix.Errno, msg string) {
	f.deliver(0, f.errMsg(req, errno, true, extAck(msg, 0)))
}

func (f *fakeRTNL) serve(req message) {
	h := req.Header
	switch h.Type {
	case rtmGetLink:
		if h.Flags&nlmFDump == nlmFDump {
			var parts [][]byte
			for _, l := range f.links {
				parts = append(parts, f.reply(req, rtmNewLink, nlmFMulti, linkPayload(l)))
			}
			f.deliver(0, parts...)
			f.deliver(0, f.done(req, 0, 0, nil))
			return
		}
		index, attrs := f.parseLinkReq(req)
		name := ""
		for _, a := range attrs {
			if a.kind() == iflaIfname {
				name = attrString(a)
			}
		}
		l := f.link(index, name)
		if l == nil {
			f.fail(req, unix.ENODEV, "")
			return
		}
		f.deliver(0, f.reply(req, rtmNewLink, 0, linkPayload(*l)))
	case rtmSetLink:
		index, attrs := f.parseLinkReq(req)
		l := f.link(index, "")
		if l == nil {
			f.fail(req, unix.ENODEV, "")
			return
		}
		flags := nativeEndian.Uint32(req.Data[8:12])
		change := nativeEndian.Uint32(req.Data[12:16])
		if change == 0 {
			// The kernel's legacy meaning: ifi_flags is the new flag set.
			change = ^uint32(0)
			if flags == 0 {
				change = 0 // and no flags at all means no change
			}
		}
		l.Flags = l.Flags&^change | flags&change
		for _, a := range attrs {
			switch a.kind() {
			case iflaMTU:
				mtu, _ := attrU32(a)
				if mtu < 68 {
					f.fail(req, unix.EINVAL, "mtu less than device minimum")
					return
				}
				l.MTU = int(mtu)
			case iflaIfname:
				l.Name = attrString(a)
			case iflaIfalias:
				// The kernel takes the whole value, NUL or not.
				l.Alias = attrString(a)
			}
		}
		f.deliver(0, f.ack(req))
	case rtmDelLink:
		index, _ := f.parseLinkReq(req)
		for i := range f.links {
			if f.links[i].Index == index {
				f.links = append(f.links[:i], f.links[i+1:]...)
				f.deliver(0, f.ack(req))
				return
			}
		}
		f.fail(req, unix.ENODEV, "")
	case rtmGetRoute:
		fam := req.Data[0]
		for _, r := range f.routes {
			if family(r.Dst.Addr()) == fam {
				f.deliver(0, f.reply(req, rtmNewRoute, nlmFMulti, routePayload(r)))
			}
		}
		f.deliver(0, f.done(req, 0, 0, nil))
	case rtmNewAddr, rtmDelAddr:
		a, ok, err := parseAddr(req.Data)
		if err != nil || !ok {
			f.fail(req, unix.EINVAL, "bad address request")
			return
		}
		for i, have := range f.addrs {
			if have.Index == a.Index && have.Prefix == a.Prefix {
				switch {
				case h.Type == rtmDelAddr:
					f.addrs = append(f.addrs[:i], f.addrs[i+1:]...)
				case h.Flags&nlmFExcl != 0:
					f.fail(req, unix.EEXIST, "ipv4: Address already assigned")
					return
				default:
					f.addrs[i] = a
				}
				f.deliver(0, f.ack(req))
				return
			}
		}
		if h.Type == rtmDelAddr {
			f.fail(req, unix.EADDRNOTAVAIL, "")
			return
		}
		f.addrs = append(f.addrs, a)
		f.deliver(0, f.ack(req))
	case rtmGetAddr:
		for _, a := range f.addrs {
			f.deliver(0, f.reply(req, rtmNewAddr, nlmFMulti, addrPayload(a)))
		}
		f.deliver(0, f.done(req, 0, 0, nil))
	default:
		f.fail(req, unix.EOPNOTSUPP, "")
	}
}

func (f *fakeRTNL) parseLinkReq(req message) (int, []attr) {
	index := int(int32(nativeEndian.Uint32(req.Data[4:8])))
	attrs, err := parseAttrs(req.Data[sizeofIfInfomsg:])
	if err != nil {
		panic(err)
	}
	return index, attrs
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
