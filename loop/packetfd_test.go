package loop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func attach(t *testing.T, l *Loop, fd int, cfg PacketConfig) *PacketFD {
	t.Helper()
	p, err := l.AttachPacketFD(fd, cfg)
	if err != nil {
		t.Fatalf("AttachPacketFD: %v", err)
	}
	return p
}

// drain reads every waiting packet with Recv, as a readiness callback does.
func drain(p *PacketFD, got *[][]byte) error {
	buf := make([]byte, 2048)
	for {
		n, err := p.Recv(buf)
		if errors.Is(err, ErrWouldBlock) {
			return nil
		}
		if err != nil {
			return err
		}
		*got = append(*got, append([]byte(nil), buf[:n]...))
	}
}

func TestPacketRecvArmsCallback(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	var mu sync.Mutex
	var got [][]byte
	var offLoop atomic.Bool
	attach(t, l, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) {
		if !l.OnLoop() {
			offLoop.Store(true)
		}
		mu.Lock()
		defer mu.Unlock()
		if err := drain(p, &got); err != nil {
			t.Errorf("drain: %v", err)
		}
	}})
	for i := range 3 {
		mustWrite(t, b, []byte(fmt.Sprintf("packet %d", i)))
	}
	waitFor(t, "3 packets", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	for i, g := range got {
		if want := fmt.Sprintf("packet %d", i); string(g) != want {
			t.Errorf("packet %d: %q, want %q", i, g, want)
		}
	}
	mu.Unlock()
	if offLoop.Load() {
		t.Error("callback ran off the loop thread")
	}
	// The callback is re-armed by the ErrWouldBlock that ended the drain.
	mustWrite(t, b, []byte("later"))
	waitFor(t, "the later packet", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 4 })
	s := l.Stats()
	if s.PacketsIn != 4 || s.BytesIn != uint64(3*len("packet 0")+len("later")) || s.WouldBlocks == 0 {
		t.Errorf("stats %+v: want 4 packets in, the bytes, some would-blocks", s)
	}
}

