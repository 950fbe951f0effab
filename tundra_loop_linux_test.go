package tundra

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/internal/packet"
	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/vnet"
	"golang.org/x/sys/unix"
)

// newLoop starts a loop that the test's cleanup closes, and checks then
// that nothing made after it is left: no descriptor, no goroutine.
func newLoop(t *testing.T) *loop.Loop {
	t.Helper()
	leakcheck.Check(t)
	l, err := loop.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		<-l.Done()
	})
	return l
}

// udpListen opens a UDP socket inside ns; the test closes it.
func udpListen(t *testing.T, ns *netnstest.Namespace, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received collects what a device's readiness callback reads: each packet
// with the header left in the headroom before it.
type received struct {
	packets chan [2][]byte
}

func collector(offset int) (*received, ReadyFunc) {
	r := &received{packets: make(chan [2][]byte, 64)}
	bufs := [][]byte{make([]byte, 2048), make([]byte, 2048)}
	sizes := make([]int, 2)
	return r, func(q *Queue, ev loop.Events) {
		for {
			n, err := q.RecvBatch(bufs, sizes, offset)
			if err != nil {
				return
			}
			for i := range n {
				r.packets <- [2][]byte{
					append([]byte(nil), bufs[i][offset:offset+sizes[i]]...),
					append([]byte(nil), bufs[i][offset-q.HeaderLen():offset]...),
				}
			}
		}
	}
}

// udpTo waits for a UDP packet to port, skipping what else the kernel
// sends (IPv6 router solicitations, MLD reports), and returns it and its
// header.
func (r *received) udpTo(t *testing.T, port uint16) (pkt, hdr []byte) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case p := <-r.packets:
			if in, err := packet.Parse(p[0]); err == nil && in.Proto == packet.ProtoUDP && in.DstPort == port {
				return p[0], p[1]
			}
		case <-deadline:
			t.Fatalf("no UDP packet to port %d came out of the device", port)
			return nil, nil
		}
	}
}

// Packets written through the loop reach a socket, and packets the kernel
// sends out of the device come back through RecvBatch, for IPv4 and IPv6,
// with and without the PI header.
func TestDeviceLoopExchange(t *testing.T) {
	for _, tc := range []struct {
		what       string
		addr, peer string
		pi         bool
		wantHeader []byte
	}{
		{"IPv4", "10.20.0.1/24", "10.20.0.2", false, nil},
		{"IPv6", "fd20::1/64", "fd20::2", false, nil},
		{"IPv4 with PI", "10.21.0.1/24", "10.21.0.2", true, []byte{0, 0, 0x08, 0x00}},
		{"IPv6 with PI", "fd21::1/64", "fd21::2", true, []byte{0, 0, 0x86, 0xdd}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			ns := netnstest.New(t)
			l := newLoop(t)
			opts := []Option{Name("tdrloop")}
			if tc.pi {
				opts = append(opts, PacketInfo())
			}
			dev := createIn(t, ns, tc.addr, opts...)
			const offset = 16
			got, onReady := collector(offset)
			if err := dev.Attach(l, onReady); err != nil {
				t.Fatal(err)
			}
			if dev.Queues()[0].Loop() != l {
				t.Fatal("Loop() is not the loop attached to")
			}
			local := netip.MustParsePrefix(tc.addr).Addr()
			peer := netip.MustParseAddr(tc.peer)
			sock := udpListen(t, ns, netip.AddrPortFrom(local, 9000).String())

			// In: three parts, one writev.
			pkt, err := packet.UDP(netip.AddrPortFrom(peer, 7000), netip.AddrPortFrom(local, 9000), []byte("into the kernel"))
			if err != nil {
				t.Fatal(err)
			}
			var sendErr error
			if err := l.Do(func() { sendErr = dev.Queues()[0].Send(pkt[:7], pkt[7:30], pkt[30:]) }); err != nil || sendErr != nil {
				t.Fatalf("Send: %v, %v", err, sendErr)
			}
			sock.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 256)
			n, from, err := sock.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "into the kernel" || from.Port() != 7000 {
				t.Fatalf("socket read %q from %v, %v", buf[:n], from, err)
			}

			// Out: the kernel routes the reply through the device.
			if _, err := sock.WriteToUDPAddrPort([]byte("out of the kernel"), netip.AddrPortFrom(peer, 7001)); err != nil {
				t.Fatal(err)
			}
			out, hdr := got.udpTo(t, 7001)
			if payload, err := packet.UDPPayload(out); err != nil || string(payload) != "out of the kernel" {
				t.Errorf("read %q, %v", payload, err)
			}
			if !bytes.Equal(hdr, tc.wantHeader) {
				t.Errorf("header in the headroom % x, want % x", hdr, tc.wantHeader)
			}

			// SendBatch writes the header in place in the headroom.
			batch := make([][]byte, 2)
			for i := range batch {
				p, _ := packet.UDP(netip.AddrPortFrom(peer, 7000), netip.AddrPortFrom(local, 9000), []byte{'b', byte('0' + i)})
				batch[i] = append(make([]byte, offset), p...)
			}
			var sent int
			if err := l.Do(func() { sent, sendErr = dev.Queues()[0].SendBatch(batch, offset) }); err != nil || sendErr != nil || sent != 2 {
				t.Fatalf("SendBatch: %d, %v, %v", sent, err, sendErr)
			}
			for i := range 2 {
				n, _, err := sock.ReadFromUDPAddrPort(buf)
				if err != nil || string(buf[:n]) != string([]byte{'b', byte('0' + i)}) {
					t.Errorf("batch packet %d: %q, %v", i, buf[:n], err)
				}
			}
			if s := l.Stats(); s.PacketsOut != 3 || s.PacketsIn < 1 {
				t.Errorf("stats: %d out, %d in", s.PacketsOut, s.PacketsIn)
			}
		})
	}
}

