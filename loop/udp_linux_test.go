package loop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// udpSocket opens a non-blocking UDP socket on a loopback port.
func udpSocket(t *testing.T, family int) (int, netip.AddrPort) {
	t.Helper()
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	got, _ := unix.Getsockname(fd)
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return fd, netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return fd, netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	t.Fatal("no address")
	return -1, netip.AddrPort{}
}

// receiver is a plain net.UDPConn the test reads datagrams from.
func receiver(t *testing.T, network string) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(map[string]string{"udp4": "127.0.0.1", "udp6": "::1"}[network])})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadBuffer(1 << 20)
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func readN(t *testing.T, c *net.UDPConn, n int) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < n {
		k, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, append([]byte(nil), buf[:k]...))
	}
	return got
}

func TestUDPRecvBatch(t *testing.T) {
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		t.Run(fmt.Sprint(family), func(t *testing.T) {
			checkLeaks(t)
			l := newLoop(t)
			fd, addr := udpSocket(t, family)
			var mu sync.Mutex
			var got []string
			var from []netip.AddrPort
			bufs, sizes, addrs := make([][]byte, 8), make([]int, 8), make([]netip.AddrPort, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 64)
			}
			if _, err := l.AttachUDP(fd, UDPConfig{OnReady: func(u *UDPConn, ev Events) {
				for {
					n, err := u.RecvBatch(bufs, sizes, addrs, 4)
					if err != nil {
						return
					}
					mu.Lock()
					for i := range n {
						got = append(got, string(bufs[i][4:4+sizes[i]]))
						from = append(from, addrs[i])
					}
					mu.Unlock()
					if n < len(bufs) {
						return
					}
				}
			}}); err != nil {
				t.Fatal(err)
			}
			network := map[int]string{unix.AF_INET: "udp4", unix.AF_INET6: "udp6"}[family]
			sender, senderAddr := receiver(t, network)
			for i := range 20 {
				if _, err := sender.WriteToUDPAddrPort([]byte(fmt.Sprintf("datagram %d", i)), addr); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "20 datagrams", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 20 })
			mu.Lock()
			defer mu.Unlock()
			for i := range got {
				if got[i] != fmt.Sprintf("datagram %d", i) || from[i] != senderAddr {
					t.Errorf("datagram %d: %q from %v, want from %v", i, got[i], from[i], senderAddr)
				}
			}
			if s := l.Stats(); s.PacketsIn != 20 {
				t.Errorf("stats: %d packets in", s.PacketsIn)
			}
		})
	}
}