func TestPacketIOFromOtherGoroutine(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	p := attach(t, l, a, PacketConfig{OnReady: func(*PacketFD, Events) {}})
	buf := make([]byte, 64)
	if _, err := p.Recv(buf); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Recv off the loop: %v, want ErrNotOwner", err)
	}
	if err := p.Send(buf); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Send off the loop: %v, want ErrNotOwner", err)
	}
	if _, err := p.RecvBatch([][]byte{buf}, []int{0}, 0); !errors.Is(err, ErrNotOwner) {
		t.Errorf("RecvBatch off the loop: %v, want ErrNotOwner", err)
	}
	if _, err := p.SendBatch([][]byte{buf}, 0); !errors.Is(err, ErrNotOwner) {
		t.Errorf("SendBatch off the loop: %v, want ErrNotOwner", err)
	}
	if err := p.Cancel(Readable); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Cancel off the loop: %v, want ErrNotOwner", err)
	}
	if err := p.Handoff(l, func(*PacketFD, Events) {}); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Handoff off the loop: %v, want ErrNotOwner", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if isOpen(a) {
		t.Error("Close left the descriptor open")
	}
	onLoop(t, l, func() {
		if _, err := p.Recv(buf); !errors.Is(err, ErrClosed) {
			t.Errorf("Recv after Close: %v, want ErrClosed", err)
		}
	})
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// With a budget of 4, two busy descriptors take turns: each callback gets at
// most 4 packets, then the other runs.
func TestPacketBudgetYields(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	var mu sync.Mutex
	var turns []string
	total := 0
	done := make(chan struct{})
	onReady := func(name string) ReadyFunc {
		return func(p *PacketFD, ev Events) {
			bufs := make([][]byte, 16)
			for i := range bufs {
				bufs[i] = make([]byte, 64)
			}
			sizes := make([]int, 16)
			n, err := p.RecvBatch(bufs, sizes, 0)
			if err != nil && !errors.Is(err, ErrWouldBlock) {
				t.Errorf("RecvBatch: %v", err)
			}
			if n == 0 {
				return
			}
			mu.Lock()
			turns = append(turns, fmt.Sprintf("%s%d", name, n))
			total += n
			if total == 20 {
				close(done)
			}
			mu.Unlock()
		}
	}
	var ws [2]int
	var fds [2]int
	for i := range 2 {
		fds[i], ws[i] = dgramPair(t)
		closeLater(t, ws[i])
		for k := range 10 {
			mustWrite(t, ws[i], []byte{byte(k)})
		}
	}
	onLoop(t, l, func() {
		for i, name := range []string{"A", "B"} {
			if _, err := l.AttachPacketFD(fds[i], PacketConfig{Budget: 4, OnReady: onReady(name)}); err != nil {
				t.Error(err)
			}
		}
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("packets not all read")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"A4", "B4", "A4", "B4", "A2", "B2"}
	if fmt.Sprint(turns) != fmt.Sprint(want) {
		t.Fatalf("turns %v, want %v", turns, want)
	}
}

// sizeFramer is a test framer: a 4-byte header holding "H", the packet's
// first byte, and 2 bytes of padding.
type sizeFramer struct{}

func (sizeFramer) HeaderLen() int { return 4 }
func (sizeFramer) PutHeader(hdr, packet []byte) error {
	if len(packet) == 0 {
		return errors.New("empty packet")
	}
	copy(hdr, []byte{'H', packet[0], 0, 0})
	return nil
}

func TestPacketSendPartsAndFraming(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	plainA, plainB := dgramPair(t)
	closeLater(t, plainB)
	framed := attach(t, l, a, PacketConfig{Framer: sizeFramer{}, OnReady: func(*PacketFD, Events) {}})
	plain := attach(t, l, plainA, PacketConfig{OnReady: func(*PacketFD, Events) {}})

	readPeer := func(fd int) []byte {
		buf := make([]byte, 256)
		for range 500 {
			n, err := unix.Read(fd, buf)
			if err == nil {
				return buf[:n]
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("peer never received")
		return nil
	}
	onLoop(t, l, func() {
		if err := plain.Send([]byte("ab"), nil, []byte("cd"), []byte("e")); err != nil {
			t.Errorf("Send: %v", err)
		}
		if err := framed.Send(nil, []byte("xy"), []byte("z")); err != nil {
			t.Errorf("framed Send: %v", err)
		}
	})
	if got := readPeer(plainB); string(got) != "abcde" {
		t.Errorf("plain peer got %q, want one datagram \"abcde\"", got)
	}
	if got := readPeer(b); string(got) != "Hx\x00\x00xyz" {
		t.Errorf("framed peer got %q, want header then \"xyz\"", got)
	}

	// SendBatch writes the header into the headroom, in place.
	bufs := [][]byte{[]byte("....pq"), []byte("....rs")}
	onLoop(t, l, func() {
		n, err := framed.SendBatch(bufs, 4)
		if n != 2 || err != nil {
			t.Errorf("SendBatch: %d, %v", n, err)
		}
	})
	for _, want := range []string{"Hp\x00\x00pq", "Hr\x00\x00rs"} {
		if got := readPeer(b); string(got) != want {
			t.Errorf("peer got %q, want %q", got, want)
		}
	}
	if string(bufs[0][:4]) != "Hp\x00\x00" {
		t.Errorf("header not written in place: %q", bufs[0])
	}

	// Receiving strips the header: Recv returns only the packet, RecvBatch
	// leaves the header in the headroom.
	mustWrite(t, b, []byte("HAB\x00packet-one"))
	mustWrite(t, b, []byte("HCD\x00packet-two"))
	time.Sleep(10 * time.Millisecond)
	onLoop(t, l, func() {
		buf := make([]byte, 64)
		n, err := framed.Recv(buf)
		if err != nil || string(buf[:n]) != "packet-one" {
			t.Errorf("Recv: %q, %v", buf[:n], err)
		}
		rb := [][]byte{make([]byte, 64)}
		sizes := []int{0}
		if _, err := framed.RecvBatch(rb, sizes, 2); !errors.Is(err, unix.EINVAL) {
			t.Errorf("RecvBatch with offset 2 < header 4: %v, want EINVAL", err)
		}
		n, err = framed.RecvBatch(rb, sizes, 8)
		if n != 1 || err != nil {
			t.Fatalf("RecvBatch: %d, %v", n, err)
		}
		if got := string(rb[0][8 : 8+sizes[0]]); got != "packet-two" {
			t.Errorf("RecvBatch packet %q", got)
		}
		if got := string(rb[0][4:8]); got != "HCD\x00" {
			t.Errorf("RecvBatch headroom %q, want the header", got)
		}
		if err := framed.Send(nil); err == nil {
			t.Error("framed Send of an empty packet succeeded")
		}
		parts := make([][]byte, MaxSendParts+1)
		for i := range parts {
			parts[i] = []byte{1}
		}
		if err := plain.Send(parts...); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Send of %d parts: %v, want EINVAL", len(parts), err)
		}
	})
}

// Cancel disarms the callback but leaves the descriptor open and usable.
func TestPacketCancelKeepsDeviceUsable(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	var calls atomic.Int32
	p := attach(t, l, a, PacketConfig{OnReady: func(*PacketFD, Events) { calls.Add(1) }})
	onLoop(t, l, func() {
		if err := p.Cancel(Readable); err != nil {
			t.Error(err)
		}
		if p.Armed() != 0 {
			t.Errorf("armed %v after Cancel", p.Armed())
		}
	})
	mustWrite(t, b, []byte("while cancelled"))
	time.Sleep(20 * time.Millisecond)
	onLoop(t, l, func() {})
	if calls.Load() != 0 {
		t.Fatalf("callback ran %d times after Cancel", calls.Load())
	}
	onLoop(t, l, func() {
		buf := make([]byte, 64)
		n, err := p.Recv(buf)
		if err != nil || string(buf[:n]) != "while cancelled" {
			t.Errorf("Recv after Cancel: %q, %v", buf[:n], err)
		}
	})
	// Notify re-arms and checks at once, even with no new edge.
	mustWrite(t, b, []byte("queued"))
	time.Sleep(10 * time.Millisecond)
	onLoop(t, l, func() {
		if err := p.Notify(Readable); err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "callback after Notify", func() bool { return calls.Load() == 1 })
}

// A handoff loses no packet, duplicates none, keeps their order, and the
// old loop hears nothing afterwards.
func TestPacketHandoff(t *testing.T) {
	checkLeaks(t)
	la := newLoop(t)
	lb := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	const total, switchAt = 3000, 700
	var mu sync.Mutex
	var seqs []uint32
	var afterHandoff atomic.Int32
	var handedOff atomic.Bool
	done := make(chan struct{})
	var record func(p *PacketFD, onB bool)
	record = func(p *PacketFD, onB bool) {
		buf := make([]byte, 64)
		for {
			n, err := p.Recv(buf)
			if errors.Is(err, ErrWouldBlock) {
				return
			}
			if err != nil {
				t.Errorf("Recv: %v", err)
				return
			}
			if n != 4 {
				t.Errorf("packet of %d bytes", n)
				return
			}
			mu.Lock()
			seqs = append(seqs, binary.BigEndian.Uint32(buf))
			count := len(seqs)
			mu.Unlock()
			if count == total {
				close(done)
			}
			if !onB && count == switchAt {
				handedOff.Store(true)
				if err := p.Handoff(lb, func(p *PacketFD, ev Events) {
					if !lb.OnLoop() {
						t.Error("new owner's callback off its loop")
					}
					record(p, true)
				}); err != nil {
					t.Errorf("Handoff: %v", err)
				}
				// The old owner may no longer read.
				if _, err := p.Recv(buf); !errors.Is(err, ErrNotOwner) {
					t.Errorf("Recv on the old loop after Handoff: %v, want ErrNotOwner", err)
				}
				return
			}
		}
	}
	attach(t, la, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) {
		if handedOff.Load() {
			afterHandoff.Add(1)
			return
		}
		record(p, false)
	}})
	go func() {
		var pkt [4]byte
		for i := uint32(0); i < total; i++ {
			binary.BigEndian.PutUint32(pkt[:], i)
			for {
				_, err := unix.Write(b, pkt[:])
				if err == nil {
					break
				}
				if err != unix.EAGAIN && err != unix.ENOBUFS {
					t.Errorf("writer: %v", err)
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		mu.Lock()
		t.Fatalf("received %d of %d", len(seqs), total)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, s := range seqs {
		if s != uint32(i) {
			t.Fatalf("packet %d has sequence %d: lost, duplicated or reordered", i, s)
		}
	}
	if n := afterHandoff.Load(); n != 0 {
		t.Errorf("old owner's callback ran %d times after the handoff", n)
	}
	if lb.Stats().PacketsIn == 0 || la.Stats().PacketsIn != switchAt {
		t.Errorf("old loop read %d (want %d), new loop %d", la.Stats().PacketsIn, switchAt, lb.Stats().PacketsIn)
	}
}

// Handing off to a closed loop fails, and the descriptor stays with its
// owner.
func TestPacketHandoffToClosedLoop(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	dead, err := New()
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	a, b := dgramPair(t)
	closeLater(t, b)
	p := attach(t, l, a, PacketConfig{OnReady: func(*PacketFD, Events) {}})
	onLoop(t, l, func() {
		if err := p.Handoff(dead, func(*PacketFD, Events) {}); !errors.Is(err, ErrClosed) {
			t.Errorf("Handoff to a closed loop: %v, want ErrClosed", err)
		}
		if p.Loop() != l {
			t.Error("descriptor left its owner after a failed handoff")
		}
		mustWrite(t, b, []byte("still here"))
	})
	time.Sleep(5 * time.Millisecond)
	onLoop(t, l, func() {
		buf := make([]byte, 32)
		if n, err := p.Recv(buf); err != nil || string(buf[:n]) != "still here" {
			t.Errorf("Recv after failed handoff: %q, %v", buf[:n], err)
		}
	})
}

// Closing a loop closes its PacketFDs through their Close functions, once.
func TestLoopCloseClosesPacketFDs(t *testing.T) {
	checkLeaks(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	a, b := dgramPair(t)
	closeLater(t, b)
	var closes atomic.Int32
	p := attach(t, l, a, PacketConfig{OnReady: func(*PacketFD, Events) {}, Close: func() error {
		closes.Add(1)
		return unix.Close(a)
	}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if closes.Load() != 1 || isOpen(a) {
		t.Fatalf("Close ran %d times, fd open %v", closes.Load(), isOpen(a))
	}
	if err := p.Close(); err != nil {
		t.Errorf("PacketFD.Close after its loop closed: %v", err)
	}
	if closes.Load() != 1 {
		t.Errorf("Close function ran %d times", closes.Load())
	}
	if p.Loop() != nil {
		t.Error("closed PacketFD still has an owner")
	}
}

// A callback may close its own PacketFD.
func TestPacketCloseInsideCallback(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	closed := make(chan error, 1)
	attach(t, l, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) {
		closed <- p.Close()
	}})
	mustWrite(t, b, []byte("x"))
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("callback did not run")
	}
	if isOpen(a) {
		t.Error("descriptor open after Close in its callback")
	}
}

// Close racing a handoff closes the descriptor exactly once, wherever it is.
func TestPacketCloseDuringHandoff(t *testing.T) {
	checkLeaks(t)
	for range 50 {
		la := newLoop(t)
		lb := newLoop(t)
		a, b := dgramPair(t)
		var closes atomic.Int32
		p := attach(t, la, a, PacketConfig{OnReady: func(*PacketFD, Events) {}, Close: func() error {
			closes.Add(1)
			return unix.Close(a)
		}})
		handed := make(chan struct{})
		la.Post(func() {
			p.Handoff(lb, func(*PacketFD, Events) {})
			close(handed)
		})
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		<-handed
		waitFor(t, "close", func() bool { return closes.Load() == 1 })
		onLoop(t, lb, func() {})
		if closes.Load() != 1 {
			t.Fatalf("closed %d times", closes.Load())
		}
		unix.Close(b)
		la.Close()
		lb.Close()
	}
}

func TestAttachRejectsBadConfig(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, a, b)
	if _, err := l.AttachPacketFD(a, PacketConfig{}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("nil OnReady: %v, want EINVAL", err)
	}
	if _, err := l.AttachPacketFD(-1, PacketConfig{OnReady: func(*PacketFD, Events) {}}); !errors.Is(err, unix.EBADF) {
		t.Errorf("fd -1: %v, want EBADF", err)
	}
	if !isOpen(a) {
		t.Error("a refused attach closed the descriptor")
	}
}

// The per-packet path allocates nothing.
func TestPacketSteadyStateAllocatesNothing(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	p := attach(t, l, a, PacketConfig{Framer: sizeFramer{}, Budget: 1 << 30, OnReady: func(*PacketFD, Events) {}})
	const batch = 8
	bufs := make([][]byte, batch)
	rbufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = append(make([]byte, 16), []byte("payload")...)
		rbufs[i] = make([]byte, 128)
	}
	sizes := make([]int, batch)
	peer := make([]byte, 64)
	onLoop(t, l, func() {
		allocs := testing.AllocsPerRun(200, func() {
			if n, err := p.SendBatch(bufs, 16); n != batch || err != nil {
				t.Fatalf("SendBatch: %d, %v", n, err)
			}
			for range batch {
				unix.Read(b, peer)
				unix.Write(b, peer[:20])
			}
			deliver(l)
			if n, err := p.RecvBatch(rbufs, sizes, 16); n != batch || err != nil {
				t.Fatalf("RecvBatch: %d, %v", n, err)
			}
			if err := p.Send(bufs[0][16:], bufs[1][16:]); err != nil {
				t.Fatal(err)
			}
			unix.Read(b, peer)
		})
		if allocs != 0 {
			t.Errorf("%v allocations per batch round trip, want 0", allocs)
		}
	})
	if !bytes.Equal(rbufs[0][16:16+sizes[0]], peer[4:20]) {
		t.Errorf("round trip corrupted the packet")
	}
}

// A PacketFD made with NewPacketFD refuses I/O until attached, attaches
// once, and closes its descriptor when closed unattached.
func TestNewPacketFDLifecycle(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	p, err := NewPacketFD(a, PacketConfig{OnReady: func(*PacketFD, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	onLoop(t, l, func() {
		if _, err := p.Recv(make([]byte, 8)); !errors.Is(err, ErrNotOwner) {
			t.Errorf("Recv before Attach: %v, want ErrNotOwner", err)
		}
	})
	if err := p.Attach(l); err != nil {
		t.Fatal(err)
	}
	if err := p.Attach(l); !errors.Is(err, unix.EINVAL) {
		t.Errorf("second Attach: %v, want EINVAL (already attached)", err)
	}
	if err := p.Close(); err != nil || isOpen(a) {
		t.Fatalf("Close: %v, open %v", err, isOpen(a))
	}
	if err := p.Attach(l); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}

	c, d := dgramPair(t)
	closeLater(t, d)
	unattached, err := NewPacketFD(c, PacketConfig{OnReady: func(*PacketFD, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := unattached.Close(); err != nil || isOpen(c) {
		t.Fatalf("Close unattached: %v, open %v", err, isOpen(c))
	}
}

// TestPacketSendArmsWritable: a Send that finds the descriptor full arms
// Writable, and the callback gets Writable once the peer makes room, twice
// over (on Linux the loop asks epoll for Writable only while a write is
// waiting, so the second time checks the interest is asked for again).
func TestPacketSendArmsWritable(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	writable := make(chan struct{}, 16)
	p := attach(t, l, a, PacketConfig{OnReady: func(p *PacketFD, ev Events) {
		if ev&Writable != 0 {
			writable <- struct{}{}
		}
	}})
	for round := range 2 {
		var armed Events
		sent := 0
		onLoop(t, l, func() {
			for {
				err := p.Send([]byte("fill"))
				if errors.Is(err, ErrWouldBlock) {
					break
				}
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				sent++
			}
			armed = p.Armed()
		})
		if sent == 0 || armed&Writable == 0 {
			t.Fatalf("round %d: %d sent before ErrWouldBlock, armed %v: want Writable armed", round, sent, armed)
		}
		select {
		case <-writable:
			t.Fatalf("round %d: Writable delivered while the peer was full", round)
		default:
		}
		var buf [16]byte
		for {
			if _, err := unix.Read(b, buf[:]); err != nil {
				break
			}
		}
		select {
		case <-writable:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no Writable callback after the peer drained", round)
		}
	}
}
