package utun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// These tests compile everywhere GOOS=darwin and run only on a Mac. The
// first two need no privileges: they hold the package's literals and
// layouts against x/sys/unix, whose darwin constants and types are
// generated from the macOS SDK by cgo. The rest need root.

func TestXSysConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"CTLIOCGINFO", ctlIOCGInfo, unix.CTLIOCGINFO},
		{"SIOCSIFFLAGS", siocSIFFlags, unix.SIOCSIFFLAGS},
		{"SIOCGIFFLAGS", siocGIFFlags, unix.SIOCGIFFLAGS},
		{"SIOCDIFADDR", siocDIFAddr, unix.SIOCDIFADDR},
		{"SIOCAIFADDR", siocAIFAddr, unix.SIOCAIFADDR},
		{"SIOCGIFMTU", siocGIFMTU, unix.SIOCGIFMTU},
		{"SIOCSIFMTU", siocSIFMTU, unix.SIOCSIFMTU},
		{"AF_INET", AFInet, unix.AF_INET},
		{"AF_INET6", AFInet6, unix.AF_INET6},
		{"AF_SYSTEM", afSystem, unix.AF_SYSTEM},
		{"AF_SYS_CONTROL", afSysControl, unix.AF_SYS_CONTROL},
		{"IFNAMSIZ", ifNameSize, unix.IFNAMSIZ},
		{"IFF_UP", IFFUp, unix.IFF_UP},
		{"IFF_POINTOPOINT", IFFPointToPoint, unix.IFF_POINTOPOINT},
		{"IFF_RUNNING", IFFRunning, unix.IFF_RUNNING},
		{"IFF_MULTICAST", IFFMulticast, unix.IFF_MULTICAST},
		{"sizeof(struct sockaddr)", sizeofSockaddr, uint64(unsafe.Sizeof(unix.RawSockaddr{}))},
		{"sizeof(struct sockaddr_in)", sizeofSockaddrIn, unix.SizeofSockaddrInet4},
		{"sizeof(struct sockaddr_in6)", sizeofSockaddrIn6, unix.SizeofSockaddrInet6},
		{"sizeof(struct sockaddr_ctl)", sizeofSockaddrCtl, unix.SizeofSockaddrCtl},
		{"sizeof(struct ctl_info)", sizeofCtlInfo, uint64(unsafe.Sizeof(unix.CtlInfo{}))},
	} {
		if c.got != c.want {
			t.Errorf("%s: package has %#x, x/sys/unix %#x", c.name, c.got, c.want)
		}
	}
}

// asBytes returns the memory of *p.
func asBytes[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

func TestXSysLayouts(t *testing.T) {
	sc := unix.RawSockaddrCtl{Sc_len: unix.SizeofSockaddrCtl, Sc_family: unix.AF_SYSTEM, Ss_sysaddr: unix.AF_SYS_CONTROL, Sc_id: 0x12345678, Sc_unit: 8}
	if got := MarshalSockaddrCtl(0x12345678, 8); !bytes.Equal(got, asBytes(&sc)) {
		t.Errorf("sockaddr_ctl:\n got % x\nx/sys % x", got, asBytes(&sc))
	}

	var ci unix.CtlInfo
	copy(ci.Name[:], ControlName)
	if got, _ := MarshalCtlInfo(ControlName); !bytes.Equal(got, asBytes(&ci)) {
		t.Errorf("ctl_info:\n got % x\nx/sys % x", got, asBytes(&ci))
	}

	a4 := netip.MustParseAddr("10.1.2.3")
	s4 := unix.RawSockaddrInet4{Len: unix.SizeofSockaddrInet4, Family: unix.AF_INET, Addr: a4.As4()}
	b4 := make([]byte, sizeofSockaddrIn)
	putSockaddrIn(b4, a4)
	if !bytes.Equal(b4, asBytes(&s4)) {
		t.Errorf("sockaddr_in:\n got % x\nx/sys % x", b4, asBytes(&s4))
	}

	a6 := netip.MustParseAddr("fd00::1:2")
	s6 := unix.RawSockaddrInet6{Len: unix.SizeofSockaddrInet6, Family: unix.AF_INET6, Addr: a6.As16()}
	b6 := make([]byte, sizeofSockaddrIn6)
	putSockaddrIn6(b6, a6)
	if !bytes.Equal(b6, asBytes(&s6)) {
		t.Errorf("sockaddr_in6:\n got % x\nx/sys % x", b6, asBytes(&s6))
	}
	if off := unsafe.Offsetof(s6.Scope_id); off != offSin6ScopeID {
		t.Errorf("sin6_scope_id at %d, layout.go says %d", off, offSin6ScopeID)
	}

	// x/sys's IfreqMTU is the first 20 bytes of struct ifreq.
	m := unix.IfreqMTU{MTU: 1380}
	copy(m.Name[:], "utun3")
	got, _ := MarshalIfreqMTU("utun3", 1380)
	if !bytes.Equal(got[:unsafe.Sizeof(m)], asBytes(&m)) {
		t.Errorf("ifreq mtu:\n got % x\nx/sys % x", got, asBytes(&m))
	}

	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Error("this Mac is not little-endian, but the builders assume it")
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating utun interfaces needs root")
	}
}

