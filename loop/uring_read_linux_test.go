package loop

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tests of the io_uring backend's reads through a multishot read into a
// PacketFD's buffer ring (uring_read_linux.go).

// seqPacket is packet i of a test stream: its sequence number, then bytes
// that depend on it, so that a packet copied from the wrong buffer shows.
func seqPacket(i uint32) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint32(b, i)
	for j := 4; j < len(b); j++ {
		b[j] = byte(i) ^ byte(j*37)
	}
	return b
}

// writeSeqs sends packets from..to-1 on fd, waiting while the peer's
// queue is full.
func writeSeqs(t *testing.T, fd int, from, to uint32) {
	t.Helper()
	sendEach(t, "packet", from, to, func(b []byte) error {
		_, err := unix.Write(fd, b)
		return err
	})
}

// sendEach sends packets from..to-1 (what names them in errors) with
// send, waiting while it finds the queue full (EAGAIN, ENOBUFS), for 5 s
// at most.
func sendEach(t *testing.T, what string, from, to uint32, send func([]byte) error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for i := from; i < to; {
		err := send(seqPacket(i))
		switch {
		case err == nil:
			i++
		case err == unix.EAGAIN || err == unix.ENOBUFS:
			if time.Now().After(deadline) {
				t.Fatalf("queue stayed full at %s %d", what, i)
			}
			time.Sleep(time.Millisecond)
		default:
			t.Fatalf("send %s %d: %v", what, i, err)
		}
	}
}

// growSendBuffer lets fd's socket queue many small datagrams (AF_UNIX
// datagrams are charged to the sender's buffer until they are read).
func growSendBuffer(fd int) {
	const size = 4 << 20
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, size) // capped at wmem_max
	}
}

// seqLog collects a test stream's packets as a PacketFD's callback reads
// them.
type seqLog struct {
	t   *testing.T
	mu  sync.Mutex
	got []uint32
}

// drain reads p with RecvBatch until it runs dry (or the round's budget
// is spent; the callback is armed either way), checking each packet's
// content. Loop-only.
func (s *seqLog) drain(p *PacketFD) {
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes := make([]int, len(bufs))
	for {
		n, err := p.RecvBatch(bufs, sizes, 0)
		s.mu.Lock()
		for i := range n {
			s.add(bufs[i][:sizes[i]], "packet")
		}
		s.mu.Unlock()
		if !s.more(n, len(bufs), err) {
			return
		}
	}
}

// add checks that b is the test packet its sequence number says and
// records it; what names it in errors. It reports whether b had a
// sequence number at all. The caller holds s.mu.
func (s *seqLog) add(b []byte, what string) (uint32, bool) {
	if len(b) < 4 {
		s.t.Errorf("%s of %d bytes", what, len(b))
		return 0, false
	}
	seq := binary.BigEndian.Uint32(b)
	if want := seqPacket(seq); string(b) != string(want) {
		s.t.Errorf("%s %d: % x, want % x", what, seq, b, want)
	}
	s.got = append(s.got, seq)
	return seq, true
}

// more reports whether a drain calls RecvBatch again after one that
// returned n packets into size buffers, and err.
func (s *seqLog) more(n, size int, err error) bool {
	switch {
	case errors.Is(err, ErrWouldBlock):
		return false
	case err != nil:
		s.t.Errorf("RecvBatch: %v", err)
		return false
	}
	return n == size
}

func (s *seqLog) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// wait waits for n packets and checks they are 0..n-1 in order: none
// lost, duplicated or reordered.
func (s *seqLog) wait(n int) {
	s.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.count() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.t.Fatalf("timed out waiting for %d packets: received %d: %v", n, len(s.got), s.got)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) != n {
		s.t.Errorf("received %d packets, want %d", len(s.got), n)
	}
	for i, seq := range s.got {
		if seq != uint32(i) {
			s.t.Fatalf("packet %d has sequence %d: lost, duplicated or reordered (got %v)", i, seq, s.got)
		}
	}
}

