package replay

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/tun"
)

// The device's addresses in every privileged test: the benchmarking range
// and a ULA, inside a namespace of the test's own.
var (
	devPrefix4 = netip.MustParsePrefix("198.18.0.1/24")
	devPrefix6 = netip.MustParsePrefix("fd00:7e57::1/64")
)

// realDir is where the third-party captures are, relative to this package.
const realDir = realDirPath

// testDevice is a TUN device, up and addressed, in a private namespace.
type testDevice struct {
	ns  *netnstest.Namespace
	dev *tun.Device
}

func newTestDevice(t *testing.T, name string, cfg tun.Config) *testDevice {
	t.Helper()
	ns := netnstest.New(t)
	// Forwarding is inherited from the host for IPv4; make it off, so a
	// packet for someone else is dropped (and counted), never forwarded.
	if out, err := ns.Output("sysctl", "-q", "-w", "net.ipv4.conf.all.forwarding=0", "net.ipv6.conf.all.forwarding=0"); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	cfg.Name = name
	var dev *tun.Device
	err := ns.Do(func() error {
		var err error
		if dev, err = tun.Open(cfg); err != nil {
			return err
		}
		c, err := nl.Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		link, err := c.LinkByName(name)
		if err != nil {
			return err
		}
		for _, p := range []netip.Prefix{devPrefix4, devPrefix6} {
			if err := c.AddAddr(nl.Addr{Index: link.Index, Prefix: p, Flags: nl.IFA_F_NODAD}); err != nil {
				return fmt.Errorf("add %v: %w", p, err)
			}
		}
		return c.SetLinkUp(link.Index)
	})
	if err != nil {
		if dev != nil {
			dev.Close()
		}
		t.Fatalf("setting up %s: %v", name, err)
	}
	t.Cleanup(func() { dev.Close() })
	// The kernel installs the local route of an IPv6 address from a work
	// queue, a moment after the address is added, even without DAD; until
	// then packets for it are "not for this host". Wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var routes []json.RawMessage
		err := ns.IPJSON(&routes, "-6", "route", "show", "table", "local", devPrefix6.Addr().String())
		if err == nil && len(routes) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the local route of %v did not appear within 5s (%v)", devPrefix6.Addr(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &testDevice{ns: ns, dev: dev}
}

