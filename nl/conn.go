package nl

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// Transport carries datagrams between a Conn and the kernel: the
// AF_NETLINK socket DialTransport opens, or a stand-in such as the fake
// kernel of package nltest, or a wrapper that answers some requests itself
// (nltest.Intercept). It need not be safe for concurrent use: Conn
// serialises access, and calls it only while it holds the Conn.
type Transport interface {
	// Send writes one datagram addressed to the kernel.
	Send(b []byte) error
	// Recv returns the next datagram whole, never truncated, with the
	// port id of its sender (0 for the kernel). It returns an error
	// rather than block forever when no datagram comes.
	Recv() (b []byte, from uint32, err error)
	// PortID is the socket's own port id: the nlmsg_pid of replies to it.
	PortID() uint32
	// Close releases the socket.
	Close() error
}

// Conn is an rtnetlink socket. Its methods are safe from any goroutine: each
// request holds the Conn for its whole round trip, so requests are sent and
// answered one at a time. The Conn acts in the network namespace it was
// dialled in, whichever thread later uses it.
type Conn struct {
	mu  sync.Mutex
	t   Transport // nil once closed
	seq uint32    // sequence number of the last request sent
}

// maxDumpAttempts bounds the retries of a dump the kernel reported
// inconsistent (NLM_F_DUMP_INTR): such a dump is redone whole, as its parts
// may mix the table's states before and after a change.
const maxDumpAttempts = 5

// Dial opens an rtnetlink socket (NETLINK_ROUTE, SOCK_CLOEXEC) in the network
// namespace of the calling OS thread. To use another namespace, call it from
// a goroutine that has locked its thread (runtime.LockOSThread) and joined
// that namespace; the Conn stays there for its whole life. On systems other
// than Linux it fails with an *Error wrapping ErrNotSupported.
func Dial() (*Conn, error) {
	t, err := DialTransport()
	if err != nil {
		return nil, err
	}
	return NewConn(t), nil
}

// DialTransport opens the rtnetlink socket Dial uses (NETLINK_ROUTE,
// SOCK_CLOEXEC, extended acks, a receive timeout), in the network
// namespace of the calling OS thread, as a Transport: for a caller that
// wraps it (nltest.Intercept) before NewConn. Errors are *Error, wrapping
// ErrNotSupported on systems other than Linux. Safe from any goroutine.
func DialTransport() (Transport, error) {
	t, err := dialTransport()
	if err != nil {
		return nil, wrap("dial", err)
	}
	return t, nil
}

// NewConn returns a Conn that carries its requests over t and owns it:
// Close closes t. Safe from any goroutine.
func NewConn(t Transport) *Conn {
	return &Conn{t: t}
}

// Close closes the socket. It waits for a request in flight on another
// goroutine to end, since closing a descriptor under a blocked recv would
// neither wake it nor be safe against the descriptor's reuse. Closing twice
// is harmless; every later request fails with ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t == nil {
		return nil
	}
	err := c.t.Close()
	c.t = nil
	if err != nil {
		return wrap("close", err)
	}
	return nil
}

// replyMode is what a request waits for.
type replyMode int

const (
	// modeAck: a change request, answered by an NLMSG_ERROR (an ack when
	// its error is 0).
	modeAck replyMode = iota
	// modeGet: a request for one object, answered by that object or by
	// an NLMSG_ERROR.
	modeGet
	// modeDump: a dump, answered by any number of NLM_F_MULTI messages
	// and an NLMSG_DONE.
	modeDump
)

// execute sends a request and returns the messages that answer it, redoing
// an interrupted dump up to maxDumpAttempts times.
func (c *Conn) execute(op string, typ, flags uint16, payload []byte, mode replyMode) ([]message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t == nil {
		return nil, &Error{Op: op, Err: ErrClosed}
	}
	attempts := 1
	if mode == modeDump {
		attempts = maxDumpAttempts
	}
	for range attempts {
		msgs, intr, err := c.roundTrip(op, typ, flags, payload, mode)
		if err != nil {
			return nil, err
		}
		if !intr {
			return msgs, nil
		}
	}
	return nil, &Error{Op: op, Errno: unix.EINTR, Err: fmt.Errorf("%w (%d attempts)", ErrDumpInterrupted, attempts)}
}