// hold blocks l until the returned function is called, so that what is
// written meanwhile is all there when it next waits.
func hold(t *testing.T, l *Loop) (release func()) {
	t.Helper()
	ch := make(chan struct{})
	held := make(chan struct{})
	if err := l.Post(func() { close(held); <-ch }); err != nil {
		t.Fatal(err)
	}
	<-held
	return func() { close(ch) }
}

// mapped reports whether the n bytes at addr are all mapped in this
// process (mincore fails with ENOMEM on a page that is not).
func mapped(t *testing.T, addr, n uintptr) bool {
	t.Helper()
	vec := make([]byte, (n+4095)/4096)
	_, _, e := unix.Syscall(unix.SYS_MINCORE, addr, n, uintptr(unsafe.Pointer(&vec[0])))
	switch e {
	case 0:
		return true
	case unix.ENOMEM:
		return false
	}
	t.Fatalf("mincore: %v", e)
	return false
}

// On io_uring a PacketFD's packets are read by the kernel into its buffer
// ring and RecvBatch copies them out, in order and intact, with no system
// call per packet: the loop's stats count only its waits, fewer system
// calls than packets, where an epoll loop doing the same reads each
// packet with a read(2) of its own.
func TestURingReadsThroughRing(t *testing.T) {
	checkLeaks(t)
	const n = 50
	for _, c := range linuxBackends {
		t.Run(c.name, func(t *testing.T) {
			l := c.new(t)
			a, b := dgramPair(t)
			closeLater(t, b)
			log := &seqLog{t: t}
			p := attach(t, l, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) { log.drain(p) }})
			t.Cleanup(func() { p.Close() })
			onLoop(t, l, func() {
				if c.name == "uring" && (p.ring == nil || p.pollIn != 0) {
					t.Errorf("on io_uring: ring %v, pollIn %v; want a ring and no Readable poll", p.ring != nil, p.pollIn)
				}
				if c.name == "epoll" && (p.ring != nil || p.pollIn != Readable) {
					t.Errorf("on epoll: ring %v, pollIn %v; want no ring and a Readable poll", p.ring != nil, p.pollIn)
				}
			})
			// All n queued before the loop looks: one wait takes them.
			release := hold(t, l)
			writeSeqs(t, b, 0, n)
			release()
			log.wait(n)
			checkReadCalls(t, l, c.name, n, "packets")
		})
	}
}

// More packets than the ring has buffers, while nobody reads: the ring
// fills, the kernel ends the read for want of a buffer (ENOBUFS) and the
// rest wait in the socket. Once RecvBatch gives buffers back the read is
// armed again, and every packet arrives, in order, none lost or
// duplicated.
func TestURingReadENOBUFSRecovery(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t)
	u := l.p.(*uring)
	a, b := dgramPair(t)
	closeLater(t, b)
	growSendBuffer(b)
	const total = 600
	log := &seqLog{t: t}
	var reading atomic.Bool
	var callbacks atomic.Int32
	p := attach(t, l, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) {
		callbacks.Add(1)
		if reading.Load() {
			log.drain(p)
		}
	}})
	t.Cleanup(func() { p.Close() })
	writeSeqs(t, b, 0, total)
	starved := waitRingStarved(t, l, p)
	if callbacks.Load() == 0 {
		t.Error("no callback for the packets in the ring")
	}
	reading.Store(true)
	onLoop(t, l, func() { p.Notify(Readable) })
	log.wait(total)
	onLoop(t, l, func() {
		if u.starved < starved {
			t.Errorf("starved count went from %d to %d", starved, u.starved)
		}
		if p.ring.starved || p.ring.req == 0 || pendingPackets(p) != 0 {
			t.Errorf("after the drain: starved %v, request %d, %d pending; want the read armed, nothing pending", p.ring.starved, p.ring.req, pendingPackets(p))
		}
	})
	if s := l.Stats(); s.PacketsIn != total {
		t.Errorf("stats count %d packets in, want %d", s.PacketsIn, total)
	}
	t.Logf("starved %d times", starved)
	// And the read goes on.
	writeSeqs(t, b, total, total+5)
	log.wait(total + 5)
}

