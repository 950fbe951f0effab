package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/loop"
	"golang.org/x/sys/unix"
)

// Config describes a relay.
type Config struct {
	Addr   string // the device's address and prefix, e.g. "10.99.0.1/24"
	Peer   string // optional point-to-point peer
	Name   string // optional interface name
	MTU    int    // optional MTU
	Queues int    // device queues, one lane (loop, UDP socket) each; 0 means 1
	// Local is the UDP address to bind. Without PortPerLane the lanes
	// share it (SO_REUSEPORT), each connected to Remote, so what the peer
	// sends has one 4-tuple and enters through one lane.
	Local  netip.AddrPort
	Remote netip.AddrPort // the UDP peer
	// PortPerLane gives lane i its own port pair: it binds Local's port +
	// i and sends to Remote's port + i. Traffic from the peer then enters
	// on the lane its flow left by at the peer, so both directions spread
	// over the queues, and the device's flow steering (which follows the
	// queue a flow was last written on) keeps each flow on one queue
	// both ways. Both relays must use the same Queues.
	PortPerLane bool
	GSO         bool // coalesce equal-size runs to the peer with UDP_SEGMENT
	// GRO has the kernel coalesce what arrives from the peer (UDP_GRO):
	// a UDP_SEGMENT train crosses a veth or loopback whole and is read as
	// one message, which the lane splits into its buffers.
	GRO bool
	// Offloads gives the device TCP and UDP segmentation offloads
	// (tundra.Offloads): the kernel hands over super-packets, each read
	// once and split into the datagrams sent on (with GSO, in one
	// UDP_SEGMENT message), and the packets arriving from the peer are
	// merged back into super-packets, one device write each.
	Offloads bool
	Pin      bool // pin lane i's loop to CPU i
	// LoopOptions are given to every lane's loop (loop.WithBackend to
	// run them on io_uring, loop.Budget).
	LoopOptions []loop.Option
	// Observe, when set, sees every packet a lane moves, on that lane's
	// loop thread: toUDP tells the direction. pkt is only valid during the
	// call. For tests and taps; nil costs nothing.
	Observe func(lane int, toUDP bool, pkt []byte)
}

// batch is the most packets a lane moves per call.
const batch = loop.MaxUDPBatch

// LaneStats counts what one lane moved. Read with Relay.Stats from any
// goroutine.
type LaneStats struct {
	TunToUDP, UDPToTun uint64 // packets relayed
	DroppedToUDP       uint64 // packets the UDP socket would not take (full)
	DroppedToTun       uint64 // datagrams the device would not take (full, or not IP)
	UDPSendErrors      uint64 // datagrams the kernel refused (e.g. no route)
}

// packetQueue is what a lane needs of its device queue: *tundra.Queue in
// a relay, a tuntest.Queue in the lanes' unit tests, which need neither
// a device nor CAP_NET_ADMIN.
type packetQueue interface {
	RecvBatch(bufs [][]byte, sizes []int, offset int) (int, error)
	SendBatch(bufs [][]byte, offset int) (int, error)
}

type lane struct {
	idx   int
	relay *Relay
	q     packetQueue
	u     *loop.UDPConn
	l     *loop.Loop // the lane's loop: its callbacks run there

	// Loop-thread state. off is the headroom before each packet: the
	// device's virtio-net header with offloads, else 0.
	off          int
	tbufs, ubufs [][]byte
	tsizes       []int
	usizes       []int
	out          [][]byte

	tunToUDP, udpToTun, dropToUDP, dropToTun, udpErrs atomic.Uint64
}

// Relay is a running relay. Its methods are safe from any goroutine.
type Relay struct {
	cfg   Config
	dev   *tundra.Device
	group *loop.Group
	lanes []*lane
}

