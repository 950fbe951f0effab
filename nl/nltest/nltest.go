// Package nltest lets code built on package nl be tested without a kernel
// or without privileges, as mdlayher/netlink's nltest does: a fake kernel
// that a test scripts request by request (Dial, NewKernel), and a wrapper
// around the real socket that answers chosen requests itself and lets the
// rest through (Intercept), to play a kernel that refuses one call.
//
// Requests and answers are Messages: a netlink header's fields and the
// payload, raw. Ack, Error and Done build the kernel's usual answers; a
// test that needs an RTM_NEWLINK or RTM_NEWROUTE payload writes it with
// the golang.org/x/sys/unix layouts. Nothing here is safe for concurrent
// use except through the nl.Conn that owns it, which serialises its calls.
package nltest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tundra-go/tundra/nl"
	"golang.org/x/sys/unix"
)

// Message is one netlink message: struct nlmsghdr's fields (nlmsg_len is
// computed) and the payload.
type Message struct {
	Type  uint16 // nlmsg_type: unix.RTM_NEWADDR, ...
	Flags uint16 // nlmsg_flags
	Seq   uint32 // nlmsg_seq
	Pid   uint32 // nlmsg_pid
	Data  []byte
}

// Func answers one request with the messages the kernel would send back,
// each in a datagram of its own, or with an error, which the Conn's next
// receive returns. Returning neither is a reply that never comes: the
// Conn's request fails as it would on a receive timeout.
type Func func(req Message) ([]Message, error)

// Netlink's header size, message types and flags
// (include/uapi/linux/netlink.h), spelled out so that the package builds
// on every platform, as package nl does.
const (
	hdrLen     = 16    // sizeof(struct nlmsghdr)
	typeError  = 2     // NLMSG_ERROR
	typeDone   = 3     // NLMSG_DONE
	flagMulti  = 0x2   // NLM_F_MULTI
	flagCapped = 0x100 // NLM_F_CAPPED: the request's payload is not echoed
)

// Marshal encodes m as it travels in a datagram, padded to 4 bytes.
func (m Message) Marshal() []byte {
	n := hdrLen + len(m.Data)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint32(b[0:4], uint32(n))
	binary.NativeEndian.PutUint16(b[4:6], m.Type)
	binary.NativeEndian.PutUint16(b[6:8], m.Flags)
	binary.NativeEndian.PutUint32(b[8:12], m.Seq)
	binary.NativeEndian.PutUint32(b[12:16], m.Pid)
	copy(b[hdrLen:], m.Data)
	return b
}

// Parse decodes the messages of one datagram, copying their payloads.
func Parse(b []byte) ([]Message, error) {
	var ms []Message
	for len(b) > 0 {
		if len(b) < hdrLen {
			return nil, fmt.Errorf("nltest: %d bytes left, a header needs %d", len(b), hdrLen)
		}
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		if n < hdrLen || n > len(b) {
			return nil, fmt.Errorf("nltest: nlmsg_len %d in %d bytes", n, len(b))
		}
		ms = append(ms, Message{
			Type:  binary.NativeEndian.Uint16(b[4:6]),
			Flags: binary.NativeEndian.Uint16(b[6:8]),
			Seq:   binary.NativeEndian.Uint32(b[8:12]),
			Pid:   binary.NativeEndian.Uint32(b[12:16]),
			Data:  append([]byte(nil), b[hdrLen:n]...),
		})
		b = b[min((n+3)&^3, len(b)):]
	}
	return ms, nil
}

// Error is the kernel's NLMSG_ERROR answer to req refusing it with errno,
// the request's header echoed (capped).
func Error(req Message, errno unix.Errno) Message {
	p := make([]byte, 4, 4+hdrLen)
	binary.NativeEndian.PutUint32(p, uint32(-int32(errno)))
	echo := req
	echo.Data = nil
	p = append(p, echo.Marshal()...)
	return Message{Type: typeError, Flags: flagCapped, Seq: req.Seq, Data: p}
}

// Ack is the kernel's acknowledgement of req: an NLMSG_ERROR of 0.
func Ack(req Message) Message { return Error(req, 0) }