// The kernel ends a multishot read whose completion finds the completion
// queue full (a last completion, without IORING_CQE_F_MORE, carrying a
// packet, kept on the overflow list). With a queue of 8 completions
// (MaxEvents(4)) and 64 packets waiting at once, it does; the backend
// keeps that packet and arms the read again at once, and every packet
// arrives in order, later ones too.
func TestURingReadRearmAfterKernelEnd(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t, MaxEvents(4))
	u := l.p.(*uring)
	a, b := dgramPair(t)
	closeLater(t, b)
	log := &seqLog{t: t}
	p := attach(t, l, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) { log.drain(p) }})
	t.Cleanup(func() { p.Close() })
	var before uint64
	onLoop(t, l, func() { before = u.rearms })
	const n = 64
	release := hold(t, l)
	writeSeqs(t, b, 0, n)
	release()
	log.wait(n)
	var rearms, starved uint64
	onLoop(t, l, func() { rearms, starved = u.rearms-before, u.starved })
	if rearms == 0 {
		t.Errorf("the read was not ended by the kernel and re-armed (starved %d): the test did not overflow the completion queue", starved)
	}
	t.Logf("%d re-arms", rearms)
	writeSeqs(t, b, n, n+10)
	log.wait(n + 10)
}

// Closing a PacketFD whose ring holds packets and whose read is armed,
// from another goroutine, from its own callback, or by closing its loop:
// the descriptor is closed, the buffers unmapped, and the uring keeps no
// request for it.
func TestURingReadCloseInFlight(t *testing.T) {
	t.Run("other goroutine", func(t *testing.T) {
		f := newInFlight(t, func(*PacketFD, Events) {})
		if err := f.p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		f.gone(t, "Close")
		f.released(t)
	})

	t.Run("own callback", func(t *testing.T) {
		var closeNow atomic.Bool
		type result struct {
			err            error
			pending, armed int
		}
		closed := make(chan result, 1)
		f := newInFlight(t, func(p *PacketFD, ev Events) {
			if !closeNow.Load() {
				return
			}
			r := result{pending: pendingPackets(p), armed: int(p.ring.req)}
			r.err = p.Close()
			closed <- r
		})
		closeNow.Store(true)
		onLoop(t, f.l, func() { f.p.Notify(Readable) })
		var r result
		select {
		case r = <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("callback did not run")
		}
		if r.err != nil {
			t.Fatalf("Close in the callback: %v", r.err)
		}
		if r.pending != inFlightPending || r.armed == 0 {
			t.Errorf("at the close: %d pending, request %d; want %d pending and the read armed", r.pending, r.armed, inFlightPending)
		}
		f.gone(t, "Close in its callback")
		f.released(t)
	})

	t.Run("loop close", func(t *testing.T) {
		f := newInFlight(t, func(*PacketFD, Events) {})
		if err := f.l.Close(); err != nil {
			t.Fatalf("loop Close: %v", err)
		}
		// The loop has stopped: its state may be read here.
		f.gone(t, "its loop closed")
		f.unmapped(t)
		if n := f.l.p.(*uring).inflight; n != 0 {
			t.Errorf("%d requests in flight after the loop closed", n)
		}
		if err := f.p.Close(); err != nil {
			t.Errorf("PacketFD Close after its loop closed: %v", err)
		}
	})
}

// inFlightPending is how many packets an inFlight's ring holds.
const inFlightPending = 5

// inFlight is a PacketFD on a uring loop of its own with packets pending
// in its ring and its read armed, about to be closed.
type inFlight struct {
	l      *Loop
	a      int // the PacketFD's descriptor
	p      *PacketFD
	before int // the uring's requests in flight before the attach
	// buf and size: where the ring's buffers were mapped.
	buf, size uintptr
}

