package loop

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkUDPBatch measures UDPConn's batched path: 64 datagrams sent by
// one sendmmsg to a socket on loopback and read back with recvmmsg (on
// io_uring, from the multishot recvmsg's ring), on one thread. One op is one datagram sent and received.
func BenchmarkUDPBatch(b *testing.B) {
	const batch = 64
	l, err := New(Budget(1 << 30))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	open := func() (*UDPConn, netip.AddrPort) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			b.Fatal(err)
		}
		sa, _ := unix.Getsockname(fd)
		u, err := l.AttachUDP(fd, UDPConfig{OnReady: func(*UDPConn, Events) {}})
		if err != nil {
			b.Fatal(err)
		}
		return u, netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	}
	tx, _ := open()
	rx, to := open()
	out := make([][]byte, batch)
	in := make([][]byte, batch)
	addrs := make([]netip.AddrPort, batch)
	for i := range out {
		out[i] = make([]byte, 100)
		in[i] = make([]byte, 2048)
		addrs[i] = to
	}
	sizes := make([]int, batch)
	b.ReportAllocs()
	b.SetBytes(100)
	roundTrips(b, l, batch,
		func(n int) error { _, err := tx.SendBatch(out[:n], addrs[:n], 0); return err },
		func(n int) (int, error) { return rx.RecvBatch(in[:n], sizes, nil, 0) })
}