// The kernel refuses a packet that is not IP; the error says so, and the
// device goes on working.
func TestDeviceLoopKernelRefusal(t *testing.T) {
	ns := netnstest.New(t)
	l := newLoop(t)
	dev := createIn(t, ns, "fd22::1/64")
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	bad := make([]byte, 40) // version 0
	good, _ := packet.UDP(netip.MustParseAddrPort("[fd22::2]:1"), netip.MustParseAddrPort("[fd22::1]:9"), []byte("ok"))
	var n int
	var err error
	l.Do(func() { n, err = dev.Queues()[0].SendBatch([][]byte{good, bad, good}, 0) })
	if n != 1 || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("SendBatch: %d, %v; want 1 written, then EINVAL for the version-0 packet", n, err)
	}
	t.Logf("version-0 packet: %v", err)
	l.Do(func() { n, err = dev.Queues()[0].SendBatch([][]byte{good}, 0) })
	if n != 1 || err != nil {
		t.Fatalf("after a refusal: %d, %v", n, err)
	}
}

// Only the owning loop does I/O; an unattached device says why it refuses.
func TestDeviceIOOwnership(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, "10.23.0.1/24")
	buf := make([]byte, 64)
	_, err := dev.Queues()[0].Recv(buf)
	if !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), "attached to no loop") {
		t.Errorf("Recv unattached: %v", err)
	}
	l := newLoop(t)
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("second Attach: %v", err)
	}
	if _, err := dev.Queues()[0].Recv(buf); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Recv off the loop: %v, want ErrNotOwner", err)
	}
	if err := dev.Queues()[0].Send(buf); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Send off the loop: %v, want ErrNotOwner", err)
	}
	l.Do(func() {
		// The kernel may have sent IPv6 solicitations already: drain them.
		var err error
		for range 100 {
			if _, err = dev.Queues()[0].Recv(buf); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrWouldBlock) || !errors.Is(err, unix.EAGAIN) {
			t.Errorf("Recv on a drained device: %v, want ErrWouldBlock matching EAGAIN", err)
		}
	})
	if err := dev.Attach(l, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Attach with a nil callback: %v", err)
	}
}

// With offloads, every I/O call off the loop is refused before it touches
// the queue's loop-only state (kept super-packet, coalescer, header).
func TestOffloadIOOwnership(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, "10.27.0.1/24", Offloads(AllOffloads))
	l := newLoop(t)
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	q := dev.Queues()[0]
	big := [][]byte{make([]byte, vnet.HeaderLen+MaxPacket)}
	pkt, err := packet.UDP(netip.MustParseAddrPort("10.27.0.1:9"), netip.MustParseAddrPort("10.27.0.1:9"), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"RecvBatch": func() error { _, err := q.RecvBatch(big, []int{0}, vnet.HeaderLen); return err },
		"SendBatch": func() error {
			_, err := q.SendBatch([][]byte{append(make([]byte, vnet.HeaderLen), pkt...)}, vnet.HeaderLen)
			return err
		},
		"RecvGSO": func() error { _, _, err := q.RecvGSO(big[0]); return err },
		"SendGSO": func() error { return q.SendGSO(vnet.Header{}, pkt) },
	} {
		if err := call(); !errors.Is(err, ErrNotOwner) {
			t.Errorf("%s off the loop: %v, want ErrNotOwner", name, err)
		}
	}
}

// Closing the loop closes every queue it owns: the device disappears.
func TestLoopCloseRemovesDevice(t *testing.T) {
	ns := netnstest.New(t)
	l, err := loop.New()
	if err != nil {
		t.Fatal(err)
	}
	dev := createIn(t, ns, "fd24::1/64", Name("tdrown"), Queues(2))
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, ns, "tdrown")
	if err := dev.Close(); err != nil {
		t.Errorf("Device.Close after its loop closed: %v", err)
	}
}

// Device.Close from another goroutine detaches it from a running loop.
func TestDeviceCloseWhileAttached(t *testing.T) {
	ns := netnstest.New(t)
	l := newLoop(t)
	before := leakcheck.FDs(t)
	dev := createIn(t, ns, "10.25.0.1/24", Name("tdrclose"))
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, ns, "tdrclose")
	leakcheck.NoNewFDs(t, before)
	if err := l.Do(func() {}); err != nil {
		t.Errorf("loop broken after a device closed: %v", err)
	}
}

