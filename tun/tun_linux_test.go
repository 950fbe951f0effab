package tun_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
)

// linkDetail is the part of `ip -j -d link show` that tells TUN/TAP devices
// apart (iproute2 6.1 prints linkinfo.info_data for kind "tun").
type linkDetail struct {
	Name     string   `json:"ifname"`
	LinkType string   `json:"link_type"`
	Flags    []string `json:"flags"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			Type        string `json:"type"`
			PI          bool   `json:"pi"`
			VnetHdr     bool   `json:"vnet_hdr"`
			MultiQueue  bool   `json:"multi_queue"`
			NumQueues   *int   `json:"numqueues"`   // multi-queue devices only
			NumDisabled *int   `json:"numdisabled"` // multi-queue devices only
			Persist     bool   `json:"persist"`
			User        *int   `json:"user"`  // only when an owner is set
			Group       *int   `json:"group"` // only when a group is set
		} `json:"info_data"`
	} `json:"linkinfo"`
}

func showLink(t *testing.T, ns *netnstest.Namespace, name string) linkDetail {
	t.Helper()
	var links []linkDetail
	if err := ns.IPJSON(&links, "-d", "link", "show", "dev", name); err != nil {
		t.Fatalf("ip -j -d link show dev %s: %v", name, err)
	}
	if len(links) != 1 {
		t.Fatalf("ip -j -d link show dev %s: %d links", name, len(links))
	}
	if links[0].LinkInfo.Kind != "tun" {
		t.Fatalf("%s: info_kind %q, want \"tun\"", name, links[0].LinkInfo.Kind)
	}
	return links[0]
}

func requireGone(t *testing.T, ns *netnstest.Namespace, name string) {
	t.Helper()
	if l, err := ns.LinkByName(name); !errors.Is(err, netnstest.ErrNoLink) {
		t.Fatalf("link %s still exists (%+v, %v)", name, l, err)
	}
}

// open opens a device inside ns, so that it is born there, and closes it when
// the test ends.
func open(t *testing.T, ns *netnstest.Namespace, cfg tun.Config) *tun.Device {
	t.Helper()
	dev, err := openErr(ns, cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func openErr(ns *netnstest.Namespace, cfg tun.Config) (*tun.Device, error) {
	var dev *tun.Device
	err := ns.Do(func() error {
		var err error
		dev, err = tun.Open(cfg)
		return err
	})
	return dev, err
}

func addQueue(t *testing.T, ns *netnstest.Namespace, dev *tun.Device) *tun.Queue {
	t.Helper()
	var q *tun.Queue
	if err := ns.Do(func() error {
		var err error
		q, err = dev.AddQueue()
		return err
	}); err != nil {
		t.Fatalf("AddQueue: %v", err)
	}
	return q
}

func mustIP(t *testing.T, ns *netnstest.Namespace, args ...string) {
	t.Helper()
	if out, err := ns.Output("ip", args...); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// deleteOnCleanup removes a link the test may leave behind (a persistent
// one, if the test fails half-way), before the namespace goes.
func deleteOnCleanup(t *testing.T, ns *netnstest.Namespace, name string) {
	t.Cleanup(func() { ns.Output("ip", "link", "del", name) })
}

func wantErrno(t *testing.T, what string, err error, errno unix.Errno, op string) *tun.OpError {
	t.Helper()
	var oe *tun.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("%s: error %v (%T) is not an *OpError", what, err, err)
	}
	if !errors.Is(err, errno) {
		t.Fatalf("%s: error %q does not wrap %v (%s)", what, err, errno, unix.ErrnoName(errno))
	}
	if op != "" && oe.Op != op {
		t.Fatalf("%s: Op %q, want %q (error %q)", what, oe.Op, op, err)
	}
	t.Logf("%s: %v", what, err)
	return oe
}

func fcntl(t *testing.T, fd, cmd int) int {
	t.Helper()
	v, err := unix.FcntlInt(uintptr(fd), cmd, 0)
	if err != nil {
		t.Fatalf("fcntl(%d, %d): %v", fd, cmd, err)
	}
	return v
}

func TestOpenTUNAndTAP(t *testing.T) {
	ns := netnstest.New(t)
	for _, tc := range []struct {
		cfg      tun.Config
		name     *regexp.Regexp
		typ      tun.Flags
		linkType string // what ip calls ARPHRD_NONE and ARPHRD_ETHER
		ipType   string
	}{
		{tun.Config{Name: "tdrtun"}, regexp.MustCompile(`^tdrtun$`), tun.FlagTUN, "none", "tun"},
		{tun.Config{Name: "tdrtap", TAP: true}, regexp.MustCompile(`^tdrtap$`), tun.FlagTAP, "ether", "tap"},
		{tun.Config{}, regexp.MustCompile(`^tun[0-9]+$`), tun.FlagTUN, "none", "tun"},
		{tun.Config{TAP: true}, regexp.MustCompile(`^tap[0-9]+$`), tun.FlagTAP, "ether", "tap"},
		{tun.Config{Name: "tdr%d"}, regexp.MustCompile(`^tdr[0-9]+$`), tun.FlagTUN, "none", "tun"},
		{tun.Config{Name: "abcdefghijklmno"}, regexp.MustCompile(`^abcdefghijklmno$`), tun.FlagTUN, "none", "tun"},
	} {
		t.Run(fmt.Sprintf("%s/tap=%t", tc.cfg.Name, tc.cfg.TAP), func(t *testing.T) {
			dev := open(t, ns, tc.cfg)
			name := dev.Name()
			if !tc.name.MatchString(name) {
				t.Fatalf("Name() = %q, want %v", name, tc.name)
			}
			want := tc.typ | tun.FlagNoPI
			if got := dev.Flags(); got != want {
				t.Errorf("Flags() = %v, want %v", got, want)
			}
			if on, known := dev.PacketInfo(); on || !known {
				t.Errorf("PacketInfo() = %t, %t; want false, true", on, known)
			}

			l := showLink(t, ns, name)
			if l.LinkType != tc.linkType || l.LinkInfo.Data.Type != tc.ipType {
				t.Errorf("ip: link_type %q type %q, want %q %q", l.LinkType, l.LinkInfo.Data.Type, tc.linkType, tc.ipType)
			}
			if d := l.LinkInfo.Data; d.PI || d.VnetHdr || d.MultiQueue || d.Persist {
				t.Errorf("ip: info_data %+v, want pi, vnet_hdr, multi_queue and persist all false", d)
			}

			fd := dev.Fd()
			if qs := dev.Queues(); len(qs) != 1 || qs[0].Fd() != fd {
				t.Fatalf("Queues() = %v, want the one queue with fd %d", qs, fd)
			}
			if fcntl(t, fd, unix.F_GETFD)&unix.FD_CLOEXEC == 0 {
				t.Errorf("fd %d lacks FD_CLOEXEC", fd)
			}
			if fl := fcntl(t, fd, unix.F_GETFL); fl&unix.O_NONBLOCK == 0 || fl&unix.O_ACCMODE != unix.O_RDWR {
				t.Errorf("fd %d flags %#x, want O_RDWR|O_NONBLOCK", fd, fl)
			}
			// Link down, nothing queued: a non-blocking read says EAGAIN.
			q := dev.Queues()[0]
			_, err := q.Read(make([]byte, 1500))
			if oe := wantErrno(t, "Read on an idle queue", err, unix.EAGAIN, "read"); oe.Name != name {
				t.Errorf("read error names %q, want %q", oe.Name, name)
			}

			if err := dev.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			requireGone(t, ns, name)
			if dev.Fd() != -1 || q.Fd() != -1 || len(dev.Queues()) != 0 {
				t.Errorf("after Close: Fd %d, queue fd %d, %d queues; want -1, -1, 0", dev.Fd(), q.Fd(), len(dev.Queues()))
			}
			if err := dev.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := q.Read(make([]byte, 10)); !errors.Is(err, os.ErrClosed) {
				t.Errorf("Read after Close = %v, want os.ErrClosed", err)
			}
			if _, err := q.Write(ipv6Packet); !errors.Is(err, os.ErrClosed) {
				t.Errorf("Write after Close = %v, want os.ErrClosed", err)
			}
		})
	}
}

func TestOpenOptionsReachTheKernel(t *testing.T) {
	ns := netnstest.New(t)

	dev := open(t, ns, tun.Config{Name: "tdrpi", PacketInfo: true})
	if on, known := dev.PacketInfo(); !on || !known {
		t.Errorf("PacketInfo() = %t, %t; want true, true", on, known)
	}
	if f := dev.Flags(); f&tun.FlagNoPI != 0 {
		t.Errorf("Flags() = %v, has NO_PI for a PI device", f)
	}
	if d := showLink(t, ns, "tdrpi").LinkInfo.Data; !d.PI || d.VnetHdr {
		t.Errorf("ip: %+v, want pi true, vnet_hdr false", d)
	}

	dev = open(t, ns, tun.Config{Name: "tdrvnet", TAP: true, VnetHdr: true})
	if f := dev.Flags(); f != tun.FlagTAP|tun.FlagNoPI|tun.FlagVnetHdr {
		t.Errorf("Flags() = %v, want TAP|NO_PI|VNET_HDR", f)
	}
	if d := showLink(t, ns, "tdrvnet").LinkInfo.Data; d.PI || !d.VnetHdr {
		t.Errorf("ip: %+v, want pi false, vnet_hdr true", d)
	}

	dev = open(t, ns, tun.Config{Name: "tdrmq", MultiQueue: true})
	if f := dev.Flags(); f != tun.FlagTUN|tun.FlagNoPI|tun.FlagMultiQueue {
		t.Errorf("Flags() = %v, want TUN|NO_PI|MULTI_QUEUE", f)
	}
	if on, known := dev.PacketInfo(); on || !known {
		t.Errorf("PacketInfo() of a multi-queue device Open created = %t, %t; want false, true", on, known)
	}
	d := showLink(t, ns, "tdrmq").LinkInfo.Data
	if !d.MultiQueue || d.NumQueues == nil || *d.NumQueues != 1 {
		t.Errorf("ip: %+v, want multi_queue with numqueues 1", d)
	}
}

// The kernel's answer to TUNGETIFF cannot be trusted for NO_PI; joining a
// multi-queue device that already has queues inherits its framing. Open must
// say it does not know, rather than guess.
func TestOpenJoinsExistingMultiQueue(t *testing.T) {
	ns := netnstest.New(t)
	first := open(t, ns, tun.Config{Name: "tdrjoin", MultiQueue: true, PacketInfo: true})
	if on, known := first.PacketInfo(); !on || !known {
		t.Fatalf("creator: PacketInfo() = %t, %t; want true, true", on, known)
	}
	second := open(t, ns, tun.Config{Name: "tdrjoin", MultiQueue: true, PacketInfo: true})
	if _, known := second.PacketInfo(); known {
		t.Errorf("joiner: PacketInfo() claims to know the framing of a device it did not create")
	}
	if d := showLink(t, ns, "tdrjoin").LinkInfo.Data; !d.PI || d.NumQueues == nil || *d.NumQueues != 2 {
		t.Errorf("ip: %+v, want pi with numqueues 2", d)
	}

	before := leakcheck.FDs(t)
	_, err := openErr(ns, tun.Config{Name: "tdrjoin", MultiQueue: true, PacketInfo: true, VnetHdr: true})
	if !errors.Is(err, tun.ErrFramingMismatch) {
		t.Fatalf("joining with VnetHdr: %v, want ErrFramingMismatch", err)
	}
	t.Logf("joining with VnetHdr: %v", err)
	leakcheck.NoNewFDs(t, before)
	if d := showLink(t, ns, "tdrjoin").LinkInfo.Data; d.VnetHdr || *d.NumQueues != 2 {
		t.Errorf("ip after refused join: %+v, want vnet_hdr false and numqueues 2", d)
	}
}

// udp6Packet builds an IPv6 UDP datagram with a correct checksum, to write
// into a TUN device as if it had arrived on the wire.
func udp6Packet(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	ulen := 8 + len(payload)
	p := make([]byte, 40+ulen)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(ulen))
	p[6] = unix.IPPROTO_UDP
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	u := p[40:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(ulen))
	copy(u[8:], payload)
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(p[8:40]) // pseudo-header: addresses, length, next header
	sum += uint32(ulen) + unix.IPPROTO_UDP
	add(u)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	cs := ^uint16(sum)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return p
}

var (
	addrLocal  = netip.MustParseAddr("fd00::1")
	addrRemote = netip.MustParseAddr("fd00::2")
)

// upWithAddr brings the link up with fd00::1/64 (no DAD): packets for
// fd00::2 are then routed into the device. Even without DAD the kernel
// installs the local route for fd00::1 from a work queue, a moment after
// the address appears; until then a packet written to fd00::1 is dropped
// (Ip6InAddrErrors), so it waits for that route.
func upWithAddr(t *testing.T, ns *netnstest.Namespace, name string) {
	t.Helper()
	mustIP(t, ns, "link", "set", "dev", name, "up")
	mustIP(t, ns, "-6", "addr", "add", "fd00::1/64", "dev", name, "nodad")
	for deadline := time.Now().Add(5 * time.Second); ; {
		var routes []struct {
			Dst string `json:"dst"`
		}
		if err := ns.IPJSON(&routes, "-6", "route", "show", "table", "local", "fd00::1"); err == nil && len(routes) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no local route for fd00::1 on %s after 5s", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendUDP sends payload from a socket inside ns to [fd00::2]:port, which
// routes it into the TUN device.
func sendUDP(t *testing.T, ns *netnstest.Namespace, port int, payload []byte) {
	t.Helper()
	if err := ns.Do(func() error {
		c, err := net.DialUDP("udp6", nil, &net.UDPAddr{IP: addrRemote.AsSlice(), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	}); err != nil {
		t.Fatalf("send UDP to [fd00::2]:%d: %v", port, err)
	}
}

// readUntil polls q until it reads a packet for which match is true, skipping
// the kernel's own traffic (MLD reports, router solicitations). It returns
// the whole buffer read, headers included.
func readUntil(t *testing.T, q *tun.Queue, bufLen int, match func([]byte) bool) []byte {
	t.Helper()
	buf := make([]byte, bufLen)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := q.Read(buf)
		if errors.Is(err, unix.EAGAIN) {
			pfd := []unix.PollFd{{Fd: int32(q.Fd()), Events: unix.POLLIN}}
			unix.Poll(pfd, 100)
			continue
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if match(buf[:n]) {
			return buf[:n]
		}
	}
	t.Fatalf("no matching packet within 5s")
	return nil
}

// isUDPTo reports whether an IPv6 packet is UDP to fd00::2 with the given
// destination port.
func isUDPTo(port int) func([]byte) bool {
	return func(p []byte) bool {
		if len(p) < 48 || p[0]>>4 != 6 || p[6] != unix.IPPROTO_UDP {
			return false
		}
		dst, _ := netip.AddrFromSlice(p[24:40])
		return dst == addrRemote && int(binary.BigEndian.Uint16(p[42:44])) == port
	}
}

func TestPacketInfoHeaderOnTheWire(t *testing.T) {
	ns := netnstest.New(t)
	dev := open(t, ns, tun.Config{Name: "tdrpi", PacketInfo: true})
	upWithAddr(t, ns, "tdrpi")
	q := dev.Queues()[0]
	payload := []byte("hello through the PI header")

	// Kernel to us: the packet starts with 00 00 86 dd.
	sendUDP(t, ns, 9, payload)
	got := readUntil(t, q, 2048, func(b []byte) bool { return len(b) > 4 && isUDPTo(9)(b[4:]) })
	if !bytes.Equal(got[:4], []byte{0, 0, 0x86, 0xdd}) {
		t.Errorf("PI header bytes % x, want 00 00 86 dd", got[:4])
	}
	h, err := tun.ParsePIHeader(got)
	if err != nil || h != (tun.PIHeader{Proto: 0x86DD}) {
		t.Errorf("ParsePIHeader = %+v, %v; want Proto 0x86DD, no flags", h, err)
	}
	if tun.IPVersion(got[4:]) != 6 || !bytes.HasSuffix(got, payload) {
		t.Errorf("packet after the header is not our IPv6 datagram: % x", got)
	}

	// A short buffer: the kernel cuts the packet and says so in the flags,
	// which are in host byte order (TUN_PKT_STRIP is 01 00 on x86).
	sendUDP(t, ns, 10, payload)
	short := readUntil(t, q, 4+48, func(b []byte) bool { return len(b) > 4 && isUDPTo(10)(b[4:]) })
	if len(short) != 4+48 {
		t.Errorf("short read returned %d bytes, want %d", len(short), 4+48)
	}
	if h, _ := tun.ParsePIHeader(short); h.Flags != tun.PIFlagTruncated || h.Proto != 0x86DD {
		t.Errorf("truncated read: PI header %+v (% x), want Flags PIFlagTruncated, Proto 0x86DD", h, short[:4])
	}

	// A buffer too small for the PI header itself: the kernel refuses, and
	// the packet is gone.
	sendUDP(t, ns, 11, payload)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := q.Read(make([]byte, 2))
		if errors.Is(err, unix.EAGAIN) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		wantErrno(t, "Read into 2 bytes on a PI device", err, unix.EINVAL, "read")
		break
	}

	// Us to the kernel: a UDP datagram from fd00::2 with the header from
	// PIHeaderFor reaches a socket bound to fd00::1.
	conn, port := listenLocal(t, ns)
	pkt := udp6Packet(addrRemote, addrLocal, 4000, port, []byte("written with a PI header"))
	ph, err := tun.PIHeaderFor(pkt)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, tun.PIHeaderLen+len(pkt))
	tun.PutPIHeader(frame, ph)
	copy(frame[tun.PIHeaderLen:], pkt)
	if n, err := q.Write(frame); err != nil || n != len(frame) {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(frame))
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rb := make([]byte, 100)
	n, from, err := conn.ReadFromUDP(rb)
	if err != nil || string(rb[:n]) != "written with a PI header" || !from.IP.Equal(addrRemote.AsSlice()) {
		t.Fatalf("socket got %q from %v, %v; want the written datagram from fd00::2", rb[:n], from, err)
	}

	// Without the header the kernel would read the version nibble 0 of the
	// PI header's first byte: a bare packet on a PI device is refused.
	_, err = q.Write([]byte{0x60, 0, 0})
	wantErrno(t, "Write of 3 bytes to a PI device", err, unix.EINVAL, "write")
}

func TestNoPIPacketsAreBare(t *testing.T) {
	ns := netnstest.New(t)
	dev := open(t, ns, tun.Config{Name: "tdrbare"})
	upWithAddr(t, ns, "tdrbare")
	q := dev.Queues()[0]
	sendUDP(t, ns, 9, []byte("bare"))
	got := readUntil(t, q, 2048, isUDPTo(9))
	if got[0]>>4 != 6 {
		t.Errorf("first nibble %d, want 6", got[0]>>4)
	}

	conn, port := listenLocal(t, ns)
	if _, err := q.Write(udp6Packet(addrRemote, addrLocal, 4000, port, []byte("bare write"))); err != nil {
		t.Fatalf("Write: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rb := make([]byte, 100)
	if n, _, err := conn.ReadFromUDP(rb); err != nil || string(rb[:n]) != "bare write" {
		t.Fatalf("socket got %q, %v", rb[:n], err)
	}

	// Junk whose version nibble is 5: the kernel refuses it.
	_, err := q.Write([]byte{0x50, 1, 2, 3, 4, 5, 6, 7})
	wantErrno(t, "Write of version-5 junk to a TUN device", err, unix.EINVAL, "write")
}

func TestExclusive(t *testing.T) {
	ns := netnstest.New(t)
	dev := open(t, ns, tun.Config{Name: "tdrx"})

	before := leakcheck.FDs(t)
	_, err := openErr(ns, tun.Config{Name: "tdrx", Exclusive: true})
	oe := wantErrno(t, "Exclusive on an existing name", err, unix.EBUSY, "TUNSETIFF")
	if oe.Name != "tdrx" || !strings.Contains(err.Error(), "Exclusive") {
		t.Errorf("error %q should name tdrx and say Exclusive is why", err)
	}
	leakcheck.NoNewFDs(t, before)
	// The first device is untouched.
	if l := showLink(t, ns, "tdrx"); l.Name != "tdrx" || dev.Fd() < 0 {
		t.Errorf("first device disturbed: %+v, fd %d", l, dev.Fd())
	}

	fresh := open(t, ns, tun.Config{Name: "tdrx2", Exclusive: true})
	if on, known := fresh.PacketInfo(); on || !known {
		t.Errorf("Exclusive device: PacketInfo() = %t, %t; want false, true", on, known)
	}
}

// Every way Open can fail after the name check leaves no fd behind, and the
// kernel's errno comes through.
func TestOpenErrorsLeaveNoFD(t *testing.T) {
	ns := netnstest.New(t)
	open(t, ns, tun.Config{Name: "tdre"}) // single-queue TUN, attached
	for _, tc := range []struct {
		what  string
		cfg   tun.Config
		errno unix.Errno
		op    string
		is    error
	}{
		{"second queue on a single-queue device", tun.Config{Name: "tdre"}, unix.EBUSY, "TUNSETIFF", nil},
		{"MultiQueue on a single-queue device", tun.Config{Name: "tdre", MultiQueue: true}, unix.EINVAL, "TUNSETIFF", nil},
		{"TAP on a TUN device", tun.Config{Name: "tdre", TAP: true}, unix.EINVAL, "TUNSETIFF", nil},
		{"an interface that is not TUN/TAP", tun.Config{Name: "lo"}, unix.EINVAL, "TUNSETIFF", nil},
		{"a name with a slash", tun.Config{Name: "a/b"}, 0, "validate name", tun.ErrInvalidName},
		{"a 16-byte name", tun.Config{Name: "abcdefghijklmnop"}, 0, "validate name", tun.ErrInvalidName},
	} {
		t.Run(tc.what, func(t *testing.T) {
			before := leakcheck.FDs(t)
			dev, err := openErr(ns, tc.cfg)
			if err == nil {
				dev.Close()
				t.Fatalf("Open(%+v) succeeded", tc.cfg)
			}
			if tc.is != nil {
				var oe *tun.OpError
				if !errors.Is(err, tc.is) || !errors.As(err, &oe) || oe.Op != tc.op {
					t.Fatalf("Open(%+v) = %v, want an *OpError %q wrapping %v", tc.cfg, err, tc.op, tc.is)
				}
				t.Logf("%s: %v", tc.what, err)
			} else {
				wantErrno(t, tc.what, err, tc.errno, tc.op)
			}
			leakcheck.NoNewFDs(t, before)
		})
	}
	if d := showLink(t, ns, "tdre").LinkInfo.Data; d.Type != "tun" || d.MultiQueue {
		t.Errorf("tdre changed by the failed opens: %+v", d)
	}
}

// ValidateName must agree with the kernel. Names the kernel can be asked
// about (not empty, shorter than IFNAMSIZ, no NUL) go through a raw
// TUNSETIFF; the device, if made, vanishes when the fd closes.
func TestValidateNameMatchesKernel(t *testing.T) {
	ns := netnstest.New(t)
	for _, tc := range nameCases {
		if tc.name == "" || len(tc.name) >= 16 || strings.IndexByte(tc.name, 0) >= 0 {
			continue
		}
		var kerr error
		if err := ns.Do(func() error {
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			ifr, err := unix.NewIfreq(tc.name)
			if err != nil {
				return err
			}
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			kerr = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		verr := tun.ValidateName(tc.name)
		if (kerr == nil) != (verr == nil) {
			t.Errorf("name %q: kernel says %v, ValidateName says %v", tc.name, kerr, verr)
		} else if kerr != nil && kerr != unix.EINVAL {
			t.Errorf("name %q: kernel refused with %v, expected EINVAL", tc.name, kerr)
		}
	}
}

// helperEnv carries the interface name to TestHelperProcess running as a
// child with other credentials.
const helperEnv = "TUNDRA_TUN_HELPER_OPEN"

// TestHelperProcess is not a test: TestPersistOwnerGroup re-executes the test
// binary to run it as another uid/gid. It tries to attach to the named device
// and prints one RESULT line.
func TestHelperProcess(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		t.Skip("helper for TestPersistOwnerGroup, runs only in a child process")
	}
	dev, err := tun.Open(tun.Config{Name: name})
	if err != nil {
		var oe *tun.OpError
		var errno unix.Errno
		errors.As(err, &oe)
		errors.As(err, &errno)
		fmt.Printf("RESULT err op=%q errno=%s msg=%q\n", oe.Op, unix.ErrnoName(errno), err)
		os.Exit(0)
	}
	fmt.Printf("RESULT ok name=%s flags=%v\n", dev.Name(), dev.Flags())
	dev.Close()
	os.Exit(0)
}

// runHelper runs TestHelperProcess as uid/gid (no supplementary groups),
// born inside ns, and returns its RESULT line. /dev/net/tun is often mode
// 0600, so the child keeps CAP_DAC_OVERRIDE (and only that) as an ambient
// capability to open it: TUNSETIFF then judges it by uid and gid alone,
// since it lacks CAP_NET_ADMIN.
func runHelper(t *testing.T, ns *netnstest.Namespace, bin, name string, uid, gid uint32) string {
	t.Helper()
	return netnstest.Child{Bin: bin, Run: "TestHelperProcess", Env: []string{helperEnv + "=" + name},
		Uid: uid, Gid: gid, Caps: []uintptr{unix.CAP_DAC_OVERRIDE}}.RunIn(t, ns)
}

func TestPersistOwnerGroup(t *testing.T) {
	ns := netnstest.New(t)
	const name = "tdrp"
	deleteOnCleanup(t, ns, name)
	dev := open(t, ns, tun.Config{Name: name})
	if err := dev.SetPersist(true); err != nil {
		t.Fatalf("SetPersist(true): %v", err)
	}
	if err := dev.SetOwner(12345); err != nil {
		t.Fatalf("SetOwner: %v", err)
	}
	if err := dev.SetGroup(23456); err != nil {
		t.Fatalf("SetGroup: %v", err)
	}
	if dev.Flags()&tun.FlagPersist == 0 {
		t.Errorf("Flags() = %v, lacks PERSIST", dev.Flags())
	}
	// The kernel cannot clear an owner: -1 is an invalid uid to it.
	err := dev.SetOwner(-1)
	if oe := wantErrno(t, "SetOwner(-1)", err, unix.EINVAL, "TUNSETOWNER"); !strings.Contains(oe.Error(), "cannot be cleared") {
		t.Errorf("SetOwner(-1) error %q does not explain", err)
	}
	wantErrno(t, "SetGroup(-1)", dev.SetGroup(-1), unix.EINVAL, "TUNSETGROUP")
	if strconv.IntSize == 64 {
		// The kernel takes the low 32 bits: unchecked, this would quietly
		// make uid 12345 the owner.
		huge := int64(1)<<32 + 12345
		wantErrno(t, "SetOwner(1<<32 + 12345)", dev.SetOwner(int(huge)), unix.EINVAL, "TUNSETOWNER")
	}
	wantErrno(t, "SetGroup(-2)", dev.SetGroup(-2), unix.EINVAL, "TUNSETGROUP")

	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	l := showLink(t, ns, name)
	d := l.LinkInfo.Data
	if !d.Persist || d.User == nil || *d.User != 12345 || d.Group == nil || *d.Group != 23456 {
		t.Fatalf("ip after Close: %+v (user %v group %v), want persist, user 12345, group 23456", d, d.User, d.Group)
	}

	bin := netnstest.HelperBinary(t)
	if res := runHelper(t, ns, bin, name, 12345, 23456); !strings.HasPrefix(res, "RESULT ok name="+name) {
		t.Errorf("owner uid and group could not attach: %s", res)
	}
	// Both must match (Linux 6.18): right uid in the wrong group, wrong
	// uid in the right group, and a stranger are all refused by TUNSETIFF.
	for _, c := range [][2]uint32{{54321, 65432}, {12345, 65432}, {54321, 23456}} {
		res := runHelper(t, ns, bin, name, c[0], c[1])
		if !strings.Contains(res, `op="TUNSETIFF" errno=EPERM`) {
			t.Errorf("uid %d gid %d: %s, want EPERM from TUNSETIFF", c[0], c[1], res)
		}
	}
	if l := showLink(t, ns, name); !l.LinkInfo.Data.Persist {
		t.Fatalf("device lost persistence: %+v", l.LinkInfo.Data)
	}

	// Reattach as root, clear persistence, close: the device goes.
	dev = open(t, ns, tun.Config{Name: name})
	if err := dev.SetPersist(false); err != nil {
		t.Fatalf("SetPersist(false): %v", err)
	}
	if dev.Flags()&tun.FlagPersist != 0 {
		t.Errorf("Flags() = %v after SetPersist(false)", dev.Flags())
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, ns, name)
}

func queueCounts(t *testing.T, ns *netnstest.Namespace, name string) (attached, disabled int) {
	t.Helper()
	d := showLink(t, ns, name).LinkInfo.Data
	if !d.MultiQueue || d.NumQueues == nil || d.NumDisabled == nil {
		t.Fatalf("ip: %+v is not a multi-queue device with queue counts", d)
	}
	return *d.NumQueues, *d.NumDisabled
}

func TestMultiQueue(t *testing.T) {
	ns := netnstest.New(t)
	const name = "tdrmq"
	dev := open(t, ns, tun.Config{Name: name, MultiQueue: true})
	q0 := dev.Queues()[0]
	q1 := addQueue(t, ns, dev)
	q2 := addQueue(t, ns, dev)
	qs := dev.Queues()
	if len(qs) != 3 || qs[0] != q0 || qs[0].Fd() != dev.Fd() || qs[1] != q1 || qs[2] != q2 {
		t.Fatalf("Queues() = %v, want [q0 q1 q2] with q0 the device fd", qs)
	}
	if a, d := queueCounts(t, ns, name); a != 3 || d != 0 {
		t.Fatalf("ip: %d attached, %d disabled; want 3, 0", a, d)
	}

	if err := q1.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if a, d := queueCounts(t, ns, name); a != 2 || d != 1 {
		t.Errorf("after Detach ip says %d attached, %d disabled; want 2, 1", a, d)
	}
	err := q1.Detach()
	if oe := wantErrno(t, "Detach of a detached queue", err, unix.EINVAL, "TUNSETQUEUE detach"); !strings.Contains(oe.Error(), "already detached") {
		t.Errorf("error %q does not say why", err)
	}
	if err := q1.Attach(); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if a, d := queueCounts(t, ns, name); a != 3 || d != 0 {
		t.Errorf("after Attach ip says %d attached, %d disabled; want 3, 0", a, d)
	}
	err = q1.Attach()
	if oe := wantErrno(t, "Attach of an attached queue", err, unix.EINVAL, "TUNSETQUEUE attach"); !strings.Contains(oe.Error(), "not detached") {
		t.Errorf("error %q does not say why", err)
	}

	// With q0 and q1 detached every packet must reach q2, whatever flow
	// it belongs to, and the detached queues read nothing.
	upWithAddr(t, ns, name)
	if err := q0.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := q1.Detach(); err != nil {
		t.Fatal(err)
	}
	for port := 20; port < 25; port++ {
		sendUDP(t, ns, port, []byte("to the only attached queue"))
		readUntil(t, q2, 2048, isUDPTo(port))
	}
	for i, q := range []*tun.Queue{q0, q1} {
		if _, err := q.Read(make([]byte, 2048)); !errors.Is(err, unix.EAGAIN) {
			t.Errorf("detached q%d: Read = %v, want EAGAIN", i, err)
		}
	}

	// Detaching the last attached queue is allowed; the device stays.
	if err := q2.Detach(); err != nil {
		t.Fatalf("Detach of the last attached queue: %v", err)
	}
	if a, d := queueCounts(t, ns, name); a != 0 || d != 3 {
		t.Errorf("all detached: ip says %d attached, %d disabled; want 0, 3", a, d)
	}
	if err := q1.Attach(); err != nil {
		t.Fatalf("reattach: %v", err)
	}

	// Closing one queue drops it from Queues and from the kernel's count.
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	if qs := dev.Queues(); len(qs) != 2 || qs[0] != q0 || qs[1] != q2 || q1.Fd() != -1 {
		t.Errorf("after q1.Close: Queues() = %v, q1 fd %d", qs, q1.Fd())
	}
	if a, d := queueCounts(t, ns, name); a != 0 || d != 2 {
		t.Errorf("after q1.Close ip says %d attached, %d disabled; want 0, 2", a, d)
	}
	if err := q1.Close(); err != nil {
		t.Errorf("second q1.Close: %v", err)
	}

	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, ns, name)
}

// AddQueue from a thread in another namespace must not go and create a
// same-named device there (here: on the host).
func TestAddQueueWrongNamespace(t *testing.T) {
	ns := netnstest.New(t)
	const name = "tdrmqns"
	dev := open(t, ns, tun.Config{Name: name, MultiQueue: true})
	before := leakcheck.FDs(t)
	q, err := dev.AddQueue() // the test goroutine is in the host namespace
	if err == nil {
		q.Close()
		t.Fatalf("AddQueue from the host namespace succeeded")
	}
	t.Logf("AddQueue from another namespace: %v", err)
	if !strings.Contains(err.Error(), "namespace") {
		t.Errorf("error %q does not mention the namespace", err)
	}
	leakcheck.NoNewFDs(t, before)
	if out, err := exec.Command("ip", "link", "show", "dev", name).CombinedOutput(); err == nil {
		t.Errorf("AddQueue created %s on the host: %s", name, out)
	}
	if len(dev.Queues()) != 1 {
		t.Errorf("Queues() = %v, want 1", dev.Queues())
	}
}

func TestAddQueueSingleQueue(t *testing.T) {
	ns := netnstest.New(t)
	dev := open(t, ns, tun.Config{Name: "tdrsq"})
	before := leakcheck.FDs(t)
	var err error
	ns.Do(func() error {
		_, err = dev.AddQueue()
		return nil
	})
	var oe *tun.OpError
	if !errors.Is(err, tun.ErrNotMultiQueue) || !errors.As(err, &oe) || oe.Name != "tdrsq" {
		t.Fatalf("AddQueue on a single-queue device = %v, want an *OpError naming tdrsq wrapping ErrNotMultiQueue", err)
	}
	t.Logf("AddQueue on a single-queue device: %v", err)
	leakcheck.NoNewFDs(t, before)
	// A single-queue device cannot detach its queue either.
	err = dev.Queues()[0].Detach()
	if oe := wantErrno(t, "Detach on a single-queue device", err, unix.EINVAL, "TUNSETQUEUE detach"); !strings.Contains(oe.Error(), "not multi-queue") {
		t.Errorf("error %q does not say why", err)
	}
}

// rawOpen makes a TUN/TAP fd the way foreign code would: blocking, without
// close-on-exec, inside ns.
func rawOpen(t *testing.T, ns *netnstest.Namespace, name string, flags uint16) int {
	t.Helper()
	var fd int
	if err := ns.Do(func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("raw open of %s: %v", name, err)
	}
	return fd
}

func TestAdopt(t *testing.T) {
	ns := netnstest.New(t)
	raw := rawOpen(t, ns, "tdra", unix.IFF_TUN|unix.IFF_NO_PI)
	// Inspect looks without touching.
	name, flags, err := tun.Inspect(raw)
	if err != nil || name != "tdra" || flags&tun.FlagTUN == 0 {
		t.Errorf("Inspect: %q %v %v, want tdra with TUN", name, flags, err)
	}
	if _, err := unix.FcntlInt(uintptr(raw), unix.F_GETFD, 0); err != nil {
		t.Fatalf("Inspect closed the fd: %v", err)
	}
	dev, err := tun.Adopt(raw)
	if err != nil {
		unix.Close(raw)
		t.Fatalf("Adopt: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	if _, err := unix.FcntlInt(uintptr(raw), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("original fd %d after Adopt: F_GETFD error %v, want EBADF (closed)", raw, err)
	}
	if dev.Name() != "tdra" || dev.Flags() != tun.FlagTUN|tun.FlagNoPI {
		t.Errorf("Adopt learned %q %v, want tdra TUN|NO_PI", dev.Name(), dev.Flags())
	}
	if on, known := dev.PacketInfo(); on || known {
		t.Errorf("PacketInfo() = %t, %t; want false, false (the kernel cannot say)", on, known)
	}
	fd := dev.Fd()
	if fd < 3 || fcntl(t, fd, unix.F_GETFD)&unix.FD_CLOEXEC == 0 {
		t.Errorf("adopted fd %d: want >= 3 and close-on-exec", fd)
	}
	if fcntl(t, fd, unix.F_GETFL)&unix.O_NONBLOCK == 0 {
		t.Fatalf("adopted fd %d is blocking", fd) // a Read would hang
	}
	// The duplicate is the same queue: traffic flows through it.
	upWithAddr(t, ns, "tdra")
	sendUDP(t, ns, 9, []byte("adopted"))
	readUntil(t, dev.Queues()[0], 2048, isUDPTo(9))
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, ns, "tdra")
}

// A detached queue of a multi-queue device can be adopted too; the
// per-queue DETACH bit stays out of the device flags.
func TestAdoptDetachedQueue(t *testing.T) {
	ns := netnstest.New(t)
	const mq = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE
	a := rawOpen(t, ns, "tdrad", mq)
	defer unix.Close(a)
	b := rawOpen(t, ns, "tdrad", mq)
	ifr, _ := unix.NewIfreq("")
	ifr.SetUint16(unix.IFF_DETACH_QUEUE)
	if err := unix.IoctlIfreq(b, unix.TUNSETQUEUE, ifr); err != nil {
		unix.Close(b)
		t.Fatal(err)
	}
	dev, err := tun.Adopt(b)
	if err != nil {
		unix.Close(b)
		t.Fatalf("Adopt of a detached queue: %v", err)
	}
	defer dev.Close()
	if dev.Flags() != tun.FlagTUN|tun.FlagNoPI|tun.FlagMultiQueue {
		t.Errorf("Flags() = %v, want TUN|NO_PI|MULTI_QUEUE", dev.Flags())
	}
	if err := dev.Queues()[0].Attach(); err != nil {
		t.Errorf("Attach of the adopted detached queue: %v", err)
	}
	if at, dis := queueCounts(t, ns, "tdrad"); at != 2 || dis != 0 {
		t.Errorf("ip: %d attached, %d disabled; want 2, 0", at, dis)
	}
}

func TestAdoptRejects(t *testing.T) {
	ns := netnstest.New(t)
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	null, err := unix.Open("/dev/null", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(null)
	var unbound, sock int
	if err := ns.Do(func() error {
		var err error
		if unbound, err = unix.Open("/dev/net/tun", unix.O_RDWR, 0); err != nil {
			return err
		}
		if sock, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, 0); err != nil {
			unix.Close(unbound)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(unbound)
	defer unix.Close(sock)
	file, err := os.CreateTemp("", "tundra-adopt-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(file.Name())
	defer file.Close()
	closed, err := unix.Dup(null)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(closed)

	for _, tc := range []struct {
		what  string
		fd    int
		errno unix.Errno
		open  bool
	}{
		{"pipe", p[0], unix.ENOTTY, true},
		{"/dev/null", null, unix.ENOTTY, true},
		{"unbound /dev/net/tun fd", unbound, unix.EBADFD, true},
		{"UDP socket", sock, unix.ENOTTY, true},
		{"regular file", int(file.Fd()), unix.ENOTTY, true},
		{"closed fd", closed, unix.EBADF, false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			var fl, fdfl int
			if tc.open {
				fl, fdfl = fcntl(t, tc.fd, unix.F_GETFL), fcntl(t, tc.fd, unix.F_GETFD)
			}
			before := leakcheck.FDs(t)
			if _, _, err := tun.Inspect(tc.fd); err == nil {
				t.Errorf("Inspect(%s) succeeded", tc.what)
			} else {
				wantErrno(t, "Inspect("+tc.what+")", err, tc.errno, "TUNGETIFF")
			}
			dev, err := tun.Adopt(tc.fd)
			if err == nil {
				dev.Close()
				t.Fatalf("Adopt(%s) succeeded", tc.what)
			}
			wantErrno(t, "Adopt("+tc.what+")", err, tc.errno, "TUNGETIFF")
			leakcheck.NoNewFDs(t, before)
			if tc.open {
				if got := fcntl(t, tc.fd, unix.F_GETFL); got != fl {
					t.Errorf("status flags changed from %#x to %#x", fl, got)
				}
				if got := fcntl(t, tc.fd, unix.F_GETFD); got != fdfl {
					t.Errorf("fd flags changed from %#x to %#x", fdfl, got)
				}
			}
		})
	}
}

func TestFeatures(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	before := leakcheck.FDs(t)
	f, err := tun.Features()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TUNGETFEATURES: %#04x %v", uint16(f), f)
	want := tun.FlagTUN | tun.FlagTAP | tun.FlagNoPI | tun.FlagMultiQueue | tun.FlagVnetHdr
	if f&want != want {
		t.Errorf("Features() = %v, lacks %v", f, want&^f)
	}
	// Read-only and per-queue bits are not TUNSETIFF features.
	if f&(tun.FlagPersist|tun.FlagAttachQueue|tun.FlagDetachQueue) != 0 {
		t.Errorf("Features() = %v, claims non-feature bits", f)
	}
	leakcheck.NoNewFDs(t, before)
}

// Read and Write are on the packet path: no allocation, even for EAGAIN.
func TestReadWriteDoNotAllocate(t *testing.T) {
	ns := netnstest.New(t)
	dev := open(t, ns, tun.Config{Name: "tdralloc"})
	mustIP(t, ns, "link", "set", "dev", "tdralloc", "up")
	q := dev.Queues()[0]
	buf := make([]byte, 2048)
	// No address and no route: the kernel accepts the written packet, then
	// drops it.
	pkt := udp6Packet(addrRemote, addrLocal, 1, 2, []byte("x"))
	if _, err := q.Write(pkt); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := q.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Write allocates %v times per call", n)
	}
	// Drain what the kernel queued when the link came up, then measure
	// reads that find nothing.
	for {
		if _, err := q.Read(buf); err != nil {
			break
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := q.Read(buf); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("Read: %v", err)
		}
	}); n != 0 {
		t.Errorf("Read returning EAGAIN allocates %v times per call", n)
	}
}

// Close is idempotent under concurrency: every queue fd is closed once.
func TestConcurrentClose(t *testing.T) {
	ns := netnstest.New(t)
	dev := open(t, ns, tun.Config{Name: "tdrcc", MultiQueue: true})
	qs := []*tun.Queue{dev.Queues()[0], addQueue(t, ns, dev), addQueue(t, ns, dev)}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- dev.Close()
		}()
		for _, q := range qs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- q.Close()
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev.Flags()
			dev.Queues()
			dev.SetPersist(false) // may run before or after the closes
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Close: %v", err)
		}
	}
	for i, q := range qs {
		if q.Fd() != -1 {
			t.Errorf("queue %d fd %d after Close", i, q.Fd())
		}
	}
	requireGone(t, ns, "tdrcc")
	if err := dev.SetPersist(true); !errors.Is(err, os.ErrClosed) {
		t.Errorf("SetPersist after Close = %v, want os.ErrClosed", err)
	}
	if _, err := dev.AddQueue(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("AddQueue after Close = %v, want os.ErrClosed", err)
	}
}

// AdoptQueues takes several queue fds of one device, all or nothing.
func TestAdoptQueues(t *testing.T) {
	ns := netnstest.New(t)
	const mq = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE
	fds := []int{rawOpen(t, ns, "tdrmqa", mq), rawOpen(t, ns, "tdrmqa", mq), rawOpen(t, ns, "tdrmqa", mq)}
	other := rawOpen(t, ns, "tdrmqb", mq)
	defer unix.Close(other)

	// A foreign fd in the set: refused, every fd still open.
	before := leakcheck.FDs(t)
	if _, err := tun.AdoptQueues([]int{fds[0], other}); !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "tdrmqb") {
		t.Errorf("mixed devices: %v", err)
	}
	leakcheck.NoNewFDs(t, before)
	for _, fd := range append(fds, other) {
		fcntl(t, fd, unix.F_GETFD) // fails the test if fd was closed
	}

	dev, err := tun.AdoptQueues(fds)
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		t.Fatal(err)
	}
	defer dev.Close()
	// Taken as they are, without a duplicate: the queues are the
	// descriptors themselves, now close-on-exec and non-blocking.
	for i, q := range dev.Queues() {
		if q.Fd() != fds[i] {
			t.Errorf("queue %d has fd %d, want the original %d (no duplicate)", i, q.Fd(), fds[i])
		}
		if fl := fcntl(t, q.Fd(), unix.F_GETFD); fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("queue %d not close-on-exec", i)
		}
		if fl := fcntl(t, q.Fd(), unix.F_GETFL); fl&unix.O_NONBLOCK == 0 {
			t.Errorf("queue %d blocking", i)
		}
	}
	if n := len(dev.Queues()); n != 3 || dev.Name() != "tdrmqa" {
		t.Errorf("%s with %d queues, want tdrmqa with 3", dev.Name(), n)
	}
	if at, dis := queueCounts(t, ns, "tdrmqa"); at != 3 || dis != 0 {
		t.Errorf("ip: %d attached, %d disabled", at, dis)
	}
	if _, err := tun.AdoptQueues(nil); !errors.Is(err, unix.EINVAL) {
		t.Errorf("no fds: %v", err)
	}
}

func TestSetOffload(t *testing.T) {
	ns := netnstest.New(t)
	dev := open(t, ns, tun.Config{Name: "tdroff", VnetHdr: true})
	all := tun.OffloadCsum | tun.OffloadTSO4 | tun.OffloadTSO6 | tun.OffloadUSO4 | tun.OffloadUSO6
	if err := dev.SetOffload(all); err != nil {
		t.Fatalf("SetOffload(%v) on Linux 6.18: %v", all, err)
	}
	if err := dev.SetOffload(0x1000); !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "0x1000") {
		t.Errorf("unknown flag: %v, want EINVAL naming it", err)
	}
	plain := open(t, ns, tun.Config{Name: "tdrplain"})
	if err := plain.SetOffload(tun.OffloadCsum); !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "VnetHdr") {
		t.Errorf("device without the virtio-net header: %v", err)
	}
	if got := all.String(); got != "CSUM|TSO4|TSO6|USO4|USO6" {
		t.Errorf("String: %q", got)
	}
}

// listenLocal binds a UDP socket in ns to the device's address (addrLocal)
// on a free port, closed when the test ends.
func listenLocal(t *testing.T, ns *netnstest.Namespace) (*net.UDPConn, uint16) {
	t.Helper()
	var conn *net.UDPConn
	if err := ns.Do(func() (err error) {
		conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: addrLocal.AsSlice()})
		return err
	}); err != nil {
		t.Fatalf("listen on %v: %v", addrLocal, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, uint16(conn.LocalAddr().(*net.UDPAddr).Port)
}