// Start creates the device (in the calling thread's network namespace,
// like the UDP sockets), one loop and one UDP socket per queue, and starts
// relaying. On error nothing is left behind.
func Start(cfg Config) (_ *Relay, err error) {
	if cfg.Queues <= 0 {
		cfg.Queues = 1
	}
	if !cfg.Local.IsValid() || !cfg.Remote.IsValid() {
		return nil, errors.New("relay: local and remote UDP addresses are required")
	}
	if cfg.Local.Addr().Is4() != cfg.Remote.Addr().Is4() {
		return nil, fmt.Errorf("relay: local %v and remote %v are of different families", cfg.Local, cfg.Remote)
	}
	if cfg.PortPerLane {
		for _, ap := range []netip.AddrPort{cfg.Local, cfg.Remote} {
			if ap.Port() == 0 || int(ap.Port())+cfg.Queues-1 > 65535 {
				return nil, fmt.Errorf("relay: with a port per lane, %v needs ports %d..%d, which must be 1..65535", ap, ap.Port(), int(ap.Port())+cfg.Queues-1)
			}
		}
	}
	opts := []tundra.Option{tundra.Queues(cfg.Queues)}
	if cfg.Offloads {
		opts = append(opts, tundra.Offloads(tundra.AllOffloads))
	}
	if cfg.Peer != "" {
		opts = append(opts, tundra.Peer(cfg.Peer))
	}
	if cfg.Name != "" {
		opts = append(opts, tundra.Name(cfg.Name))
	}
	if cfg.MTU != 0 {
		opts = append(opts, tundra.MTU(cfg.MTU))
	}
	dev, err := tundra.Create(cfg.Addr, opts...)
	if err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, dev: dev}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// Every socket of the lanes is opened now, on this thread: they must be
	// in the caller's namespace.
	fds := make([]int, cfg.Queues)
	for i := range fds {
		fds[i] = -1
	}
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for i := range fds {
		local, remote, shared := cfg.Local, cfg.Remote, cfg.Queues > 1
		if cfg.PortPerLane {
			local = netip.AddrPortFrom(local.Addr(), local.Port()+uint16(i))
			remote = netip.AddrPortFrom(remote.Addr(), remote.Port()+uint16(i))
			shared = false
		}
		if fds[i], err = udpSocket(local, remote, shared); err != nil {
			return nil, err
		}
	}
	if r.group, err = loop.NewGroup(cfg.Queues, cfg.Pin, cfg.LoopOptions...); err != nil {
		return nil, err
	}
	loops := r.group.Loops()
	for i, q := range dev.Queues() {
		ln, err := r.addLane(q, q.HeaderLen(), loops[i], fds[i])
		if err != nil {
			return nil, err
		}
		fds[i] = -1 // the loop owns it now
		if err := q.Attach(loops[i], func(*tundra.Queue, loop.Events) { ln.fromTun() }); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addLane makes the next lane: q's packets go to the UDP socket fd and
// back; l owns fd once addLane succeeds (on error it is still the
// caller's). off is q's headroom. The caller arranges for fromTun to run
// on l when q is readable.
func (r *Relay) addLane(q packetQueue, off int, l *loop.Loop, fd int) (*lane, error) {
	ln := &lane{idx: len(r.lanes), relay: r, q: q, l: l, off: off}
	ln.tbufs, ln.tsizes = buffers(ln.off + tundra.MaxPacket)
	ln.ubufs, ln.usizes = buffers(ln.off + tundra.MaxPacket)
	ln.out = make([][]byte, 0, batch)
	u, err := l.AttachUDP(fd, loop.UDPConfig{GSO: r.cfg.GSO, GRO: r.cfg.GRO, OnReady: ln.fromUDP})
	if err != nil {
		return nil, err
	}
	ln.u = u
	r.lanes = append(r.lanes, ln)
	return ln, nil
}

func buffers(size int) ([][]byte, []int) {
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, batch)
}