// AttachEach puts queue i on loop i; each queue's packets are read on its
// own loop's thread. Handoff moves a queue to the other loop without
// losing a packet, and Cancel stops its callbacks until Notify, the
// packets waiting in the kernel meanwhile.
func TestQueuesOnTheirLoops(t *testing.T) {
	ns := netnstest.New(t)
	loops := []*loop.Loop{newLoop(t), newLoop(t)}
	dev := createIn(t, ns, "10.26.0.1", Peer("10.26.0.2"), Name("tdreach"), Queues(2))
	qs := dev.Queues()

	var mu sync.Mutex
	seen := map[int]int{}    // sequence number -> how many times read
	byQueue := [2]int{}      // packets read per queue
	wrongThread := 0         // packets read off the queue's current loop
	owner := [2]*loop.Loop{} // the loop each queue should be read on
	reader := func(q *Queue, _ loop.Events) {
		buf, sizes := [][]byte{make([]byte, 2048)}, []int{0}
		for {
			n, err := q.RecvBatch(buf, sizes, 0)
			if err != nil || n == 0 {
				return
			}
			in, err := packet.Parse(buf[0][:sizes[0]])
			if err != nil || in.Proto != packet.ProtoUDP || in.DstPort != 7 {
				continue
			}
			data, err := packet.UDPPayload(buf[0][:sizes[0]])
			if err != nil || len(data) != 4 {
				t.Errorf("datagram to port 7: %v, %d bytes", err, len(data))
				continue
			}
			i := slices.Index(qs, q)
			mu.Lock()
			seen[int(binary.BigEndian.Uint32(data))]++
			byQueue[i]++
			if !owner[i].OnLoop() {
				wrongThread++
			}
			mu.Unlock()
		}
	}
	owner = [2]*loop.Loop{loops[0], loops[1]}
	if err := dev.AttachEach(loops, reader); err != nil {
		t.Fatal(err)
	}
	if qs[0].Loop() != loops[0] || qs[1].Loop() != loops[1] {
		t.Fatalf("AttachEach put the queues on %p and %p, want %p and %p", qs[0].Loop(), qs[1].Loop(), loops[0], loops[1])
	}
	next := 0
	send := func(n int) {
		t.Helper()
		// One flow per source port: the kernel spreads flows over queues.
		if err := ns.Do(func() error {
			for i := range n {
				c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 26, 0, 1), Port: 30000 + (next+i)%64}, &net.UDPAddr{IP: net.IPv4(10, 26, 0, 2), Port: 7})
				if err != nil {
					return err
				}
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], uint32(next+i))
				_, err = c.Write(b[:])
				c.Close()
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		next += n
	}
	waitAll := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			got := len(seen)
			mu.Unlock()
			if got >= next {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d datagrams read", what, got, next)
			}
		}
	}
	send(64)
	waitAll("AttachEach")
	mu.Lock()
	if byQueue[0] == 0 || byQueue[1] == 0 {
		t.Errorf("64 flows all on one queue: %v", byQueue)
	}
	mu.Unlock()

	// Queue 0 to loop 1, from its own loop.
	var herr error
	if err := loops[0].Do(func() {
		mu.Lock()
		owner[0] = loops[1]
		mu.Unlock()
		herr = qs[0].Handoff(loops[1], reader)
	}); err != nil || herr != nil {
		t.Fatalf("Handoff: %v, %v", err, herr)
	}
	// The new loop takes the queue in its next round.
	for deadline := time.Now().Add(2 * time.Second); qs[0].Loop() != loops[1]; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("2s after Handoff queue 0 is on %p, not loop 1", qs[0].Loop())
		}
	}
	send(64)
	waitAll("after Handoff")

	// Cancel both queues' callbacks: what arrives waits in the kernel.
	mu.Lock()
	before := len(seen)
	mu.Unlock()
	var cerr [2]error
	if err := loops[1].Do(func() {
		cerr[0], cerr[1] = qs[0].Cancel(loop.Readable), qs[1].Cancel(loop.Readable)
	}); err != nil || cerr[0] != nil || cerr[1] != nil {
		t.Fatalf("Cancel: %v, %v", err, cerr)
	}
	send(32)
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if len(seen) != before {
		t.Errorf("%d datagrams read with the callbacks cancelled", len(seen)-before)
	}
	mu.Unlock()
	if err := loops[1].Do(func() {
		cerr[0], cerr[1] = qs[0].Notify(loop.Readable), qs[1].Notify(loop.Readable)
	}); err != nil || cerr[0] != nil || cerr[1] != nil {
		t.Fatalf("Notify: %v, %v", err, cerr)
	}
	waitAll("after Notify")

	mu.Lock()
	defer mu.Unlock()
	for seq, n := range seen {
		if n != 1 || seq >= next {
			t.Errorf("datagram %d read %d times", seq, n)
		}
	}
	if wrongThread != 0 {
		t.Errorf("%d datagrams read off their queue's loop", wrongThread)
	}
}
