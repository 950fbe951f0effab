package tundra

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/internal/packet"
	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/vnet"
)

// ioCounters are the loop's Stats that I/O moves, system calls included.
func ioCounters(l *loop.Loop) [6]uint64 {
	s := l.Stats()
	return [6]uint64{s.PacketsIn, s.PacketsOut, s.BytesIn, s.BytesOut, s.Syscalls, s.WouldBlocks}
}

// refusedArg checks that err refuses an argument (ErrInvalidArgument), that
// its text names want, and that the loop counted nothing since before.
func refusedArg(t *testing.T, l *loop.Loop, what string, before [6]uint64, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v; want ErrInvalidArgument naming %q", what, err, want)
	}
	if after := ioCounters(l); after != before {
		t.Errorf("%s: stats moved from %v to %v", what, before, after)
	}
}

// Zero-length I/O on a device is refused on every path: a read of 0 bytes
// would report a packet that never came (and loop forever a caller that
// reads until ErrWouldBlock), a write of nothing would report one sent.
func TestZeroLengthIORefused(t *testing.T) {
	ns := netnstest.New(t)
	l := newLoop(t)
	for i, opts := range [][]Option{nil, {PacketInfo()}} {
		name := fmt.Sprintf("tdrzio%d", i)
		t.Run(name, func(t *testing.T) {
			opts = append(opts, Name(name))
			dev := createIn(t, ns, fmt.Sprintf("10.9%d.0.1/24", i), opts...)
			if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
				t.Fatal(err)
			}
			q := dev.Queues()[0]
			off := q.HeaderLen()
			good, err := packet.UDP(netip.MustParseAddrPort(fmt.Sprintf("10.9%d.0.2:1", i)), netip.MustParseAddrPort(fmt.Sprintf("10.9%d.0.1:9", i)), []byte("ok"))
			if err != nil {
				t.Fatal(err)
			}
			framed := append(make([]byte, off), good...)
			l.Do(func() {
				bufs := make([][]byte, 64)
				sizes := make([]int, 64)
				for i := range bufs {
					bufs[i] = make([]byte, off+2048)
				}
				for { // drain what the kernel sent when the link came up
					if _, err := dev.Queues()[0].RecvBatch(bufs, sizes, off); err != nil {
						if !errors.Is(err, ErrWouldBlock) {
							t.Errorf("RecvBatch on a drained device: %v, want ErrWouldBlock", err)
						}
						break
					}
				}
				before := ioCounters(l)
				empty := make([][]byte, 64)
				for i := range empty {
					empty[i] = make([]byte, off)
				}
				n, err := dev.Queues()[0].RecvBatch(empty, sizes, off)
				if n != 0 {
					t.Errorf("RecvBatch of 64 empty buffers: n = %d", n)
				}
				refusedArg(t, l, "RecvBatch of empty buffers", before, err, "buffer 0 ")
				bufs[3] = bufs[3][:off]
				_, err = q.RecvBatch(bufs, sizes, off)
				refusedArg(t, l, "RecvBatch with buffer 3 empty", before, err, "buffer 3 ")
				for _, b := range [][]byte{nil, {}} {
					n, err := dev.Queues()[0].Recv(b)
					if n != 0 {
						t.Errorf("Recv of an empty buffer: n = %d", n)
					}
					refusedArg(t, l, "Recv of an empty buffer", before, err, "buffer 0 ")
				}
				refusedArg(t, l, "Send()", before, dev.Queues()[0].Send(), "empty packet")
				refusedArg(t, l, "Send(nil, {})", before, q.Send(nil, []byte{}), "empty packet")
				n, err = dev.Queues()[0].SendBatch([][]byte{framed, framed[:off], framed}, off)
				if n != 1 || !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "buffer 1 ") {
					t.Errorf("SendBatch with buffer 1 empty: %d, %v; want 1 sent, then buffer 1 refused", n, err)
				}
				if s := ioCounters(l); s[1] != before[1]+1 {
					t.Errorf("SendBatch counted %d packets out, want 1", s[1]-before[1])
				}
			})
		})
	}
}

// The offload path refuses the same: empty sends, empty GSO buffers, and
// a batch's empty packet after the ones before it are sent.
func TestOffloadZeroLengthIORefused(t *testing.T) {
	ns := netnstest.New(t)
	l := newLoop(t)
	dev := createIn(t, ns, "10.95.0.1/24", Offloads(AllOffloads))
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	q := dev.Queues()[0]
	good, err := packet.UDP(netip.MustParseAddrPort("10.95.0.2:1"), netip.MustParseAddrPort("10.95.0.1:9"), []byte("ok"))
	if err != nil {
		t.Fatal(err)
	}
	const off = vnet.HeaderLen
	framed := append(make([]byte, off), good...)
	// Off the loop, ownership is checked first, before the queue's
	// loop-only state is touched: the race detector sees to the rest.
	for _, parts := range [][][]byte{{good}, nil} {
		if err := q.Send(parts...); !errors.Is(err, ErrNotOwner) {
			t.Errorf("Send of %d parts off the loop: %v, want ErrNotOwner", len(parts), err)
		}
	}
	if _, _, err := q.RecvGSO(nil); !errors.Is(err, ErrNotOwner) {
		t.Errorf("RecvGSO(nil) off the loop: %v, want ErrNotOwner", err)
	}
	l.Do(func() {
		before := ioCounters(l)
		_, err := q.RecvBatch([][]byte{make([]byte, off+MaxPacket), make([]byte, off)}, make([]int, 2), off)
		refusedArg(t, l, "RecvBatch with buffer 1 empty", before, err, "buffer 1 ")
		_, _, err = q.RecvGSO(nil)
		refusedArg(t, l, "RecvGSO(nil)", before, err, "buffer 0 ")
		refusedArg(t, l, "Send()", before, q.Send(), "empty packet")
		refusedArg(t, l, "Send(nil, {})", before, q.Send(nil, []byte{}), "empty packet")
		refusedArg(t, l, "SendGSO of nothing", before, q.SendGSO(vnet.Header{}, nil), "empty packet")
		n, err := q.SendBatch([][]byte{framed[:off], framed}, off)
		if n != 0 {
			t.Errorf("SendBatch starting with an empty packet sent %d", n)
		}
		refusedArg(t, l, "SendBatch of an empty packet", before, err, "buffer 0 ")
		n, err = q.SendBatch([][]byte{framed, framed[:off]}, off)
		if n != 1 || !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "buffer 1 ") {
			t.Errorf("SendBatch with buffer 1 empty: %d, %v; want 1 sent, then buffer 1 refused", n, err)
		}
		if s := ioCounters(l); s[1] != before[1]+1 {
			t.Errorf("SendBatch counted %d packets out, want 1", s[1]-before[1])
		}
	})
}