// snmp reads the namespace's counters the test's own way: from a thread
// inside the namespace, through /proc/thread-self/net.
func (d *testDevice) snmp(t *testing.T) counterSet {
	t.Helper()
	cs := counterSet{}
	err := d.ns.Do(func() error {
		for _, f := range []string{"snmp", "snmp6"} {
			b, err := os.ReadFile("/proc/thread-self/net/" + f)
			if err != nil {
				return err
			}
			if f == "snmp" {
				parseSnmp(b, cs)
			} else {
				parseSnmp6(b, cs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading counters: %v", err)
	}
	return cs
}

// rxDropped is the device's receive drop counter as ip reports it.
func (d *testDevice) rxDropped(t *testing.T) uint64 {
	t.Helper()
	var links []struct {
		Stats struct {
			Rx struct {
				Dropped uint64 `json:"dropped"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := d.ns.IPJSON(&links, "-s", "link", "show", "dev", d.dev.Name()); err != nil || len(links) != 1 {
		t.Fatalf("ip -s link show: %v (%d links)", err, len(links))
	}
	return links[0].Stats.Rx.Dropped
}

// sink is a socket the replay's packets may be delivered to.
type sink struct {
	mu    sync.Mutex
	got   [][]byte
	close func()
}

func (s *sink) datagrams() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...)
}

// listen opens the expectation's sockets in the namespace (dual-stack,
// so one socket takes IPv4 and IPv6) and closes them when the test ends.
func (d *testDevice) listen(t *testing.T, ls []Listen) map[int]*sink {
	t.Helper()
	sinks := map[int]*sink{}
	for _, l := range ls {
		s := &sink{}
		err := d.ns.Do(func() error {
			addr := "[::]:" + strconv.Itoa(l.Port)
			if l.Proto == "udp" {
				c, err := net.ListenPacket("udp", addr)
				if err != nil {
					return err
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					buf := make([]byte, 65536)
					for {
						n, _, err := c.ReadFrom(buf)
						if err != nil {
							return
						}
						s.mu.Lock()
						s.got = append(s.got, append([]byte(nil), buf[:n]...))
						s.mu.Unlock()
					}
				}()
				s.close = func() { c.Close(); <-done }
				return nil
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			s.close = func() { ln.Close(); <-done }
			return nil
		})
		if err != nil {
			t.Fatalf("listen %s %d: %v", l.Proto, l.Port, err)
		}
		t.Cleanup(s.close)
		sinks[l.Port] = s
	}
	return sinks
}

// expectFiles lists the expectations: generated ones next to their
// captures, hand-written ones for the shared real captures in real/.
func expectFiles(t *testing.T) (generated, real []string) {
	t.Helper()
	generated, _ = filepath.Glob("../testdata/pcaps/*.expect")
	real, _ = filepath.Glob("../testdata/pcaps/real/*.expect")
	if len(generated) == 0 || len(real) == 0 {
		t.Fatalf("no expectation files (generated %d, real %d)", len(generated), len(real))
	}
	return generated, real
}

func loadExpect(t *testing.T, path string) (*Expect, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, err := ParseExpect(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	capPath := filepath.Join(filepath.Dir(path), e.Capture)
	if _, err := os.Stat(capPath); err != nil {
		t.Fatalf("%s names capture %s, which cannot be read: %v", path, capPath, err)
	}
	return e, capPath
}

// TestReplayExpectations replays every generated capture and every shared
// real one into a fresh device and checks every line of its expectation,
// both through the library's own verdicts and independently: the test
// decodes what the device carried with gopacket, reads the namespace's
// counters itself, and looks at what its sockets received.
func TestReplayExpectations(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	if _, err := os.Stat(filepath.Join(realDir, "SOURCES.md")); err != nil {
		t.Fatalf("the real captures must be in %s (testdata/pcaps/real from the repository root): %v", realDir, err)
	}
	generated, real := expectFiles(t)
	// Every real capture needs an expectation.
	pcaps, _ := filepath.Glob(filepath.Join(realDir, "*.pcap"))
	covered := map[string]bool{}
	for _, p := range real {
		e, _ := loadExpect(t, p)
		covered[filepath.Base(e.Capture)] = true
	}
	for _, p := range pcaps {
		if !covered[filepath.Base(p)] {
			t.Errorf("real capture %s has no expectation in testdata/pcaps/real", filepath.Base(p))
		}
	}
	for i, path := range append(generated, real...) {
		name := strings.TrimSuffix(filepath.Base(path), ".expect")
		t.Run(name, func(t *testing.T) {
			replayAndCheck(t, path, fmt.Sprintf("rp%d", i), tun.Config{})
		})
	}
}

// A device that carries the 4-byte packet-information header takes the
// same packets, framed by the replay, with the same outcomes.
func TestReplayPacketInfo(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	for i, name := range []string{"icmp6-echo.pcapng", "tcp.pcap", "udp.pcap"} {
		t.Run(name, func(t *testing.T) {
			replayAndCheck(t, "../testdata/pcaps/"+name+".expect", fmt.Sprintf("rpi%d", i), tun.Config{PacketInfo: true})
		})
	}
}

func replayAndCheck(t *testing.T, expPath, devName string, cfg tun.Config) {
	exp, capPath := loadExpect(t, expPath)
	d := newTestDevice(t, devName, cfg)
	sinks := d.listen(t, exp.Listen)
	before, dropBefore := d.snmp(t), d.rxDropped(t)

	var capture bytes.Buffer
	opts := Options{
		Device:   d.dev,
		File:     capPath,
		Name:     filepath.Base(capPath),
		Pace:     PaceFast,
		Rewrite:  RewriteConfig{Prefixes: []netip.Prefix{devPrefix4, devPrefix6}},
		Linger:   300 * time.Millisecond,
		Capture:  &capture,
		KeepData: true,
	}
	exp.Apply(&opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var out strings.Builder
	s.Print(&out)
	s.PrintPackets(&out)
	t.Logf("\n%s", out.String())
	if s.CountersNote != "" {
		t.Errorf("counters: %s", s.CountersNote)
	}
	if err := exp.Check(&s); err != nil {
		t.Errorf("the library's verdicts differ from %s:\n%v", filepath.Base(expPath), err)
	}

	// Independent checks.
	// The socket readers are goroutines: wait until each sink holds as
	// many datagrams as the expectation delivers to its port.
	delivered := map[int]int{}
	for i, pe := range exp.Packets {
		if i < len(s.Packets) && pe.Verdict == VerdictDelivered && len(pe.Args) == 2 {
			port, _ := strconv.Atoi(pe.Args[1])
			delivered[port]++
		}
	}
	for port, n := range delivered {
		for deadline := time.Now().Add(5 * time.Second); sinks[port] != nil && len(sinks[port].datagrams()) < n && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	after, dropAfter := d.snmp(t), d.rxDropped(t)
	answers := readCapture(t, capture.Bytes())
	if uint64(len(answers)) != s.Capture.Packets || s.DeviceRead != len(answers) {
		t.Errorf("capture has %d packets; the recorder wrote %d, the device read %d", len(answers), s.Capture.Packets, s.DeviceRead)
	}
	wantCounters := map[string]int64{}
	refused := 0
	used := map[int]map[int]bool{} // port -> datagram index already matched
	for i, pe := range exp.Packets {
		if i >= len(s.Packets) {
			break
		}
		o := &s.Packets[i]
		where := fmt.Sprintf("record %d (%s)", o.Number, o.Desc)
		switch pe.Verdict {
		case VerdictAnswered:
			for _, k := range pe.Args {
				if !answeredIn(answers, o.Data, AnswerKind(k)) {
					t.Errorf("%s: no %s answering it among the %d packets the device carried", where, k, len(answers))
				}
			}
		case VerdictDelivered:
			if len(pe.Args) == 2 {
				port, _ := strconv.Atoi(pe.Args[1])
				want := udpPayload(t, s.Packets[:i+1], o)
				sk := sinks[port]
				if sk == nil {
					t.Errorf("%s: expectation delivers to udp %d, which it does not listen on", where, port)
					break
				}
				if used[port] == nil {
					used[port] = map[int]bool{}
				}
				found := false
				for j, g := range sk.datagrams() {
					if !used[port][j] && bytes.Equal(g, want) {
						used[port][j], found = true, true
						break
					}
				}
				if !found {
					t.Errorf("%s: the socket on udp %d did not receive its %d-byte payload (it got %d datagrams)", where, port, len(want), len(sk.datagrams()))
				}
			}
		case VerdictDropped:
			for _, c := range pe.Args {
				wantCounters[c]++
			}
			if u := udpOf(o.Data); u != nil {
				if sk := sinks[int(u.DstPort)]; sk != nil {
					for _, g := range sk.datagrams() {
						if bytes.Equal(g, u.Payload) {
							t.Errorf("%s: expected dropped, but the socket on udp %d received it", where, u.DstPort)
						}
					}
				}
			}
		case VerdictRefused:
			refused++
			if len(pe.Args) == 1 && pe.Args[0] == "EINVAL" && !errors.Is(o.Err, unix.EINVAL) {
				t.Errorf("%s: write error %v, want EINVAL", where, o.Err)
			}
		}
	}
	for name, n := range wantCounters {
		if got := int64(after[name] - before[name]); got < n {
			t.Errorf("counter %s rose by %d over the replay, want at least %d", name, got, n)
		}
	}
	if refused > 0 && dropAfter-dropBefore < uint64(refused) {
		t.Errorf("device rx dropped rose by %d, want at least %d (one per refused write)", dropAfter-dropBefore, refused)
	}
}

// readCapture decodes the library's pcap with gopacket's pcapgo.
func readCapture(t *testing.T, b []byte) []gopacket.Packet {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("reading the capture: %v", err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Errorf("capture link type %v, want RAW", r.LinkType())
	}
	var pkts []gopacket.Packet
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if ci.Timestamp.IsZero() || time.Since(ci.Timestamp) > time.Hour {
			t.Errorf("capture record has timestamp %v", ci.Timestamp)
		}
		pkts = append(pkts, decodeIP(data))
	}
	return pkts
}

func decodeIP(b []byte) gopacket.Packet {
	first := gopacket.LayerType(layers.LayerTypeIPv4)
	if len(b) > 0 && b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	return gopacket.NewPacket(b, first, gopacket.Default)
}

// addrs gives a decoded packet's source and destination.
func addrs(p gopacket.Packet) (src, dst netip.Addr) {
	if nl := p.NetworkLayer(); nl != nil {
		f := nl.NetworkFlow()
		src, _ = netip.AddrFromSlice(f.Src().Raw())
		dst, _ = netip.AddrFromSlice(f.Dst().Raw())
	}
	return src, dst
}

// answeredIn reports whether one of the packets the device carried is an
// answer of kind k to the written packet, judged with gopacket alone.
func answeredIn(answers []gopacket.Packet, written []byte, k AnswerKind) bool {
	wp := decodeIP(written)
	wsrc, wdst := addrs(wp)
	w := upper(wp)
	for _, a := range answers {
		asrc, adst := addrs(a)
		back := asrc == wdst && adst == wsrc
		switch k {
		case AnswerEchoReply:
			if !back {
				continue
			}
			if req, ok := w.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
				if rep, ok := a.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok &&
					rep.TypeCode.Type() == layers.ICMPv4TypeEchoReply && rep.Id == req.Id && rep.Seq == req.Seq {
					return true
				}
			}
			if req, ok := w.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
				icmp, ok1 := a.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				rep, ok2 := a.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
				if ok1 && ok2 && icmp.TypeCode.Type() == layers.ICMPv6TypeEchoReply && rep.Identifier == req.Identifier && rep.SeqNumber == req.SeqNumber {
					return true
				}
			}
		case AnswerSynAck, AnswerRST, AnswerTCP:
			wt, ok1 := w.Layer(layers.LayerTypeTCP).(*layers.TCP)
			at, ok2 := a.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if !back || !ok1 || !ok2 || at.SrcPort != wt.DstPort || at.DstPort != wt.SrcPort {
				continue
			}
			next := wt.Seq + uint32(len(wt.Payload))
			if wt.SYN {
				next++
			}
			if wt.FIN {
				next++
			}
			switch {
			case k == AnswerSynAck && at.SYN && at.ACK && at.Ack == next:
				return true
			case k == AnswerRST && at.RST && (!at.ACK || at.Ack == next || !wt.SYN):
				return true
			case k == AnswerTCP:
				return true
			}
		case AnswerPortUnreachable, AnswerParamProblem, AnswerUnreachable, AnswerTimeExceeded, AnswerTooBig:
			if adst != wsrc {
				continue
			}
			var quoted []byte
			if icmp, ok := a.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
				t, c := icmp.TypeCode.Type(), icmp.TypeCode.Code()
				if (k == AnswerPortUnreachable && t == 3 && c == 3) || (k == AnswerParamProblem && t == 12) ||
					(k == AnswerUnreachable && t == 3) || (k == AnswerTimeExceeded && t == 11) {
					quoted = icmp.Payload
				}
			} else if icmp, ok := a.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok && len(icmp.Payload) >= 4 {
				t, c := icmp.TypeCode.Type(), icmp.TypeCode.Code()
				if (k == AnswerPortUnreachable && t == 1 && c == 4) || (k == AnswerParamProblem && t == 4) ||
					(k == AnswerUnreachable && t == 1) || (k == AnswerTimeExceeded && t == 3) || (k == AnswerTooBig && t == 2) {
					quoted = icmp.Payload[4:]
				}
			}
			if quoted == nil {
				continue
			}
			qp := decodeIP(quoted)
			qsrc, qdst := addrs(qp)
			q := upper(qp)
			if qsrc != wsrc || qdst != wdst {
				continue
			}
			if wu, ok := w.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
				if qu, ok := q.Layer(layers.LayerTypeUDP).(*layers.UDP); !ok || qu.SrcPort != wu.SrcPort || qu.DstPort != wu.DstPort {
					continue
				}
			}
			return true
		case AnswerUDP:
			wu, ok1 := w.Layer(layers.LayerTypeUDP).(*layers.UDP)
			au, ok2 := a.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if back && ok1 && ok2 && au.SrcPort == wu.DstPort && au.DstPort == wu.SrcPort {
				return true
			}
		}
	}
	return false
}

// upper gives the packet to look for upper-layer headers in: p itself,
// or, behind an IPv6 atomic fragment (offset 0, no more fragments), which
// gopacket does not look through, the fragment's payload decoded anew.
func upper(p gopacket.Packet) gopacket.Packet {
	f, ok := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
	if !ok || f.FragmentOffset != 0 || f.MoreFragments {
		return p
	}
	return gopacket.NewPacket(f.Payload, f.NextHeader.LayerType(), gopacket.Default)
}

func udpOf(p []byte) *layers.UDP {
	if u, ok := upper(decodeIP(p)).Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		return u
	}
	return nil
}

// udpPayload is the UDP payload the socket must receive when record o is
// delivered: its own, or, for the fragment that completes a datagram, the
// payload of the datagram reassembled from the written fragments.
func udpPayload(t *testing.T, written []Outcome, o *Outcome) []byte {
	t.Helper()
	ip, ok := parseIP(o.Data)
	if !ok {
		t.Fatalf("record %d is not IP", o.Number)
	}
	if !ip.fragment {
		if u := udpOf(o.Data); u != nil {
			return u.Payload
		}
		t.Fatalf("record %d is not UDP", o.Number)
	}
	type piece struct {
		off  int
		data []byte
	}
	var pieces []piece
	for i := range written {
		w := &written[i]
		if w.Data == nil {
			continue
		}
		wi, ok := parseIP(w.Data)
		if !ok || !wi.fragment || wi.fragID != ip.fragID || wi.src != ip.src || wi.dst != ip.dst {
			continue
		}
		var body []byte
		if wi.version == 4 {
			body = w.Data[wi.hdrLen:wi.end]
		} else {
			// The fragmentable part follows the fragment header.
			body = w.Data[fragPayloadOffset(w.Data):wi.end]
		}
		pieces = append(pieces, piece{wi.fragOff, body})
	}
	sort.Slice(pieces, func(i, j int) bool { return pieces[i].off < pieces[j].off })
	var whole []byte
	for _, p := range pieces {
		if p.off != len(whole) {
			t.Fatalf("record %d: fragments do not line up (piece at %d, have %d bytes)", o.Number, p.off, len(whole))
		}
		whole = append(whole, p.data...)
	}
	if len(whole) < 8 || int(binary.BigEndian.Uint16(whole[4:6])) != len(whole) {
		t.Fatalf("record %d: reassembled %d bytes, not one UDP datagram", o.Number, len(whole))
	}
	return whole[8:]
}

// fragPayloadOffset finds the end of an IPv6 Fragment header, with
// gopacket.
func fragPayloadOffset(p []byte) int {
	pkt := decodeIP(p)
	off := 0
	for _, l := range pkt.Layers() {
		off += len(l.LayerContents())
		if l.LayerType() == layers.LayerTypeIPv6Fragment {
			return off
		}
	}
	return 40 + 8
}
