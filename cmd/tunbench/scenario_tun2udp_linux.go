//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"

	"github.com/tundra-go/tundra/internal/netns"
	"github.com/tundra-go/tundra/internal/relay"
	"github.com/tundra-go/tundra/loop"
	"golang.org/x/sys/unix"
)

// tun2udp: two namespaces joined by a veth pair, a UDP relay in each
// (what cmd/tun2udp runs), and one TCP stream from A's tunnel address to
// B's through both relays: TCP → device A → relay A → UDP over the veth →
// relay B → device B → TCP.
var (
	vethA    = netip.MustParsePrefix("10.91.0.1/24")
	vethB    = netip.MustParsePrefix("10.91.0.2/24")
	tunnelA  = netip.MustParsePrefix("10.90.0.1/24")
	tunnelB  = netip.MustParsePrefix("10.90.0.2/24")
	udpPortR = uint16(5555)
)

// relayMTU is the relays' device MTU, tun2udp's default: the veth's 1500
// less the outer IPv4 and UDP headers, rounded down as WireGuard does.
const relayMTU = 1420

// relaySpec is one relay of the pair.
type relaySpec struct {
	ns            *netns.Namespace
	name          string
	addr          netip.Prefix // the device's address
	local, remote netip.AddrPort
}

// relayEngine is an engine that has a tun2udp relay.
type relayEngine interface {
	// startRelay creates the relay's device and UDP socket in s.ns and
	// starts relaying; stop removes both.
	startRelay(s relaySpec) (runner, error)
}

// hasRelay says whether e runs in the tun2udp scenario: tundra and
// tundra-gso (with any queue count) and netpoll.
func hasRelay(e engine) bool {
	_, ok := e.(relayEngine)
	return ok
}

// startRelay is internal/relay, tun2udp's engine: one loop per device
// queue, each with its own UDP socket (SO_REUSEPORT with more than one),
// recvmmsg/sendmmsg, and runs of equal-size datagrams sent as one UDP GSO
// message; tundra-gso adds the device's offloads (super-packets read once
// and split into a GSO send; arriving segments merged into one device
// write) and UDP GRO on the sockets (a GSO train crossing the veth is read
// as one message). Its loops are not pinned one by one (relay.Config.Pin would put
// lane 0 on CPU 0, the traffic's): they inherit the confinement of every
// tunbench thread to the engine's CPU.
func (e tundraEngine) startRelay(s relaySpec) (runner, error) {
	var r *relay.Relay
	var opts []loop.Option
	if e.uring {
		opts = append(opts, loop.WithBackend(loop.BackendURing))
	}
	if e.budget > 0 {
		opts = append(opts, loop.Budget(e.budget))
	}
	err := s.ns.Do(func() error {
		var err error
		r, err = relay.Start(relay.Config{Addr: s.addr.String(), Name: s.name, MTU: relayMTU, Queues: e.nqueues(),
			Local: s.local, Remote: s.remote, PortPerLane: true, GSO: true, GRO: e.gso, Offloads: e.gso,
			LoopOptions: opts})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", s.addr, err)
	}
	for _, l := range r.Loops() {
		if b := l.Backend(); e.uring && b != loop.BackendURing {
			r.Close()
			return nil, fmt.Errorf("%s: the relay's loop runs on %v: io_uring unavailable: %v", e.name(), b, loop.URingUnavailable())
		}
	}
	return &tundraRelay{r: r}, nil
}

type tundraRelay struct {
	r       *relay.Relay
	ended   atomic.Bool
	stopErr error
}

// counters: packets relayed (the relay's own count) as written, the loops'
// reads and system calls (TUN and UDP alike).
func (t *tundraRelay) counters() engineCounters {
	c := engineCounters{syscallsKnown: true}
	for _, l := range t.r.Loops() {
		s := l.Stats()
		c.pktsIn += s.PacketsIn
		c.bytesIn += s.BytesIn
		c.bytesOut += s.BytesOut
		c.syscalls += s.Syscalls
	}
	lanes := t.r.Stats()
	for _, ls := range lanes {
		c.pktsOut += ls.TunToUDP + ls.UDPToTun
		c.errors += ls.DroppedToTun + ls.DroppedToUDP + ls.UDPSendErrors
		if len(lanes) > 1 {
			c.perQueue = append(c.perQueue, ls.TunToUDP+ls.UDPToTun)
		}
	}
	return c
}

func (t *tundraRelay) stop() error {
	if t.ended.Swap(true) {
		return t.stopErr
	}
	t.stopErr = t.r.Close()
	return t.stopErr
}

// startRelay is the same relay the way Go programs built on songgao/water
// write it: the TUN descriptor in an *os.File and a connected
// *net.UDPConn, both on Go's netpoller, and one goroutine per direction
// that reads a packet and writes it, one system call each. The sockets get
// the same 4 MiB buffers internal/relay asks for, so that the comparison
// is of the I/O, not of the tuning.
func (netpollEngine) startRelay(s relaySpec) (runner, error) {
	d, err := openTundraDev(devSpec{ns: s.ns, name: s.name, addrs: []netip.Prefix{s.addr}, mtu: relayMTU}, false, 1)
	if err != nil {
		return nil, err
	}
	fd, err := unix.FcntlInt(uintptr(d.d.Queues()[0].Fd()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("dup: %w", err)
	}
	f := os.NewFile(uintptr(fd), d.ifname())
	var conn *net.UDPConn
	err = s.ns.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(s.local), net.UDPAddrFromAddrPort(s.remote))
		return err
	})
	if err != nil {
		f.Close()
		d.close()
		return nil, fmt.Errorf("udp %s: %w", s.local, err)
	}
	conn.SetReadBuffer(4 << 20)
	conn.SetWriteBuffer(4 << 20)
	r := &netpollRelay{dev: d, f: f, conn: conn}
	r.spawn(func(st *ioStats) { r.pipe(st, f.Read, conn.Write) })
	r.spawn(func(st *ioStats) { r.pipe(st, conn.Read, f.Write) })
	return r, nil
}