// roundTrip sends one request and reads until its answer is complete. Only
// messages from the kernel, addressed to this socket and carrying this
// request's sequence number count; others are stale replies to requests
// abandoned after an error, or forgeries, and are skipped. intr reports that
// a dump part was flagged NLM_F_DUMP_INTR.
func (c *Conn) roundTrip(op string, typ, flags uint16, payload []byte, mode replyMode) (msgs []message, intr bool, err error) {
	c.seq++
	seq := c.seq
	flags |= nlmFRequest
	switch mode {
	case modeAck:
		flags |= nlmFAck
	case modeDump:
		flags |= nlmFDump
	}
	req := marshalMessage(header{Type: typ, Flags: flags, Seq: seq}, payload)
	if err := c.t.Send(req); err != nil {
		return nil, false, wrap(op+": send", err)
	}
	pid := c.t.PortID()
	for {
		b, from, err := c.t.Recv()
		if err != nil {
			return nil, false, wrap(op+": recv", err)
		}
		if from != 0 {
			// Any process may send to our port id; only the kernel is
			// believed.
			continue
		}
		ms, err := parseMessages(b)
		if err != nil {
			return nil, false, wrap(op, err)
		}
		for _, m := range ms {
			if m.Header.Seq != seq || m.Header.Pid != pid {
				continue
			}
			if m.Header.Flags&nlmFDumpIntr != 0 {
				intr = true
			}
			switch m.Header.Type {
			case nlmsgNoop:
			case nlmsgOverrun:
				return nil, false, &Error{Op: op, Err: errors.New("kernel reported lost data (NLMSG_OVERRUN)")}
			case nlmsgError:
				st, err := parseError(m)
				if err != nil {
					return nil, false, wrap(op, err)
				}
				if st.Errno != 0 {
					return nil, false, statusError(op, st)
				}
				if mode == modeAck {
					return nil, false, nil
				}
				// An ack to a get or a dump was not asked for;
				// their own answer follows.
			case nlmsgDone:
				if mode != modeDump {
					continue
				}
				st, err := parseDone(m)
				if err != nil {
					return nil, false, wrap(op, err)
				}
				if st.Errno != 0 {
					return nil, false, statusError(op, st)
				}
				return msgs, intr, nil
			default:
				if mode == modeAck {
					continue // not asked for (an echo, say)
				}
				msgs = append(msgs, m)
				if mode == modeGet {
					return msgs, false, nil
				}
			}
		}
	}
}

// statusError reports the kernel's refusal.
func statusError(op string, st status) *Error {
	return &Error{Op: op, Errno: st.Errno, Message: st.Message, Offset: st.Offset, Err: st.TLVErr}
}

// LinkByName returns the link called name. A missing link is an *Error
// wrapping unix.ENODEV.
func (c *Conn) LinkByName(name string) (Link, error) {
	const op = "linkbyname"
	if err := validLinkName(op, name); err != nil {
		return Link{}, err
	}
	return c.getLink(op, getLinkRequest(0, name))
}

// LinkByIndex returns the link with the given index. A missing link is an
// *Error wrapping unix.ENODEV.
func (c *Conn) LinkByIndex(index int) (Link, error) {
	const op = "linkbyindex"
	if err := validIndex(op, "link index", index); err != nil {
		return Link{}, err
	}
	return c.getLink(op, getLinkRequest(index, ""))
}

func (c *Conn) getLink(op string, payload []byte) (Link, error) {
	msgs, err := c.execute(op, rtmGetLink, 0, payload, modeGet)
	if err != nil {
		return Link{}, err
	}
	for _, m := range msgs {
		if m.Header.Type == rtmNewLink {
			l, err := parseLink(m.Data)
			if err != nil {
				return Link{}, wrap(op, err)
			}
			return l, nil
		}
	}
	return Link{}, &Error{Op: op, Err: malformed("reply carries no RTM_NEWLINK")}
}

// Links returns every link of the namespace.
func (c *Conn) Links() ([]Link, error) {
	const op = "links"
	msgs, err := c.execute(op, rtmGetLink, 0, dumpLinksRequest(), modeDump)
	if err != nil {
		return nil, err
	}
	links := make([]Link, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != rtmNewLink {
			continue
		}
		l, err := parseLink(m.Data)
		if err != nil {
			return nil, wrap(op, err)
		}
		links = append(links, l)
	}
	return links, nil
}