// Done is the NLMSG_DONE that ends the answer to the dump req.
func Done(req Message) Message {
	return Message{Type: typeDone, Flags: flagMulti, Seq: req.Seq, Data: make([]byte, 4)}
}

// Kernel is a fake kernel end of a netlink socket, an nl.Transport: every
// request is handed to its Func, and what that returns is what the Conn
// receives, addressed to the Conn (a reply's Pid of 0 becomes the socket's
// port id) and from the kernel.
type Kernel struct {
	fn    Func
	pid   uint32
	queue []datagram
	// Requests are every request sent, in order.
	Requests []Message
	// Closed counts the calls of Close.
	Closed int
}

type datagram struct {
	b   []byte
	err error
}

var _ nl.Transport = (*Kernel)(nil)

// NewKernel returns a fake kernel answering with fn.
func NewKernel(fn Func) *Kernel { return &Kernel{fn: fn, pid: 0x7e57} }

// Dial returns a Conn whose kernel is fn.
func Dial(fn Func) *nl.Conn { return nl.NewConn(NewKernel(fn)) }

// Send implements nl.Transport.
func (k *Kernel) Send(b []byte) error {
	ms, err := Parse(b)
	if err != nil {
		return err
	}
	for _, req := range ms {
		k.Requests = append(k.Requests, req)
		answers, err := k.fn(req)
		if err != nil {
			k.queue = append(k.queue, datagram{err: err})
			continue
		}
		for _, a := range answers {
			if a.Pid == 0 {
				a.Pid = k.pid
			}
			k.queue = append(k.queue, datagram{b: a.Marshal()})
		}
	}
	return nil
}

// errNoReply is Recv's error when nothing is queued: the Conn's request
// fails as it would when the kernel never answers.
var errNoReply = fmt.Errorf("nltest: no reply queued: %w", unix.EAGAIN)

// Recv implements nl.Transport.
func (k *Kernel) Recv() ([]byte, uint32, error) {
	if len(k.queue) == 0 {
		return nil, 0, errNoReply
	}
	d := k.queue[0]
	k.queue = k.queue[1:]
	return d.b, 0, d.err
}

// PortID implements nl.Transport.
func (k *Kernel) PortID() uint32 { return k.pid }

// Close implements nl.Transport.
func (k *Kernel) Close() error { k.Closed++; return nil }

// Intercept wraps t, usually the real socket from nl.DialTransport: fn sees
// each request first. When it answers (messages or an error), that is the
// answer and the kernel never sees the request; when it returns neither,
// the request goes to t. Close closes t.
func Intercept(t nl.Transport, fn Func) nl.Transport {
	return &interceptor{t: t, fake: NewKernel(fn)}
}

type interceptor struct {
	t    nl.Transport
	fake *Kernel
}

func (i *interceptor) Send(b []byte) error {
	ms, err := Parse(b)
	if err != nil || len(ms) != 1 {
		return i.t.Send(b)
	}
	answers, ferr := i.fake.fn(ms[0])
	if ferr == nil && len(answers) == 0 {
		return i.t.Send(b)
	}
	i.fake.pid = i.t.PortID()
	i.fake.Requests = append(i.fake.Requests, ms[0])
	if ferr != nil {
		i.fake.queue = append(i.fake.queue, datagram{err: ferr})
		return nil
	}
	for _, a := range answers {
		if a.Pid == 0 {
			a.Pid = i.fake.pid
		}
		i.fake.queue = append(i.fake.queue, datagram{b: a.Marshal()})
	}
	return nil
}

func (i *interceptor) Recv() ([]byte, uint32, error) {
	if len(i.fake.queue) > 0 {
		return i.fake.Recv()
	}
	return i.t.Recv()
}

func (i *interceptor) PortID() uint32 { return i.t.PortID() }
func (i *interceptor) Close() error   { return i.t.Close() }

// ErrUnexpected is what a Func may return for a request its test did not
// plan for; the Conn's call then fails with it.
var ErrUnexpected = errors.New("nltest: unexpected request")