type netpollRelay struct {
	dev     *tundraDev
	f       *os.File
	conn    *net.UDPConn
	stopped atomic.Bool
	stats   []*ioStats
	done    []chan struct{}
	errs    failures
	ended   atomic.Bool
	stopErr error
}

func (r *netpollRelay) spawn(work func(*ioStats)) {
	st := &ioStats{}
	done := make(chan struct{})
	r.stats = append(r.stats, st)
	r.done = append(r.done, done)
	go func() {
		defer close(done)
		work(st)
	}()
}

// pipe reads packets with read and writes each with write until stopped.
// A write the kernel refuses is counted and skipped, as is a read error
// that a connected UDP socket reports for an earlier send (ECONNREFUSED
// while the far relay was not up yet).
func (r *netpollRelay) pipe(st *ioStats, read func([]byte) (int, error), write func([]byte) (int, error)) {
	buf := make([]byte, 65536)
	for {
		n, err := read(buf)
		if err != nil {
			if r.stopped.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			st.errs.inc()
			continue
		}
		st.pktsIn.inc()
		st.bytesIn.add(uint64(n))
		if _, err := write(buf[:n]); err != nil {
			if r.stopped.Load() {
				return
			}
			st.errs.inc()
			continue
		}
		st.pktsOut.inc()
		st.bytesOut.add(uint64(n))
	}
}

// counters: as the netpoll engine's, the runtime's own calls cannot be
// counted; the scenario measures the process's read/write calls.
func (r *netpollRelay) counters() engineCounters { return sumStats(false, r.stats...) }

// stop closes the file and the socket, which wakes the goroutines parked
// on them, then removes the device.
func (r *netpollRelay) stop() error {
	if r.ended.Swap(true) {
		return r.stopErr
	}
	r.stopped.Store(true)
	r.f.Close()
	r.conn.Close()
	for _, d := range r.done {
		<-d
	}
	r.dev.close()
	r.stopErr = r.errs.err()
	return r.stopErr
}

// pairRunner is two relays measured as one engine: counters summed.
type pairRunner []runner

func (p pairRunner) counters() engineCounters {
	var c engineCounters
	for i, r := range p {
		rc := r.counters()
		c.pktsIn += rc.pktsIn
		c.pktsOut += rc.pktsOut
		c.bytesIn += rc.bytesIn
		c.bytesOut += rc.bytesOut
		c.syscalls += rc.syscalls
		c.errors += rc.errors
		if i == 0 {
			c.syscallsKnown = rc.syscallsKnown
			c.perQueue = slices.Clone(rc.perQueue)
		} else if len(rc.perQueue) == len(c.perQueue) {
			// Lane i of one relay with lane i of the other.
			for q, n := range rc.perQueue {
				c.perQueue[q] += n
			}
		}
	}
	return c
}

func (p pairRunner) stop() error {
	var errs []error
	for _, r := range p {
		errs = append(errs, r.stop())
	}
	return errors.Join(errs...)
}

// newVeth joins nsA and nsB with a veth pair, addressed a and b. The pair
// goes when the namespaces do.
func newVeth(nsA, nsB *netns.Namespace, a, b netip.Prefix) error {
	for _, cmd := range [][]string{
		{"link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", nsB.Path()},
		{"addr", "add", a.String(), "dev", "va"},
		{"link", "set", "va", "up"},
	} {
		if out, err := nsA.Output("ip", cmd...); err != nil {
			return fmt.Errorf("ip %v: %v: %s", cmd, err, out)
		}
	}
	for _, cmd := range [][]string{{"addr", "add", b.String(), "dev", "vb"}, {"link", "set", "vb", "up"}} {
		if out, err := nsB.Output("ip", cmd...); err != nil {
			return fmt.Errorf("ip %v: %v: %s", cmd, err, out)
		}
	}
	return nil
}

// runTun2UDP: one TCP stream through two relays joined by a veth pair.
func (b *bench) runTun2UDP(ctx context.Context, _ caseSpec, e engine) (s sample, err error) {
	re, ok := e.(relayEngine)
	if !ok {
		return s, fmt.Errorf("%s has no tun2udp relay", e.name())
	}
	var en env
	defer en.close()
	nsA, err := en.newNS()
	if err != nil {
		return s, err
	}
	nsB, err := en.newNS()
	if err != nil {
		return s, err
	}
	if err := newVeth(nsA, nsB, vethA, vethB); err != nil {
		return s, err
	}
	udpA, udpB := netip.AddrPortFrom(vethA.Addr(), udpPortR), netip.AddrPortFrom(vethB.Addr(), udpPortR)
	var pair pairRunner
	en.onClose(func() { pair.stop() })
	ra, err := re.startRelay(relaySpec{ns: nsA, name: "t2u0", addr: tunnelA, local: udpA, remote: udpB})
	if err != nil {
		return s, err
	}
	pair = append(pair, ra)
	rb, err := re.startRelay(relaySpec{ns: nsB, name: "t2u0", addr: tunnelB, local: udpB, remote: udpA})
	if err != nil {
		return s, err
	}
	pair = append(pair, rb)
	return b.runStream(ctx, &en, streamPath{nsA: nsA, nsB: nsB, devA: "t2u0", server: tunnelB.Addr(), r: pair})
}
