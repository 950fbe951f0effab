package loop_test

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tundra-go/tundra/loop"
	"golang.org/x/sys/unix"
)

// A UDP echo server on a loop: each readiness callback reads a batch of
// datagrams with one recvmmsg and sends them back to their senders with
// one sendmmsg, the buffers reused from call to call. A client on the Go
// netpoller talks to it over loopback.
func ExampleUDPConn() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		panic(err)
	}
	sa, _ := unix.Getsockname(fd)
	server := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))

	// The batch: packet i at bufs[i][offset:], its length in sizes[i]
	// and its sender in addrs[i]. No headroom is needed for UDP.
	const batch, offset = 16, 0
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, batch)
	addrs := make([]netip.AddrPort, batch)
	out := make([][]byte, batch)
	echo := func(u *loop.UDPConn, ev loop.Events) {
		for {
			n, err := u.RecvBatch(bufs, sizes, addrs, offset)
			if err != nil {
				return // ErrWouldBlock: armed again
			}
			for i := range n {
				out[i] = bufs[i][:offset+sizes[i]]
			}
			if _, err := u.SendBatch(out[:n], addrs[:n], offset); err != nil {
				fmt.Println("send:", err) // ErrWouldBlock: a real server keeps them for Writable
			}
			if n < batch {
				return // drained: RecvBatch armed the callback
			}
		}
	}
	if _, err := l.AttachUDP(fd, loop.UDPConfig{OnReady: echo, GSO: true}); err != nil {
		unix.Close(fd)
		panic(err)
	}

	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, m := range []string{"one", "two", "three"} {
		if _, err := c.Write([]byte(m)); err != nil {
			panic(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for range 3 {
		n, err := c.Read(buf)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("echo %q\n", buf[:n])
	}
	// Output:
	// echo "one"
	// echo "two"
	// echo "three"
}
