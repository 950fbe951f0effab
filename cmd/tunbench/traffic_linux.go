//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tundra-go/tundra/internal/netns"
	"golang.org/x/sys/unix"
)

// The traffic helpers run in this process, each on a locked OS thread
// pinned to the helper CPU, so that their CPU time can be told apart
// from the engine's (their thread ids are known) and they never take
// turns with the engine on its core.

const (
	ipv4UDPHeaders = 20 + 8
	ipv6UDPHeaders = 40 + 8
	solUDP         = 17  // SOL_UDP
	udpSegment     = 103 // UDP_SEGMENT: the socket's GSO size
	gsoSegments    = 64  // segments per GSO send (the kernel allows up to 128)
	genBatch       = 64  // messages per sendmmsg without GSO
	gsoBatch       = 8   // messages per sendmmsg with GSO (each one many segments)
)

// generator sends UDP datagrams as fast as one thread can with sendmmsg,
// from a socket inside a namespace, to addresses routed out of a TUN
// device. With gso, each datagram is a train of segments the kernel cuts
// (UDP_SEGMENT), or hands whole to a device that takes super-packets.
type generator struct {
	fd      int
	cpu     int
	segs    int // packets per message
	thread  helperThread
	sent    counter // packets (segments) the kernel accepted
	calls   counter
	errs    counter
	lastErr atomic.Value // unix.Errno
	msgs    []unix.Mmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet4
	payload []byte
	stopped atomic.Bool
	started bool
	done    chan struct{}
}

type genConfig struct {
	ns    *netns.Namespace
	dst   netip.AddrPort // flow i goes to port dst.Port()+i
	size  int            // IP packet length of each packet
	flows int
	gso   bool
	cpu   int
}

// newGenerator prepares the socket and the messages; start sends.
func (e *env) newGenerator(c genConfig) (*generator, error) {
	if !c.dst.Addr().Is4() {
		return nil, fmt.Errorf("generator: IPv4 only")
	}
	payloadLen := c.size - ipv4UDPHeaders
	g := &generator{cpu: c.cpu, segs: 1, done: make(chan struct{})}
	var connect unix.Sockaddr
	if c.flows <= 1 {
		connect = sockaddr(c.dst)
	}
	fd, err := udpSocket(c.ns, unix.AF_INET, nil, connect)
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	g.fd = fd
	e.onClose(g.close)
	setBuf(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, 4<<20)
	n := genBatch
	if c.gso {
		g.segs = min(gsoSegments, 65507/payloadLen)
		if err := unix.SetsockoptInt(fd, solUDP, udpSegment, payloadLen); err != nil {
			return nil, fmt.Errorf("generator: UDP_SEGMENT: %w", err)
		}
		n = gsoBatch
	}
	if c.flows > 1 {
		// Every flow in every batch, equally often: a batch of fewer
		// messages than flows would leave the later flows without
		// traffic (a GSO batch is 8 messages, so "16 flows" sent 8).
		n = (max(n, c.flows) + c.flows - 1) / c.flows * c.flows
	}
	g.payload = make([]byte, payloadLen*g.segs)
	g.msgs = make([]unix.Mmsghdr, n)
	g.iovs = make([]unix.Iovec, n)
	if c.flows > 1 {
		g.names = make([]unix.RawSockaddrInet4, n)
	}
	for i := range g.msgs {
		g.iovs[i].Base = &g.payload[0]
		g.iovs[i].SetLen(len(g.payload))
		h := &g.msgs[i].Hdr
		h.Iov = &g.iovs[i]
		h.SetIovlen(1)
		if g.names != nil {
			sa := &g.names[i]
			sa.Family = unix.AF_INET
			port := c.dst.Port() + uint16(i%c.flows)
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
			sa.Addr = c.dst.Addr().As4()
			h.Name = (*byte)(unsafe.Pointer(sa))
			h.Namelen = unix.SizeofSockaddrInet4
		}
	}
	return g, nil
}

// start runs the sending thread and returns once it is pinned.
func (g *generator) start() error {
	ready := make(chan error, 1)
	g.started = true
	go func() {
		defer close(g.done)
		tid, err := lockThread(g.cpu)
		if err != nil {
			ready <- err
			return
		}
		g.thread.tid.Store(int64(tid))
		ready <- nil
		g.loop()
	}()
	return <-ready
}

func (g *generator) loop() {
	// next is where the previous call stopped: sendmmsg sends a prefix of
	// the batch when the socket fills, and starting again from message 0
	// would give the first flows all the traffic under load.
	next := 0
	for !g.stopped.Load() {
		// Not RawSyscall, although sendmmsg with MSG_DONTWAIT never
		// sleeps: a goroutine looping on raw calls can hardly be
		// preempted (the calls are nosplit assembly, and the signal
		// mostly lands in the kernel), so every stop-the-world (a GC)
		// would wait for it, for seconds, freezing the engine. In a
		// system call proper, the goroutine does not hold up the world.
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&g.msgs[next])),
			uintptr(len(g.msgs)-next), unix.MSG_DONTWAIT, 0, 0)
		g.calls.inc()
		if e != 0 {
			// EAGAIN, ENOBUFS: a full queue; ECONNREFUSED: an ICMP error
			// came back earlier. The kernel is busy or noisy, not broken.
			g.errs.inc()
			g.lastErr.Store(e)
			continue
		}
		g.sent.add(uint64(n) * uint64(g.segs))
		next = (next + int(n)) % len(g.msgs)
	}
}

