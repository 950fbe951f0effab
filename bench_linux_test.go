package tundra

import (
	"net/netip"
	"os"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/internal/packet"
	"github.com/tundra-go/tundra/loop"
	"golang.org/x/sys/unix"
)

// The TUN benchmarks write IPv4 UDP packets into a device and read them
// back after the kernel has forwarded them out of the same device: each op
// is one packet through the kernel and back, the I/O path being the loop's
// raw calls or an *os.File on the Go netpoller (what songgao/water does).
// Compare the ratio within one run; the machine is shared.
//
//	go test -run '^$' -bench TUN -benchmem .

// forwardingDevice creates a device in a private namespace whose kernel
// forwards packets for other addresses of the device's prefix back out
// through it.
func forwardingDevice(b *testing.B) (*Device, [][]byte) {
	ns := netnstest.New(b)
	var dev *Device
	if err := ns.Do(func() error {
		for file, value := range map[string]string{
			"/proc/sys/net/ipv4/ip_forward":                  "1",
			"/proc/sys/net/ipv4/conf/all/send_redirects":     "0",
			"/proc/sys/net/ipv4/conf/default/send_redirects": "0",
			"/proc/sys/net/ipv4/conf/all/rp_filter":          "0",
			"/proc/sys/net/ipv4/conf/default/rp_filter":      "0",
		} {
			if err := os.WriteFile(file, []byte(value), 0); err != nil {
				return err
			}
		}
		var err error
		dev, err = Create("10.40.0.1/24", Name("tdrbench"))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dev.Close() })
	// From one neighbour of the prefix to another: forwarded, not local.
	pkts := make([][]byte, 64)
	for i := range pkts {
		p, err := packet.UDP(netip.MustParseAddrPort("10.40.0.7:4000"), netip.AddrPortFrom(netip.MustParseAddr("10.40.0.9"), uint16(5000+i)), make([]byte, 64))
		if err != nil {
			b.Fatal(err)
		}
		pkts[i] = p
	}
	return dev, pkts
}

func BenchmarkTUNForward(b *testing.B) {
	const batch = 32
	b.Run("loop", func(b *testing.B) {
		dev, pkts := forwardingDevice(b)
		// The whole benchmark runs in one callback, one loop round: lift the
		// per-round budget that would otherwise stop reads after 128.
		l, err := loop.New(loop.Budget(1 << 30))
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
			b.Fatal(err)
		}
		in := make([][]byte, batch)
		for i := range in {
			in[i] = make([]byte, 2048)
		}
		sizes := make([]int, batch)
		var lost int
		b.ReportAllocs()
		b.ResetTimer()
		l.Do(func() {
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				sent, err := dev.Queues()[0].SendBatch(pkts[:n], 0)
				if err != nil {
					b.Error(err)
					return
				}
				for got, tries := 0, 0; got < sent && tries < 1000; tries++ {
					k, err := dev.Queues()[0].RecvBatch(in[:sent-got], sizes, 0)
					if err == nil {
						got += k
					}
					if tries == 999 {
						lost += sent - got
					}
				}
			}
		})
		b.StopTimer()
		if lost > 0 {
			b.Fatalf("%d packets did not come back", lost)
		}
		s := l.Stats()
		b.ReportMetric(float64(s.Syscalls)/float64(b.N), "syscalls/op")
	})
	b.Run("netpoll", func(b *testing.B) {
		dev, pkts := forwardingDevice(b)
		fd, err := unix.Dup(dev.Queues()[0].Fd())
		if err != nil {
			b.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "tun") // non-blocking: goes to the netpoller
		defer f.Close()
		buf := make([]byte, 2048)
		b.ReportAllocs()
		b.ResetTimer()
		for done := 0; done < b.N; done += batch {
			n := min(batch, b.N-done)
			for i := range n {
				if _, err := f.Write(pkts[i]); err != nil {
					b.Fatal(err)
				}
			}
			for range n {
				if _, err := f.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// swapIPv4UDP turns a UDP packet around in place: addresses and ports
// swapped, every checksum still valid (sums do not depend on order).
func swapIPv4UDP(p []byte) bool {
	if len(p) < 28 || p[0] != 0x45 || p[9] != packet.ProtoUDP {
		return false
	}
	var a [4]byte
	copy(a[:], p[12:16])
	copy(p[12:16], p[16:20])
	copy(p[16:20], a[:])
	var port [2]byte
	copy(port[:], p[20:22])
	copy(p[20:22], p[22:24])
	copy(p[22:24], port[:])
	return true
}

// BenchmarkTUNEcho measures one readiness event on a real device: a UDP
// socket sends through the device, the engine wakes up, reads the packet,
// turns it around and writes it back, and the socket reads the answer. One
// op is one round trip; the socket's side is the same for both engines.
func BenchmarkTUNEcho(b *testing.B) {
	client := func(b *testing.B, ns *netnstest.Namespace) {
		var fd int
		if err := ns.Do(func() error {
			var err error
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 6000, Addr: [4]byte{10, 40, 0, 1}}); err != nil {
				return err
			}
			return unix.Connect(fd, &unix.SockaddrInet4{Port: 7000, Addr: [4]byte{10, 40, 0, 9}})
		}); err != nil {
			b.Fatal(err)
		}
		defer unix.Close(fd)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
		msg, buf := make([]byte, 64), make([]byte, 128)
		b.ResetTimer()
		for range b.N {
			if _, err := retryEINTR(func() (int, error) { return unix.Write(fd, msg) }); err != nil {
				b.Fatal(err)
			}
			if _, err := retryEINTR(func() (int, error) { return unix.Read(fd, buf) }); err != nil {
				b.Fatalf("no echo: %v", err)
			}
		}
		b.StopTimer()
	}
	setup := func(b *testing.B) (*netnstest.Namespace, *Device) {
		ns := netnstest.New(b)
		var dev *Device
		if err := ns.Do(func() error {
			var err error
			dev, err = Create("10.40.0.1/24", Name("tdrecho"))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { dev.Close() })
		return ns, dev
	}
	b.Run("loop", func(b *testing.B) {
		ns, dev := setup(b)
		l, err := loop.New()
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		buf := make([]byte, 2048)
		if err := dev.Attach(l, func(q *Queue, _ loop.Events) {
			for {
				n, err := q.Recv(buf)
				if err != nil {
					return
				}
				if swapIPv4UDP(buf[:n]) {
					q.Send(buf[:n])
				}
			}
		}); err != nil {
			b.Fatal(err)
		}
		client(b, ns)
		b.ReportMetric(float64(l.Stats().Syscalls)/float64(b.N), "syscalls/op")
	})
	b.Run("netpoll", func(b *testing.B) {
		ns, dev := setup(b)
		fd, err := unix.Dup(dev.Queues()[0].Fd())
		if err != nil {
			b.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "tun")
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				n, err := f.Read(buf)
				if err != nil {
					return
				}
				if swapIPv4UDP(buf[:n]) {
					f.Write(buf[:n])
				}
			}
		}()
		client(b, ns)
		f.Close()
		<-done
	})
}

// retryEINTR repeats a blocking call the Go runtime's preemption signals
// interrupted.
func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}