func udpSocket(local, remote netip.AddrPort, reusePort bool) (int, error) {
	family := unix.AF_INET6
	if local.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("relay: udp socket: %w", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("relay: %s: %w", op, err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	// Deep socket buffers absorb bursts the loop has not drained yet; the
	// kernel caps them at net.core.[rw]mem_max.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	if err := unix.Bind(fd, sockaddr(local)); err != nil {
		return fail("bind "+local.String(), err)
	}
	if err := unix.Connect(fd, sockaddr(remote)); err != nil {
		return fail("connect "+remote.String(), err)
	}
	return fd, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// fromTun relays what the device sends to the UDP peer. Loop thread.
func (ln *lane) fromTun() {
	for {
		n, err := ln.q.RecvBatch(ln.tbufs, ln.tsizes, ln.off)
		if err != nil {
			return // ErrWouldBlock: armed again
		}
		ln.out = ln.out[:0]
		for i := range n {
			pkt := ln.tbufs[i][ln.off : ln.off+ln.tsizes[i]]
			if obs := ln.relay.cfg.Observe; obs != nil {
				obs(ln.idx, true, pkt)
			}
			ln.out = append(ln.out, pkt)
		}
		ln.sendUDP()
		if n < len(ln.tbufs) {
			return
		}
	}
}

func (ln *lane) sendUDP() {
	for out := ln.out; len(out) > 0; {
		sent, err := ln.u.SendBatch(out, nil, 0)
		ln.tunToUDP.Add(uint64(sent))
		if err == nil {
			return
		}
		if errors.Is(err, loop.ErrWouldBlock) {
			// The socket is full: drop the rest, as a router would, rather
			// than hold the device's packets.
			ln.dropToUDP.Add(uint64(len(out) - sent))
			return
		}
		ln.udpErrs.Add(1)
		out = out[sent+1:]
	}
}

// fromUDP relays what the peer sends into the device. Loop thread.
func (ln *lane) fromUDP(u *loop.UDPConn, _ loop.Events) {
	for softErrors := 0; ; {
		n, err := u.RecvBatch(ln.ubufs, ln.usizes, nil, ln.off)
		if errors.Is(err, loop.ErrWouldBlock) {
			return // armed again
		}
		if err != nil {
			// A connected UDP socket reports ICMP errors for earlier sends
			// (ECONNREFUSED while the peer was not listening yet) once, on
			// the next receive: count it and read on. Past a few in a row,
			// look again next round rather than spin.
			ln.udpErrs.Add(1)
			if softErrors++; softErrors > 8 {
				u.Notify(loop.Readable)
				return
			}
			continue
		}
		ln.out = ln.out[:0]
		for i := range n {
			pkt := ln.ubufs[i][:ln.off+ln.usizes[i]] // headroom kept for the device's header
			if obs := ln.relay.cfg.Observe; obs != nil {
				obs(ln.idx, false, pkt[ln.off:])
			}
			ln.out = append(ln.out, pkt)
		}
		for out := ln.out; len(out) > 0; {
			sent, err := ln.q.SendBatch(out, ln.off)
			ln.udpToTun.Add(uint64(sent))
			if err == nil {
				break
			}
			if errors.Is(err, loop.ErrWouldBlock) {
				ln.dropToTun.Add(uint64(len(out) - sent))
				break
			}
			ln.dropToTun.Add(1) // not an IP packet: the device refused it
			out = out[sent+1:]
		}
		if n < len(ln.ubufs) {
			return
		}
	}
}

// Device is the relay's TUN device.
func (r *Relay) Device() *tundra.Device { return r.dev }

// UDPOffloads reports whether the lanes' sockets send with UDP
// segmentation and receive with GRO: what the kernel granted of
// Config.GSO and Config.GRO.
func (r *Relay) UDPOffloads() (gso, gro bool) {
	if len(r.lanes) == 0 {
		return false, false
	}
	u := r.lanes[0].u
	return u.GSO(), u.GRO()
}

// Loops are the lanes' loops, lane order.
func (r *Relay) Loops() []*loop.Loop { return r.group.Loops() }

// Stats returns each lane's counters. Each lane's are read on its loop,
// between callbacks: a callback counts a batch after writing it, so a
// reader who has seen a packet arrive (a ping's reply) finds it counted.
// A lane whose loop has stopped is read as it was left.
func (r *Relay) Stats() []LaneStats {
	out := make([]LaneStats, len(r.lanes))
	for i, ln := range r.lanes {
		read := func() {
			out[i] = LaneStats{
				TunToUDP: ln.tunToUDP.Load(), UDPToTun: ln.udpToTun.Load(),
				DroppedToUDP: ln.dropToUDP.Load(), DroppedToTun: ln.dropToTun.Load(),
				UDPSendErrors: ln.udpErrs.Load(),
			}
		}
		if ln.l.Do(read) != nil {
			read()
		}
	}
	return out
}

// CloseLane closes one lane's loop, and with it that lane's queue and
// socket; the other lanes go on.
func (r *Relay) CloseLane(i int) error {
	if i < 0 || i >= len(r.lanes) {
		return fmt.Errorf("relay: no lane %d", i)
	}
	return r.group.Loops()[i].Close()
}

// Close stops every lane and removes the device.
func (r *Relay) Close() error {
	var errs []error
	if r.group != nil {
		errs = append(errs, r.group.Close())
	}
	errs = append(errs, r.dev.Close())
	return errors.Join(errs...)
}