func openTest(t *testing.T) *Device {
	t.Helper()
	d, err := Open(AnyUnit)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestOpenLive(t *testing.T) {
	needRoot(t)
	d := openTest(t)
	unit, err := ParseName(d.Name())
	if err != nil {
		t.Fatalf("name %q: %v", d.Name(), err)
	}

	fl, err := unix.FcntlInt(uintptr(d.Fd()), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("F_GETFL = %#x, %v: not non-blocking", fl, err)
	}
	fdfl, err := unix.FcntlInt(uintptr(d.Fd()), unix.F_GETFD, 0)
	if err != nil || fdfl&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v: not close-on-exec", fdfl, err)
	}

	// A new utun is up, running and point-to-point with MTU 1500.
	flags, err := d.Flags()
	if err != nil {
		t.Fatal(err)
	}
	if want := uint16(IFFUp | IFFPointToPoint | IFFRunning); flags&want != want {
		t.Errorf("flags %#x, want %#x set", flags, want)
	}
	if mtu, err := d.MTU(); err != nil || mtu != 1500 {
		t.Errorf("MTU = %d, %v; want 1500", mtu, err)
	}

	// The same unit again is busy.
	if d2, err := Open(unit); !errors.Is(err, unix.EBUSY) {
		t.Errorf("Open(%d) again: %v, want EBUSY", unit, err)
		if d2 != nil {
			d2.Close()
		}
	}

	ifi, err := net.InterfaceByName(d.Name())
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := d.Index(); err != nil || idx != ifi.Index || idx <= 0 {
		t.Errorf("Index = %d, %v; net says %d", idx, err, ifi.Index)
	}

	if err := d.SetMTU(1380); err != nil {
		t.Fatal(err)
	}
	if mtu, err := d.MTU(); err != nil || mtu != 1380 {
		t.Errorf("MTU after SetMTU(1380) = %d, %v", mtu, err)
	}

	if err := d.SetUp(false); err != nil {
		t.Fatal(err)
	}
	if flags, _ := d.Flags(); flags&IFFUp != 0 {
		t.Errorf("flags %#x after SetUp(false)", flags)
	}
	if err := d.SetUp(true); err != nil {
		t.Fatal(err)
	}
	if flags, _ := d.Flags(); flags&IFFUp == 0 {
		t.Errorf("flags %#x after SetUp(true)", flags)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := d.SetMTU(1400); !errors.Is(err, ErrClosed) {
		t.Errorf("SetMTU after Close: %v", err)
	}
	// The interface goes with the socket.
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := net.InterfaceByName(d.Name()); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s still exists after Close", d.Name())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasAddr(t *testing.T, name string, p netip.Prefix) bool {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(ipn.IP)
			ones, _ := ipn.Mask.Size()
			if ip.Unmap() == p.Addr() && ones == p.Bits() {
				return true
			}
		}
	}
	return false
}

// readUntil reads packets from fd until match accepts one, for up to two
// seconds; the kernel also sends its own (MLD reports, router
// solicitations) through a new interface.
func readUntil(t *testing.T, fd int, match func(pkt []byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	buf := make([]byte, 65536)
	for time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
			t.Fatalf("poll: %v", err)
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n >= HeaderLen && match(buf[:n]) {
			return append([]byte(nil), buf[:n]...)
		}
	}
	t.Fatal("no matching packet arrived")
	return nil
}