func (g *generator) stop() {
	if g.started && !g.stopped.Swap(true) {
		<-g.done
	}
}

func (g *generator) close() {
	g.stop()
	unix.Close(g.fd)
}

// sink receives datagrams with recvmmsg and counts them.
type sink struct {
	fd      int
	cpu     int
	thread  helperThread
	recv    counter
	stopped atomic.Bool
	started bool
	done    chan struct{}
}

// newSink binds a dual-stack socket in ns to port on every address, with
// a receive buffer large enough to ride out scheduling hiccups.
func (e *env) newSink(ns *netns.Namespace, port int, cpu int) (*sink, error) {
	fd, err := udpSocket(ns, unix.AF_INET6, &unix.SockaddrInet6{Port: port}, nil)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s := &sink{fd: fd, cpu: cpu, done: make(chan struct{})}
	e.onClose(s.close)
	setBuf(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, 16<<20)
	// A timeout, so the thread notices stop without a packet to wake it.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50_000}); err != nil {
		return nil, fmt.Errorf("sink: SO_RCVTIMEO: %w", err)
	}
	return s, nil
}

func (s *sink) start() error {
	ready := make(chan error, 1)
	s.started = true
	go func() {
		defer close(s.done)
		tid, err := lockThread(s.cpu)
		if err != nil {
			ready <- err
			return
		}
		s.thread.tid.Store(int64(tid))
		ready <- nil
		const n = 64
		msgs := make([]unix.Mmsghdr, n)
		iovs := make([]unix.Iovec, n)
		buf := make([]byte, n*2048)
		for i := range msgs {
			iovs[i].Base = &buf[i*2048]
			iovs[i].SetLen(2048)
			msgs[i].Hdr.Iov = &iovs[i]
			msgs[i].Hdr.SetIovlen(1)
		}
		for !s.stopped.Load() {
			// Blocking, through the scheduler-aware path: the thread sleeps
			// here when there is nothing to read.
			got, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msgs[0])), n,
				unix.MSG_WAITFORONE, 0, 0)
			if e == 0 {
				s.recv.add(uint64(got))
			}
		}
	}()
	return <-ready
}

func (s *sink) stop() {
	if s.started && !s.stopped.Swap(true) {
		<-s.done
	}
}

func (s *sink) close() {
	s.stop()
	unix.Close(s.fd)
}

// rrClient sends one request at a time through the device and waits for
// the reflected answer, timing each round trip.
type rrClient struct {
	fd        int
	cpu       int
	thread    helperThread
	recording atomic.Bool
	rtts      []time.Duration // written by the client thread until done
	answered  counter         // len(rtts), readable while the client runs
	done      chan struct{}
	stopped   atomic.Bool
	lost      counter
}

func (e *env) newRRClient(ns *netns.Namespace, local, remote netip.AddrPort, size int, cpu int, expect int) (*rrClient, error) {
	fd, err := udpSocket(ns, unix.AF_INET, sockaddr(local), sockaddr(remote))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &rrClient{fd: fd, cpu: cpu, done: make(chan struct{}), rtts: make([]time.Duration, 0, expect)}
	e.onClose(c.close)
	// A lost request must not hang the client: give up on it after 200ms.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		return nil, fmt.Errorf("client: SO_RCVTIMEO: %w", err)
	}
	go c.run(size - ipv4UDPHeaders)
	return c, nil
}

func (c *rrClient) run(payload int) {
	// The thread is started here but only measured from start on.
	defer close(c.done)
	tid, err := lockThread(c.cpu)
	if err != nil {
		c.lost.inc()
		return
	}
	c.thread.tid.Store(int64(tid))
	req := make([]byte, max(payload, 8))
	resp := make([]byte, 2048)
	for seq := uint64(1); !c.stopped.Load(); seq++ {
		binary.LittleEndian.PutUint64(req, seq)
		t0 := time.Now()
		if _, err := unix.Write(c.fd, req); err != nil {
			continue
		}
		for {
			n, err := unix.Read(c.fd, resp)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				c.lost.inc() // timed out: send the next one
				break
			}
			// An answer to an earlier, given-up request is skipped.
			if n >= 8 && binary.LittleEndian.Uint64(resp) == seq {
				if c.recording.Load() {
					c.rtts = append(c.rtts, time.Since(t0))
					c.answered.inc()
				}
				break
			}
		}
	}
}

// waitStarted waits until the client thread has its id.
func (c *rrClient) waitStarted() {
	for c.thread.tid.Load() == 0 {
		select {
		case <-c.done:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

func (c *rrClient) stop() {
	if !c.stopped.Swap(true) {
		<-c.done
	}
}

func (c *rrClient) close() {
	c.stop()
	unix.Close(c.fd)
}