func newInFlight(t *testing.T, onReady ReadyFunc) *inFlight {
	t.Helper()
	checkLeaks(t)
	f := &inFlight{l: newURingLoop(t)}
	a, b := dgramPair(t)
	closeLater(t, b)
	f.a = a
	u := f.l.p.(*uring)
	onLoop(t, f.l, func() { f.before = u.inflight })
	f.p = attach(t, f.l, a, PacketConfig{OnReady: onReady})
	writeSeqs(t, b, 0, inFlightPending)
	waitPending(t, f.l, f.p, inFlightPending)
	var req uint32
	var attached bool
	onLoop(t, f.l, func() {
		req, attached = f.p.ring.req, f.p.ring.u == u
		f.buf, f.size = uintptr(unsafe.Pointer(&f.p.ring.bufMem[0])), uintptr(len(f.p.ring.bufMem))
	})
	if req == 0 || !attached {
		t.Fatalf("ring's read not armed: request %d, attached %v", req, attached)
	}
	if !mapped(t, f.buf, f.size) {
		t.Fatal("mincore: the ring's buffers are not mapped before the close")
	}
	return f
}

// gone checks that the descriptor is closed and the buffers unmapped
// after what happened (for the messages).
func (f *inFlight) gone(t *testing.T, after string) {
	t.Helper()
	if isOpen(f.a) {
		t.Error("descriptor open after " + after)
	}
	if mapped(t, f.buf, f.size) {
		t.Error("the ring's buffers are still mapped after " + after)
	}
}

// unmapped checks that the PacketFD let go of its ring. On the loop, or
// after it stopped.
func (f *inFlight) unmapped(t *testing.T) {
	t.Helper()
	r := f.p.ring
	if r.ringMem != nil || r.bufMem != nil || r.u != nil {
		t.Errorf("after Close: ring mapped %v, buffers mapped %v, attached %v", r.ringMem != nil, r.bufMem != nil, r.u != nil)
	}
}

// released waits until the uring holds no more requests than before the
// attach, then checks the ring was let go of.
func (f *inFlight) released(t *testing.T) {
	t.Helper()
	u := f.l.p.(*uring)
	var now int
	waitFor(t, "the uring's requests for the PacketFD to end", func() bool {
		onLoop(t, f.l, func() { now = u.inflight })
		return now == f.before
	})
	onLoop(t, f.l, func() { f.unmapped(t) })
}

// A handoff takes the packets already read into the ring along: the new
// owner, on io_uring or on epoll, reads them first, in order and intact,
// then the ones that came during the handoff and later.
func TestURingReadHandoffKeepsPending(t *testing.T) {
	for _, to := range handoffTargets {
		t.Run(to.name, func(t *testing.T) {
			checkLeaks(t)
			la := newURingLoop(t)
			lb := to.new(t)
			a, b := dgramPair(t)
			closeLater(t, b)
			const early, late, later = 20, 30, 10
			var readOnA atomic.Int32
			p := attach(t, la, a, PacketConfig{OnReady: func(*PacketFD, Events) { readOnA.Add(1) }})
			t.Cleanup(func() { p.Close() })
			writeSeqs(t, b, 0, early)
			waitPending(t, la, p, early)
			// The new loop takes the PacketFD only once released: packets
			// written meanwhile are read (on io_uring into buffers of the
			// ring) as it lands, before its callback has read the early
			// ones, which must be in buffers the kernel was not lent.
			log := &seqLog{t: t}
			release := hold(t, lb)
			var err error
			onLoop(t, la, func() { err = p.Handoff(lb, func(p *PacketFD, ev Events) { log.drain(p) }) })
			if err != nil {
				release()
				t.Fatalf("Handoff: %v", err)
			}
			writeSeqs(t, b, early, early+late)
			release()
			log.wait(early + late)
			// And later ones.
			writeSeqs(t, b, early+late, early+late+later)
			log.wait(early + late + later)
			checkHandedOff(t, la, lb, p, early+late+later, p.Close, a)
		})
	}
}

