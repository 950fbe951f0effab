package tunbpf_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
)

// Helpers for the tests that send real traffic through a TUN device in a
// private network namespace: the device gets fd00::1/64 and 192.0.2.1/24
// (a documentation prefix), and the tests send to fd00::2 and 192.0.2.2,
// which the namespace routes into the device, where the test reads them.
// Nothing leaves the namespace.

var (
	remote6 = netip.MustParseAddr("fd00::2")
	remote4 = netip.MustParseAddr("192.0.2.2")
)

// openUp opens a TUN device inside ns, brings it up with the addresses
// above, and closes it when the test ends.
func openUp(t *testing.T, ns *netnstest.Namespace, cfg tun.Config) *tun.Device {
	t.Helper()
	var dev *tun.Device
	if err := ns.Do(func() error {
		var err error
		dev, err = tun.Open(cfg)
		return err
	}); err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { dev.Close() })
	for _, args := range [][]string{
		{"link", "set", "dev", cfg.Name, "up"},
		{"-6", "addr", "add", "fd00::1/64", "dev", cfg.Name, "nodad"},
		{"-4", "addr", "add", "192.0.2.1/24", "dev", cfg.Name},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return dev
}

func addQueues(t *testing.T, ns *netnstest.Namespace, dev *tun.Device, n int) []*tun.Queue {
	t.Helper()
	if err := ns.Do(func() error {
		for range n {
			if _, err := dev.AddQueue(); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("AddQueue: %v", err)
	}
	return dev.Queues()
}

// txDropped reads the device's tx_dropped counter.
func txDropped(t *testing.T, ns *netnstest.Namespace, name string) uint64 {
	t.Helper()
	var links []struct {
		Stats struct {
			TX struct {
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := ns.IPJSON(&links, "-s", "link", "show", "dev", name); err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 {
		t.Fatalf("ip -s link show dev %s: %d links", name, len(links))
	}
	return links[0].Stats.TX.Dropped
}

// flow is one UDP flow the tests send: from a fixed local port to a
// destination, optionally with IPv4 options on the socket.
type flow struct {
	dst       netip.Addr
	sport     uint16 // 0: any
	dport     uint16
	ipOptions []byte // IPv4 only: IP_OPTIONS for the socket
}

// send sends n datagrams on f from inside ns, each payload made by
// payload(i).
func (f flow) send(t *testing.T, ns *netnstest.Namespace, n int, payload func(i int) []byte) {
	t.Helper()
	err := ns.Do(func() error {
		network := "udp6"
		if f.dst.Is4() {
			network = "udp4"
		}
		var laddr *net.UDPAddr
		if f.sport != 0 {
			laddr = &net.UDPAddr{Port: int(f.sport)}
		}
		c, err := net.DialUDP(network, laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(f.dst, f.dport)))
		if err != nil {
			return err
		}
		defer c.Close()
		if f.ipOptions != nil {
			rc, err := c.SyscallConn()
			if err != nil {
				return err
			}
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IP, unix.IP_OPTIONS, string(f.ipOptions))
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("IP_OPTIONS: %w", serr)
			}
		}
		for i := range n {
			if _, err := c.Write(payload(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending to %v:%d: %v", f.dst, f.dport, err)
	}
}

// udpPacket is what the tests pick out of a read IP packet.
type udpPacket struct {
	v6           bool
	ipHeaderLen  int
	dst          netip.Addr
	sport, dport uint16
	payload      []byte
	raw          []byte
}

// parseUDP recognises a UDP packet to one of the remote addresses; it
// skips the kernel's own traffic (MLD, router solicitations).
func parseUDP(p []byte) (udpPacket, bool) {
	var u udpPacket
	switch {
	case len(p) >= 48 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_UDP:
		u.v6, u.ipHeaderLen = true, 40
		u.dst = netip.AddrFrom16([16]byte(p[24:40]))
	case len(p) >= 28 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP:
		u.ipHeaderLen = int(p[0]&0x0f) * 4
		if len(p) < u.ipHeaderLen+8 {
			return u, false
		}
		u.dst = netip.AddrFrom4([4]byte(p[16:20]))
	default:
		return u, false
	}
	if u.dst != remote6 && u.dst != remote4 {
		return u, false
	}
	l4 := p[u.ipHeaderLen:]
	u.sport, u.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	u.payload = l4[8:]
	u.raw = p
	return u, true
}

// drain reads q until nothing arrives for quiet, or until deadline, and
// returns the UDP packets to the remote addresses.
func drain(t *testing.T, q *tun.Queue, quiet time.Duration) []udpPacket {
	t.Helper()
	var got []udpPacket
	buf := make([]byte, 65536)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := q.Read(buf)
		if errors.Is(err, unix.EAGAIN) {
			pfd := []unix.PollFd{{Fd: int32(q.Fd()), Events: unix.POLLIN}}
			k, perr := unix.Poll(pfd, int(quiet/time.Millisecond))
			if perr != nil && perr != unix.EINTR {
				t.Fatalf("poll: %v", perr)
			}
			if k == 0 {
				return got
			}
			continue
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if u, ok := parseUDP(append([]byte(nil), buf[:n]...)); ok {
			got = append(got, u)
		}
	}
	t.Fatalf("queue still busy after 10s")
	return nil
}

// constProgram loads a socket filter that returns v for every packet.
func constProgram(t *testing.T, typ ebpf.ProgramType, v int32) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "tundra_const",
		Type:         typ,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm32(asm.R0, v), asm.Return()},
	})
	if err != nil {
		t.Fatalf("loading a %v program: %v", typ, err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

func wantOpError(t *testing.T, what string, err error, target error, op string) *tun.OpError {
	t.Helper()
	var oe *tun.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("%s: error %v (%T) is not a *tun.OpError", what, err, err)
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: error %q does not wrap %v", what, err, target)
	}
	if oe.Op != op {
		t.Errorf("%s: Op %q, want %q", what, oe.Op, op)
	}
	return oe
}
