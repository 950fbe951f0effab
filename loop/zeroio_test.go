package loop

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ioCounters are the Stats fields that I/O moves; a refused call must
// leave them all as they were, the system calls included.
func ioCounters(l *Loop) [6]uint64 {
	s := l.Stats()
	return [6]uint64{s.PacketsIn, s.PacketsOut, s.BytesIn, s.BytesOut, s.Syscalls, s.WouldBlocks}
}

// refused checks that err is the refusal of an argument (unix.EINVAL
// inside an OpError) whose text names want, and that the loop counted
// nothing for it.
func refused(t *testing.T, l *Loop, what string, before [6]uint64, err error, want string) {
	t.Helper()
	var op *OpError
	if !errors.As(err, &op) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("%s: %v, want an *OpError wrapping EINVAL", what, err)
	} else if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %q does not name %q", what, err, want)
	}
	if after := ioCounters(l); after != before {
		t.Errorf("%s: stats moved from %v to %v", what, before, after)
	}
}

// A read of 0 bytes returns 0 without taking a packet, and a write of
// nothing sends none: every PacketFD path refuses them, counts nothing,
// and leaves the waiting packets where they are.
func TestPacketZeroLengthRefused(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	for _, framed := range []bool{false, true} {
		a, b := dgramPair(t)
		closeLater(t, b)
		cfg := PacketConfig{OnReady: func(*PacketFD, Events) {}}
		hdr := 0
		if framed {
			cfg.Framer, hdr = sizeFramer{}, 4
		}
		p := attach(t, l, a, cfg)
		name := map[bool]string{false: "plain", true: "framed"}[framed]

		onLoop(t, l, func() {
			// An empty queue with room in every buffer: ErrWouldBlock, as
			// before; with no room, the refusal and not n = len(bufs).
			bufs := make([][]byte, 64)
			sizes := make([]int, 64)
			for i := range bufs {
				bufs[i] = make([]byte, hdr+64)
			}
			if n, err := p.RecvBatch(bufs, sizes, hdr); n != 0 || !errors.Is(err, ErrWouldBlock) {
				t.Errorf("%s: RecvBatch on an empty queue: %d, %v; want 0, ErrWouldBlock", name, n, err)
			}
			empty := make([][]byte, 64)
			for i := range empty {
				empty[i] = make([]byte, hdr)
			}
			before := ioCounters(l)
			n, err := p.RecvBatch(empty, sizes, hdr)
			if n != 0 {
				t.Errorf("%s: RecvBatch of empty buffers read %d", name, n)
			}
			refused(t, l, name+": RecvBatch of empty buffers", before, err, "buffer 0 ")
			if n, err := p.Recv(nil); n != 0 {
				t.Errorf("%s: Recv(nil) read %d", name, n)
			} else {
				refused(t, l, name+": Recv(nil)", before, err, "buffer 0 ")
			}
			refused(t, l, name+": SendHeader of no byte", before, p.SendHeader(make([]byte, hdr)), "empty packet")

			for _, parts := range [][][]byte{nil, {nil, {}}} {
				refused(t, l, name+": Send of no byte", before, p.Send(parts...), "empty packet")
			}
			out := [][]byte{make([]byte, hdr+3), make([]byte, hdr), make([]byte, hdr+3)}
			out[0][hdr], out[2][hdr] = 0x45, 0x46
			n, err = p.SendBatch(out, hdr)
			if n != 1 || !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "buffer 1 ") {
				t.Errorf("%s: SendBatch with buffer 1 empty: %d, %v; want 1 and buffer 1 refused", name, n, err)
			}
			if s := ioCounters(l); s[1] != before[1]+1 || s[4] != before[4]+1 {
				t.Errorf("%s: SendBatch counted %d packets and %d calls, want 1 and 1", name, s[1]-before[1], s[4]-before[4])
			}
		})
		// Only the first packet of that batch reached the peer.
		buf := make([]byte, 64)
		if n, err := unix.Read(b, buf); err != nil || n != hdr+3 || buf[hdr] != 0x45 {
			t.Errorf("%s: peer read %d bytes % x, %v; want the first packet", name, n, buf[:max(n, 0)], err)
		}
		if n, err := unix.Read(b, buf); err != unix.EAGAIN {
			t.Errorf("%s: peer read %d more bytes (%v), want nothing", name, n, err)
		}

		// A packet waiting is left for the next valid read.
		mustWrite(t, b, append(make([]byte, hdr), "kept"...))
		waitReadable(t, l, p, a)
		onLoop(t, l, func() {
			before := ioCounters(l)
			bufs := [][]byte{make([]byte, hdr+8), make([]byte, hdr+8), make([]byte, hdr)}
			sizes := make([]int, 3)
			n, err := p.RecvBatch(bufs, sizes, hdr)
			if n != 0 {
				t.Errorf("%s: RecvBatch with buffer 2 empty read %d", name, n)
			}
			refused(t, l, name+": RecvBatch with buffer 2 empty", before, err, "buffer 2 ")
			buf := make([]byte, 8)
			if n, err := p.Recv(buf); err != nil || string(buf[:n]) != "kept" {
				t.Errorf("%s: Recv after the refusals: %q, %v; want the waiting packet", name, buf[:n], err)
			}
		})
	}
}