// On a kernel without multishot reads (before 6.12 for them) a PacketFD
// on the io_uring backend has no ring: readiness polls tell of packets and
// each is read with read(2), which still delivers them all.
func TestURingReadNoMultishotFallback(t *testing.T) {
	checkLeaks(t)
	saved := noReadMultishot
	noReadMultishot = true
	t.Cleanup(func() { noReadMultishot = saved })
	checkReadFallback(t, newURingLoop(t), func(l *Loop) {
		if u := l.p.(*uring); u.readMultishot {
			t.Error("noReadMultishot set, yet the uring uses multishot reads")
		}
	})
}

// Where the kernel refuses to register a PacketFD's buffer ring (here:
// the ring's buffer group ids used up; for real, locked memory at its
// limit), the PacketFD is attached all the same, with readiness and
// read(2).
func TestURingReadRingRefusedFallback(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t)
	onLoop(t, l, func() {
		u := l.p.(*uring)
		u.nextGroup, u.freeGroups = ^uint16(0), nil
	})
	checkReadFallback(t, l, func(*Loop) {})
}

// checkReadFallback attaches a PacketFD to l, checks (with more, on the
// loop) that it reads without a ring, and that packets still come.
func checkReadFallback(t *testing.T, l *Loop, more func(*Loop)) {
	t.Helper()
	a, b := dgramPair(t)
	closeLater(t, b)
	log := &seqLog{t: t}
	p := attach(t, l, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) { log.drain(p) }})
	t.Cleanup(func() { p.Close() })
	onLoop(t, l, func() {
		more(l)
		if p.ring != nil || p.pollIn != Readable {
			t.Errorf("ring %v, pollIn %v; want no ring and a Readable poll", p.ring != nil, p.pollIn)
		}
	})
	const n = 20
	writeSeqs(t, b, 0, n)
	log.wait(n)
	if s := l.Stats(); s.Syscalls < n {
		t.Errorf("%d system calls for %d packets read with read(2)", s.Syscalls, n)
	}
}