// SetLinkUp sets IFF_UP on the link, leaving its other flags alone.
func (c *Conn) SetLinkUp(index int) error {
	return c.setFlags("setlinkup", index, true)
}

// SetLinkDown clears IFF_UP on the link, leaving its other flags alone.
func (c *Conn) SetLinkDown(index int) error {
	return c.setFlags("setlinkdown", index, false)
}

func (c *Conn) setFlags(op string, index int, up bool) error {
	if err := validIndex(op, "link index", index); err != nil {
		return err
	}
	_, err := c.execute(op, rtmSetLink, 0, setFlagsRequest(index, up), modeAck)
	return err
}

// SetLinkMTU sets the link's MTU. The kernel enforces the device's limits
// (an MTU too small for the link fails with EINVAL and an explanation), and
// removes IPv6 from a link whose MTU drops below 1280.
func (c *Conn) SetLinkMTU(index, mtu int) error {
	const op = "setlinkmtu"
	if err := validIndex(op, "link index", index); err != nil {
		return err
	}
	if mtu < 0 || uint64(mtu) > math.MaxUint32 {
		return invalid(op, "MTU %d out of range", mtu)
	}
	_, err := c.execute(op, rtmSetLink, 0, setMTURequest(index, uint32(mtu)), modeAck)
	return err
}

// RenameLink renames the link. A name in use is an *Error wrapping
// unix.EEXIST. Kernels before 6.x refuse (EBUSY) to rename a link that is
// up; recent ones (6.18 was tested) allow it.
func (c *Conn) RenameLink(index int, name string) error {
	const op = "renamelink"
	if err := validIndex(op, "link index", index); err != nil {
		return err
	}
	if err := validLinkName(op, name); err != nil {
		return err
	}
	_, err := c.execute(op, rtmSetLink, 0, renameRequest(index, name), modeAck)
	return err
}

// SetLinkAlias sets the link's alias (IFLA_IFALIAS), the free-form text
// `ip link` shows after "alias"; "" clears it. An alias must be shorter than
// 256 bytes and hold no NUL byte. Safe from any goroutine.
func (c *Conn) SetLinkAlias(index int, alias string) error {
	const op = "setlinkalias"
	if err := validIndex(op, "link index", index); err != nil {
		return err
	}
	if err := validAlias(op, alias); err != nil {
		return err
	}
	_, err := c.execute(op, rtmSetLink, 0, setAliasRequest(index, alias), modeAck)
	return err
}

// DeleteLink removes the link (RTM_DELLINK), as `ip link del` does; for a
// TUN/TAP device this works whether it is persistent or not, and its open
// fds then see the device gone. A missing link is an *Error wrapping
// unix.ENODEV; a link the kernel cannot delete (lo, a physical NIC) one
// wrapping unix.EOPNOTSUPP. Safe from any goroutine.
func (c *Conn) DeleteLink(index int) error {
	const op = "deletelink"
	if err := validIndex(op, "link index", index); err != nil {
		return err
	}
	_, err := c.execute(op, rtmDelLink, 0, deleteLinkRequest(index), modeAck)
	return err
}

// AddAddr assigns an address to a link. An address already there is an
// *Error wrapping unix.EEXIST.
func (c *Conn) AddAddr(a Addr) error {
	return c.changeAddr("addaddr", rtmNewAddr, nlmFCreate|nlmFExcl, a)
}

// ReplaceAddr assigns an address to a link like AddAddr, except that an
// address already there is not an error: the kernel updates it in place as
// far as it can (for IPv6, its flags such as IFA_F_NOPREFIXROUTE).
func (c *Conn) ReplaceAddr(a Addr) error {
	return c.changeAddr("replaceaddr", rtmNewAddr, nlmFCreate|nlmFReplace, a)
}

// DeleteAddr removes an address from a link. It is found by Index, Prefix
// and, for IPv4, Peer; Flags and Scope are ignored. A missing address is an
// *Error wrapping unix.EADDRNOTAVAIL.
func (c *Conn) DeleteAddr(a Addr) error {
	return c.changeAddr("deleteaddr", rtmDelAddr, 0, a)
}