func TestAddressesAndFramingLive(t *testing.T) {
	needRoot(t)
	d := openTest(t)
	// 198.18.0.0/15 is reserved for benchmarking; fd00::/8 is ULA.
	local4 := netip.MustParsePrefix("198.18.77.1/24")
	peer4 := netip.MustParseAddr("198.18.77.2")
	local6 := netip.MustParsePrefix("fd7a:7e57:1::1/64")

	if err := d.AddAddr(local4, peer4, false); err != nil {
		t.Fatalf("AddAddr %v: %v", local4, err)
	}
	if err := d.AddAddr(local6, netip.Addr{}, true); err != nil {
		t.Fatalf("AddAddr %v: %v", local6, err)
	}
	if !hasAddr(t, d.Name(), local4) {
		t.Errorf("%v not on %s", local4, d.Name())
	}
	if !hasAddr(t, d.Name(), local6) {
		t.Errorf("%v not on %s", local6, d.Name())
	}

	// Kernel to us: a datagram to the peer comes out of the socket behind
	// the header 00 00 00 02.
	const port = 47111
	c4, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer4, port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	if _, err := c4.Write([]byte("hello4")); err != nil {
		t.Fatal(err)
	}
	pkt := readUntil(t, d.Fd(), func(p []byte) bool {
		ip := p[HeaderLen:]
		if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
			return false
		}
		ihl := int(ip[0]&0xf) * 4
		return len(ip) >= ihl+8 && binary.BigEndian.Uint16(ip[ihl+2:]) == port
	})
	if !bytes.Equal(pkt[:HeaderLen], []byte{0, 0, 0, 2}) {
		t.Errorf("IPv4 header % x", pkt[:HeaderLen])
	}

	// And 00 00 00 1e for IPv6, to an on-link address of the /64.
	peer6 := netip.MustParseAddr("fd7a:7e57:1::2")
	c6, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer6, port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c6.Close()
	if _, err := c6.Write([]byte("hello6")); err != nil {
		t.Fatal(err)
	}
	pkt = readUntil(t, d.Fd(), func(p []byte) bool {
		ip := p[HeaderLen:]
		return len(ip) >= 48 && ip[0]>>4 == 6 && ip[6] == 17 && binary.BigEndian.Uint16(ip[42:]) == port
	})
	if !bytes.Equal(pkt[:HeaderLen], []byte{0, 0, 0, 0x1e}) {
		t.Errorf("IPv6 header % x", pkt[:HeaderLen])
	}

	// Us to the kernel: an IPv4 UDP datagram from the peer to a socket
	// bound on the local address, written with the header Framer makes.
	ln, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local4.Addr(), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dport := uint16(ln.LocalAddr().(*net.UDPAddr).Port)
	payload := []byte("from the tunnel")
	ip := make([]byte, 28+len(payload))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8] = 64 // TTL
	ip[9] = 17 // UDP
	src, dst := peer4.As4(), local4.Addr().As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip[:20]))
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload)))
	copy(ip[28:], payload) // UDP checksum 0: none, allowed for IPv4
	frame := make([]byte, HeaderLen+len(ip))
	if err := (Framer{}).PutHeader(frame[:HeaderLen], ip); err != nil {
		t.Fatal(err)
	}
	copy(frame[HeaderLen:], ip)
	if _, err := unix.Write(d.Fd(), frame); err != nil {
		t.Fatalf("write to %s: %v", d.Name(), err)
	}
	ln.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := make([]byte, 100)
	n, _, err := ln.ReadFromUDPAddrPort(got)
	if err != nil || !bytes.Equal(got[:n], payload) {
		t.Errorf("injected datagram: %q, %v", got[:n], err)
	}

	if err := d.DeleteAddr(local4); err != nil {
		t.Errorf("DeleteAddr %v: %v", local4, err)
	}
	if err := d.DeleteAddr(local6); err != nil {
		t.Errorf("DeleteAddr %v: %v", local6, err)
	}
	if hasAddr(t, d.Name(), local4) || hasAddr(t, d.Name(), local6) {
		t.Error("addresses still there after DeleteAddr")
	}
	if err := d.DeleteAddr(local4); !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("deleting %v twice: %v, want EADDRNOTAVAIL", local4, err)
	}
	if err := d.DeleteAddr(local6); !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("deleting %v twice: %v, want EADDRNOTAVAIL", local6, err)
	}

	// An IPv6 /128 with a peer (point-to-point) and an IPv4 address
	// without one (the address is its own destination).
	p2p6 := netip.MustParsePrefix("fd7a:7e57:2::1/128")
	if err := d.AddAddr(p2p6, netip.MustParseAddr("fd7a:7e57:2::2"), true); err != nil {
		t.Errorf("AddAddr %v with peer: %v", p2p6, err)
	}
	self4 := netip.MustParsePrefix("198.18.78.1/32")
	if err := d.AddAddr(self4, netip.Addr{}, false); err != nil {
		t.Errorf("AddAddr %v without peer: %v", self4, err)
	}
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func TestAdoptLive(t *testing.T) {
	needRoot(t)
	d := openTest(t)

	// Not a utun socket: refused, and left as it was.
	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(udp)
	if a, err := Adopt(udp); err == nil {
		a.Close()
		t.Fatal("Adopt accepted a UDP socket")
	}
	if fl, err := unix.FcntlInt(uintptr(udp), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("the refused socket changed: flags %#x, %v", fl, err)
	}

	// A duplicate of a real one: taken over, and the duplicate closed.
	dup, err := unix.Dup(d.Fd())
	if err != nil {
		t.Fatal(err)
	}
	a, err := Adopt(dup)
	if err != nil {
		unix.Close(dup)
		t.Fatalf("Adopt: %v", err)
	}
	defer a.Close()
	if a.Name() != d.Name() || a.Fd() == dup {
		t.Errorf("adopted %q fd %d, from %q fd %d", a.Name(), a.Fd(), d.Name(), dup)
	}
	if fdfl, err := unix.FcntlInt(uintptr(a.Fd()), unix.F_GETFD, 0); err != nil || fdfl&unix.FD_CLOEXEC == 0 {
		t.Errorf("adopted fd not close-on-exec: %#x, %v", fdfl, err)
	}
	if !strings.HasPrefix(a.Name(), "utun") {
		t.Errorf("name %q", a.Name())
	}
}