// Detaching a ring (Close from a callback) collects completions while the
// loop is still delivering a round: those of other registrations must
// reach them in the next round, not be dropped. A pipe written just before
// the close still gets its handler called.
func TestURingDetachKeepsOthersReadiness(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	p := attach(t, l, a, PacketConfig{OnReady: func(*PacketFD, Events) {}})
	r, w := pipe(t)
	closeLater(t, w)
	called := make(chan struct{}, 1)
	if _, err := l.Register(r, Registration{Events: Readable, Handler: func(Events) {
		select {
		case called <- struct{}{}:
		default:
		}
	}}); err != nil {
		t.Fatal(err)
	}
	onLoop(t, l, func() {
		mustWrite(t, w, []byte("x"))
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("the pipe's handler never ran: its readiness was dropped by the ring's detach")
	}
}

// A read of 0 bytes (the end of a stream) is handed out once as a read of
// 0, and the read is armed again only by the next read, not at once: an
// end of file would otherwise bring the loop a completion per round,
// forever.
func TestURingReadEndOfFile(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fds[0], fds[1]
	hangup := make(chan Events, 1)
	p := attach(t, l, a, PacketConfig{OnReady: func(_ *PacketFD, ev Events) {
		select {
		case hangup <- ev:
		default:
		}
	}})
	mustWrite(t, b, []byte("last words"))
	unix.Close(b)
	select {
	case ev := <-hangup:
		if ev&Readable == 0 {
			t.Errorf("callback with %v, want Readable", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no callback after the peer closed")
	}
	waitFor(t, "the end of the stream to be read into the ring", func() bool {
		eof := false
		onLoop(t, l, func() { deliver(l); eof = p.ring.eof })
		return eof
	})
	before := l.Stats()
	time.Sleep(50 * time.Millisecond) // the loop idles: no completion per round
	if s := l.Stats(); s.Rounds-before.Rounds > 5 {
		t.Errorf("%d loop rounds in 50ms at end of file, want an idle loop", s.Rounds-before.Rounds)
	}
	onLoop(t, l, func() {
		buf := make([]byte, 64)
		n, err := p.Recv(buf)
		if err != nil || string(buf[:n]) != "last words" {
			t.Errorf("Recv: %q, %v; want the data before the end", buf[:n], err)
		}
		if n, err := p.Recv(buf); n != 0 || err != nil {
			t.Errorf("Recv at the end: %d, %v; want 0, nil once", n, err)
		}
		if _, err := p.Recv(buf); !errors.Is(err, ErrWouldBlock) {
			t.Errorf("Recv after the end: %v, want ErrWouldBlock until the re-armed read says more", err)
		}
	})
}

// On io_uring SendBatch goes out as linked writes with one io_uring_enter:
// every packet arrives in order, the stats count one call for the batch,
// and a packet refused ends the batch there, the ones after it not
// written, as write(2) one by one would have it.
func TestURingLinkedWrites(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	p := attach(t, l, a, PacketConfig{OnReady: func(*PacketFD, Events) {}})
	bufs := make([][]byte, 40)
	for i := range bufs {
		bufs[i] = seqPacket(uint32(i))
	}
	onLoop(t, l, func() {
		before := l.Stats()
		if n, err := p.SendBatch(bufs, 0); n != len(bufs) || err != nil {
			t.Fatalf("SendBatch: %d, %v", n, err)
		}
		s := l.Stats()
		if calls := s.Syscalls - before.Syscalls; calls != 1 {
			t.Errorf("SendBatch of %d made %d system calls, want 1", len(bufs), calls)
		}
		if s.PacketsOut-before.PacketsOut != uint64(len(bufs)) {
			t.Errorf("counted %d packets out", s.PacketsOut-before.PacketsOut)
		}
	})
	buf := make([]byte, 64)
	for i := range bufs {
		n, err := unix.Read(b, buf)
		if err != nil || string(buf[:n]) != string(bufs[i]) {
			t.Fatalf("peer's packet %d: % x, %v; want % x", i, buf[:max(n, 0)], err, bufs[i])
		}
	}
	// A datagram larger than the socket can ever send (EMSGSIZE) in the
	// middle: the two before it go, it is reported, none after it goes.
	huge := make([]byte, 1<<22)
	huge[0] = 0x45
	mixed := [][]byte{bufs[0], bufs[1], huge, bufs[2], bufs[3]}
	onLoop(t, l, func() {
		n, err := p.SendBatch(mixed, 0)
		if n != 2 || err == nil || errors.Is(err, ErrWouldBlock) {
			t.Errorf("SendBatch with packet 2 too big: %d, %v; want 2 and the kernel's refusal", n, err)
		}
	})
	for i := range 2 {
		if n, err := unix.Read(b, buf); err != nil || string(buf[:n]) != string(bufs[i]) {
			t.Errorf("peer's packet %d after the refusal: % x, %v", i, buf[:max(n, 0)], err)
		}
	}
	if n, err := unix.Read(b, buf); err != unix.EAGAIN {
		t.Errorf("peer read %d more bytes (%v): a packet after the refused one was written", n, err)
	}
}

// A PacketFD handed off with every buffer of its ring holding an unread
// packet (its read ended for want of buffers) lends the new loop's kernel
// none of them: the ring's tail is stored anew even when nothing is lent,
// or the kernel, counting from 0 again, would read over unread packets.
// Every packet arrives once, in order.
func TestURingReadHandoffFullRing(t *testing.T) {
	checkLeaks(t)
	la, lb := newURingLoop(t), newURingLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	growSendBuffer(b)
	const total = 600
	p := attach(t, la, a, PacketConfig{OnReady: func(*PacketFD, Events) {}})
	t.Cleanup(func() { p.Close() })
	writeSeqs(t, b, 0, total)
	waitFor(t, "the ring to fill and its read to end with ENOBUFS", func() bool {
		full := false
		onLoop(t, la, func() {
			deliver(la)
			full = pendingPackets(p) == defaultRingBuffers && p.ring.starved
		})
		return full
	})
	log := &seqLog{t: t}
	var err error
	onLoop(t, la, func() { err = p.Handoff(lb, func(p *PacketFD, ev Events) { log.drain(p) }) })
	if err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	log.wait(total)
	writeSeqs(t, b, total, total+5)
	log.wait(total + 5)
}

// checkReadCalls checks l's stats after n packets (or datagrams: what)
// were read on the backend named: all of them counted, and the system
// calls fewer than the packets on io_uring (reads from the ring cost
// none), at least one per packet on epoll.
func checkReadCalls(t *testing.T, l *Loop, backend string, n uint64, what string) {
	t.Helper()
	s := l.Stats()
	if s.PacketsIn != n {
		t.Errorf("stats count %d %s in, want %d", s.PacketsIn, what, n)
	}
	switch backend {
	case "uring":
		if s.Syscalls >= n {
			t.Errorf("%d system calls for %d %s: reads from the ring should cost none", s.Syscalls, n, what)
		}
	case "epoll":
		if s.Syscalls < n {
			t.Errorf("%d system calls for %d %s on epoll, want a read each", s.Syscalls, n, what)
		}
	}
	t.Logf("%s: %d system calls, %d rounds for %d %s", backend, s.Syscalls, s.Rounds, n, what)
}

// checkHandedOff checks p after a handoff from la to lb that read want
// packets, all on lb: its reads go through lb's ring if lb runs on
// io_uring, through a Readable poll otherwise; then closes it (with
// closeFn, which closes the descriptor fd).
func checkHandedOff(t *testing.T, la, lb *Loop, p *PacketFD, want uint64, closeFn func() error, fd int) {
	t.Helper()
	onLoop(t, lb, func() {
		_, uringB := lb.p.(*uring)
		if uringB && (p.pollIn != 0 || p.ring.u != lb.p) {
			t.Errorf("on the new uring loop: pollIn %v, ring attached there %v", p.pollIn, p.ring.u == lb.p)
		}
		if !uringB && p.pollIn != Readable {
			t.Errorf("on the epoll loop: pollIn %v, want Readable", p.pollIn)
		}
	})
	if sa, sb := la.Stats(), lb.Stats(); sa.PacketsIn != 0 || sb.PacketsIn != want {
		t.Errorf("old loop read %d (want 0), new loop %d (want %d)", sa.PacketsIn, sb.PacketsIn, want)
	}
	if err := closeFn(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if isOpen(fd) {
		t.Error("descriptor open after Close")
	}
}

// handoffTargets are the loops a handoff from an io_uring loop is tested
// to: another io_uring loop, and an epoll one.
var handoffTargets = []struct {
	name string
	new  func(t *testing.T) *Loop
}{
	{"to uring", func(t *testing.T) *Loop { return newURingLoop(t) }},
	{"to epoll", func(t *testing.T) *Loop { return newLoop(t, WithBackend(BackendEpoll)) }},
}

// waitRingStarved waits until p's ring holds a packet in every buffer and
// its multishot request has ended with ENOBUFS, checks that none is armed
// (the device or socket keeps the next packets), and returns the loop's
// count of starved requests.
func waitRingStarved(t *testing.T, l *Loop, p *PacketFD) (starved uint64) {
	t.Helper()
	u := l.p.(*uring)
	waitFor(t, "the ring to fill and its request to end with ENOBUFS", func() bool {
		full := false
		onLoop(t, l, func() {
			deliver(l)
			starved = u.starved
			full = pendingPackets(p) == defaultRingBuffers && u.starved > 0
		})
		return full
	})
	onLoop(t, l, func() {
		if !p.ring.starved || p.ring.req != 0 {
			t.Errorf("full ring: starved %v, request %d; want starved with no request", p.ring.starved, p.ring.req)
		}
	})
	return starved
}
