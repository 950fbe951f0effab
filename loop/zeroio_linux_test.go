package loop

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// UDPConn refuses buffers with no byte after offset, on receive (with GRO
// and without) and on send (with GSO and without), counting nothing and
// leaving waiting datagrams in the socket.
func TestUDPZeroLengthRefused(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprint("offload=", offload), func(t *testing.T) {
			checkLeaks(t)
			l := newLoop(t)
			fd, addr := udpSocket(t, unix.AF_INET)
			u, err := l.AttachUDP(fd, UDPConfig{OnReady: func(*UDPConn, Events) {}, GSO: offload, GRO: offload})
			if err != nil {
				unix.Close(fd)
				t.Fatal(err)
			}
			rc, raddr := receiver(t, "udp4")
			room := 64
			if u.GRO() {
				room = MaxGROBytes
			}
			const offset = 4
			onLoop(t, l, func() {
				bufs := [][]byte{make([]byte, offset+room), make([]byte, offset+room)}
				sizes := make([]int, 2)
				if n, err := u.RecvBatch(bufs, sizes, nil, offset); n != 0 || !errors.Is(err, ErrWouldBlock) {
					t.Errorf("RecvBatch on an idle socket: %d, %v; want 0, ErrWouldBlock", n, err)
				}
				before := ioCounters(l)
				for _, bad := range [][][]byte{
					{make([]byte, offset)},
					{make([]byte, offset+room), make([]byte, offset+room), nil},
				} {
					n, err := u.RecvBatch(bad, make([]int, len(bad)), nil, offset)
					if n != 0 {
						t.Errorf("RecvBatch with an empty buffer read %d", n)
					}
					refused(t, l, "RecvBatch with an empty buffer", before, err, fmt.Sprintf("buffer %d ", len(bad)-1))
				}
				// Two datagrams of one size, then an empty one: with GSO
				// the first two go as one message, and the batch stops
				// at the empty one either way.
				out := [][]byte{[]byte("....one"), []byte("....two"), []byte("...."), []byte("....three")}
				addrs := []netip.AddrPort{raddr, raddr, raddr, raddr}
				n, err := u.SendBatch(out, addrs, offset)
				if n != 2 || !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "buffer 2 ") {
					t.Errorf("SendBatch with buffer 2 empty: %d, %v; want 2 and buffer 2 refused", n, err)
				}
				if s := ioCounters(l); s[1] != before[1]+2 {
					t.Errorf("SendBatch counted %d packets out, want 2", s[1]-before[1])
				}
				before = ioCounters(l)
				n, err = u.SendBatch(out[2:], addrs, offset)
				if n != 0 {
					t.Errorf("SendBatch starting with an empty buffer sent %d", n)
				}
				refused(t, l, "SendBatch of an empty buffer", before, err, "buffer 0 ")
			})
			for _, want := range []string{"one", "two"} {
				if got := readN(t, rc, 1); string(got[0]) != want {
					t.Errorf("receiver got %q, want %q", got[0], want)
				}
			}
			rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, _, err := rc.ReadFromUDPAddrPort(make([]byte, 64)); err == nil {
				t.Errorf("receiver got a datagram of %d bytes after the refusal", n)
			}

			// A datagram waiting is left for the next valid call.
			if _, err := rc.WriteToUDPAddrPort([]byte("kept"), addr); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the datagram", func() bool {
				// On io_uring it waits in the ring, on epoll in the socket.
				ready := false
				onLoop(t, l, func() {
					deliver(l)
					n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
					ready = pendingPackets(u.p) > 0 || (u.p.ring == nil && n == 1)
				})
				return ready
			})
			onLoop(t, l, func() {
				before := ioCounters(l)
				_, err := u.RecvBatch([][]byte{make([]byte, offset+room), make([]byte, 2)}, make([]int, 2), nil, offset)
				refused(t, l, "RecvBatch with buffer 1 short", before, err, "buffer 1 ")
				bufs := [][]byte{make([]byte, offset+room)}
				sizes := []int{0}
				if n, err := u.RecvBatch(bufs, sizes, nil, offset); n != 1 || err != nil || string(bufs[0][offset:offset+sizes[0]]) != "kept" {
					t.Errorf("RecvBatch after the refusals: %d, %v; want the waiting datagram", n, err)
				}
			})
		})
	}
}