func (c *Conn) changeAddr(op string, typ, flags uint16, a Addr) error {
	if err := a.validate(op); err != nil {
		return err
	}
	_, err := c.execute(op, typ, flags, addrRequest(a, typ == rtmNewAddr), modeAck)
	return err
}

// Addrs returns the IPv4 and IPv6 addresses of the link with the given
// index, or of every link when index is 0.
func (c *Conn) Addrs(index int) ([]Addr, error) {
	const op = "addrs"
	if index != 0 {
		if err := validIndex(op, "link index", index); err != nil {
			return nil, err
		}
	}
	msgs, err := c.execute(op, rtmGetAddr, 0, dumpAddrsRequest(), modeDump)
	if err != nil {
		return nil, err
	}
	var addrs []Addr
	for _, m := range msgs {
		if m.Header.Type != rtmNewAddr {
			continue
		}
		a, ok, err := parseAddr(m.Data)
		if err != nil {
			return nil, wrap(op, err)
		}
		if ok && (index == 0 || a.Index == index) {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// AddRoute adds a route. A route already there is an *Error wrapping
// unix.EEXIST; a route onto a link that is down, one wrapping
// unix.ENETDOWN.
func (c *Conn) AddRoute(r Route) error {
	const op = "addroute"
	if err := r.validate(op, true); err != nil {
		return err
	}
	_, err := c.execute(op, rtmNewRoute, nlmFCreate|nlmFExcl, routeRequest(r, true), modeAck)
	return err
}

// Routes returns every IPv4 and IPv6 route of every routing table (main,
// local, the tables of policy routing rules, ...), as `ip route show table
// all` lists them, in the kernel's order: IPv4 first. It makes one dump per
// family; each is redone whole if the kernel marks it interrupted by a
// concurrent change, as for the other dumps. Cached (cloned) routes are not
// included. A multipath route is listed once per next hop; see Route.
// Safe from any goroutine.
func (c *Conn) Routes() ([]Route, error) {
	const op = "routes"
	var routes []Route
	for _, fam := range []uint8{afInet, afInet6} {
		msgs, err := c.execute(op, rtmGetRoute, 0, dumpRoutesRequest(fam), modeDump)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			// A kernel without IPv6 answers the AF_INET6 dump with
			// every family's routes (its AF_UNSPEC fallback): keep
			// only the family asked for, so nothing is listed twice.
			if m.Header.Type != rtmNewRoute || len(m.Data) > 0 && m.Data[0] != fam {
				continue
			}
			rs, ok, err := parseRoutes(m.Data)
			if err != nil {
				return nil, wrap(op, err)
			}
			if ok {
				routes = append(routes, rs...)
			}
		}
	}
	return routes, nil
}

// RouteGet asks the kernel how it would route a packet to dst (RTM_GETROUTE,
// as `ip route get` does). A destination the host cannot reach is an *Error
// wrapping the kernel's errno (ENETUNREACH, EHOSTUNREACH). Safe from any
// goroutine.
func (c *Conn) RouteGet(dst netip.Addr) (RouteLookup, error) {
	const op = "routeget"
	if !dst.IsValid() {
		return RouteLookup{}, invalid(op, "dst is the zero netip.Addr")
	}
	if err := checkIP(op, "dst", dst); err != nil {
		return RouteLookup{}, err
	}
	msgs, err := c.execute(op, rtmGetRoute, 0, routeGetRequest(dst), modeGet)
	if err != nil {
		return RouteLookup{}, err
	}
	for _, m := range msgs {
		if m.Header.Type == rtmNewRoute {
			r, err := parseRouteLookup(m.Data)
			if err != nil {
				return RouteLookup{}, &Error{Op: op, Err: err}
			}
			return r, nil
		}
	}
	return RouteLookup{}, &Error{Op: op, Err: malformed("no route message in the reply")}
}

// DeleteRoute removes the route matching r's destination, table and, when
// set, link, gateway and priority, whoever added it. A missing route is an
// *Error wrapping unix.ESRCH.
func (c *Conn) DeleteRoute(r Route) error {
	const op = "deleteroute"
	if err := r.validate(op, false); err != nil {
		return err
	}
	_, err := c.execute(op, rtmDelRoute, 0, routeRequest(r, false), modeAck)
	return err
}