func TestUDPSendBatch(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fd, _ := udpSocket(t, unix.AF_INET6)
	u, err := l.AttachUDP(fd, UDPConfig{OnReady: func(*UDPConn, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	if u.GSO() {
		t.Error("GSO on without asking")
	}
	r1, a1 := receiver(t, "udp6")
	r2, a2 := receiver(t, "udp6")
	var bufs [][]byte
	var addrs []netip.AddrPort
	for i := range 10 {
		bufs = append(bufs, []byte(fmt.Sprintf("..hdr..to %d: %d", i%2, i)))
		addrs = append(addrs, []netip.AddrPort{a1, a2}[i%2])
	}
	var n int
	onLoop(t, l, func() { n, err = u.SendBatch(bufs, addrs, 7) })
	if n != 10 || err != nil {
		t.Fatalf("SendBatch: %d, %v", n, err)
	}
	for k, r := range []*net.UDPConn{r1, r2} {
		got := readN(t, r, 5)
		for j, g := range got {
			if want := fmt.Sprintf("to %d: %d", k, 2*j+k); string(g) != want {
				t.Errorf("receiver %d datagram %d: %q, want %q", k, j, g, want)
			}
		}
	}
}

// With GSO, a run of equal datagrams to one peer goes out in one message
// and the receiver still gets every datagram, in order, intact.
func TestUDPSendBatchGSO(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fd, _ := udpSocket(t, unix.AF_INET)
	u, err := l.AttachUDP(fd, UDPConfig{GSO: true, OnReady: func(*UDPConn, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	if !u.GSO() {
		t.Fatal("the kernel refused UDP_SEGMENT (Linux 4.18+ has it)")
	}
	r, addr := receiver(t, "udp4")
	other, otherAddr := receiver(t, "udp4")
	var bufs [][]byte
	var addrs []netip.AddrPort
	for i := range 20 {
		bufs = append(bufs, append(make([]byte, 8), bytes.Repeat([]byte{byte('a' + i)}, 100)...))
		addrs = append(addrs, addr)
	}
	bufs = append(bufs, append(make([]byte, 8), []byte("short last")...)) // ends the run
	addrs = append(addrs, addr)
	bufs = append(bufs, append(make([]byte, 8), []byte("elsewhere")...))
	addrs = append(addrs, otherAddr)
	var n int
	var calls uint64
	onLoop(t, l, func() {
		before := l.Stats().Syscalls
		n, err = u.SendBatch(bufs, addrs, 8)
		calls = l.Stats().Syscalls - before
	})
	if n != len(bufs) || err != nil {
		t.Fatalf("SendBatch: %d, %v", n, err)
	}
	if calls != 1 {
		t.Errorf("%d system calls for one batch, want 1 sendmmsg", calls)
	}
	got := readN(t, r, 21)
	for i := range 20 {
		if !bytes.Equal(got[i], bufs[i][8:]) {
			t.Fatalf("datagram %d: %q", i, got[i][:min(len(got[i]), 16)])
		}
	}
	if string(got[20]) != "short last" {
		t.Errorf("last datagram %q", got[20])
	}
	if g := readN(t, other, 1); string(g[0]) != "elsewhere" {
		t.Errorf("other peer got %q", g[0])
	}
	if s := l.Stats(); s.PacketsOut != 22 {
		t.Errorf("stats: %d packets out, want 22 (datagrams, not messages)", s.PacketsOut)
	}
}

func TestUDPRefusals(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fd, _ := udpSocket(t, unix.AF_INET)
	u, err := l.AttachUDP(fd, UDPConfig{OnReady: func(*UDPConn, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 10)}
	if _, err := u.SendBatch(bufs, nil, 0); !errors.Is(err, ErrNotOwner) {
		t.Errorf("SendBatch off the loop: %v", err)
	}
	onLoop(t, l, func() {
		if _, err := u.SendBatch(bufs, []netip.AddrPort{}, 0); !errors.Is(err, unix.EINVAL) {
			t.Errorf("too few addresses: %v", err)
		}
		if _, err := u.SendBatch(bufs, []netip.AddrPort{{}}, 0); !errors.Is(err, unix.EINVAL) {
			t.Errorf("invalid address: %v", err)
		}
		if _, err := u.SendBatch(bufs, nil, 0); !errors.Is(err, unix.EDESTADDRREQ) {
			t.Errorf("unconnected socket without addresses: %v, want EDESTADDRREQ from the kernel", err)
		}
		if _, err := u.RecvBatch(bufs, nil, nil, 0); !errors.Is(err, unix.EINVAL) {
			t.Errorf("RecvBatch without sizes: %v", err)
		}
		if _, err := u.RecvBatch(bufs, []int{0}, nil, 0); !errors.Is(err, ErrWouldBlock) {
			t.Errorf("RecvBatch on an idle socket: %v", err)
		}
	})
	if _, err := l.AttachUDP(fd, UDPConfig{}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("nil OnReady: %v", err)
	}
}

func TestUDPSteadyStateAllocatesNothing(t *testing.T) {
	for _, gro := range []bool{false, true} {
		t.Run(fmt.Sprint("gro=", gro), func(t *testing.T) {
			checkLeaks(t)
			l := newLoop(t, Budget(1<<30))
			fd, addr := udpSocket(t, unix.AF_INET)
			u, err := l.AttachUDP(fd, UDPConfig{GSO: true, GRO: gro, OnReady: func(*UDPConn, Events) {}})
			if err != nil {
				t.Fatal(err)
			}
			if u.GRO() != gro {
				t.Fatalf("GRO %v, asked %v", u.GRO(), gro)
			}
			const n = 16
			bufs, rbufs, sizes, addrs, from := make([][]byte, n), make([][]byte, n), make([]int, n), make([]netip.AddrPort, n), make([]netip.AddrPort, n)
			for i := range bufs {
				bufs[i] = make([]byte, 200)
				rbufs[i] = make([]byte, 2048)
				if gro {
					rbufs[i] = make([]byte, MaxGROBytes)
				}
				addrs[i] = addr // to itself
			}
			onLoop(t, l, func() {
				allocs := testing.AllocsPerRun(100, func() {
					if k, err := u.SendBatch(bufs, addrs, 0); k != n || err != nil {
						t.Fatalf("SendBatch: %d, %v", k, err)
					}
					for got := 0; got < n; {
						// On io_uring the datagrams reach the ring when
						// the kernel is next entered.
						deliver(l)
						k, err := u.RecvBatch(rbufs, sizes, from, 0)
						if err != nil && !errors.Is(err, ErrWouldBlock) {
							t.Fatalf("RecvBatch: %v", err)
						}
						got += k
					}
				})
				if allocs != 0 {
					t.Errorf("%v allocations per batch, want 0", allocs)
				}
			})
		})
	}
}

// A batch that takes several sendmmsg calls counts each datagram once.
func TestUDPSendBatchCountsOnce(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fd, _ := udpSocket(t, unix.AF_INET)
	u, err := l.AttachUDP(fd, UDPConfig{OnReady: func(*UDPConn, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	r, addr := receiver(t, "udp4")
	const n = MaxUDPBatch*2 + 5 // three sendmmsg calls without GSO
	bufs, addrs := make([][]byte, n), make([]netip.AddrPort, n)
	for i := range bufs {
		bufs[i], addrs[i] = []byte{byte(i)}, addr
	}
	var sent int
	var before, after Stats
	onLoop(t, l, func() {
		before = l.Stats()
		sent, err = u.SendBatch(bufs, addrs, 0)
		after = l.Stats()
	})
	if sent != n || err != nil {
		t.Fatalf("SendBatch: %d, %v", sent, err)
	}
	if got := after.PacketsOut - before.PacketsOut; got != n {
		t.Errorf("PacketsOut rose by %d for %d datagrams", got, n)
	}
	readN(t, r, n)
}
