package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/tun"
)

// echoCapture builds a raw-IP pcap of ICMPv6 echo requests from a peer in
// the device's prefix to the device, one per offset.
func echoCapture(t *testing.T, offsets ...time.Duration) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, off := range offsets {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6,
			SrcIP: netip.MustParseAddr("fd00:7e57::9").AsSlice(), DstIP: devPrefix6.Addr().AsSlice()}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			ip, icmp, &layers.ICMPv6Echo{Identifier: 7, SeqNumber: uint16(i + 1)}, gopacket.Payload("paced")); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: base.Add(off), CaptureLength: len(data), Length: len(data)}, data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// Paced replay keeps the captured gaps, divided by Speed, with loop
// timers: never early, and not grossly late.
func TestReplayPacedAsCaptured(t *testing.T) {
	d := newTestDevice(t, "rpace0", tun.Config{})
	in := echoCapture(t, 0, 300*time.Millisecond, 600*time.Millisecond, 10*time.Second)
	s, err := Run(context.Background(), Options{Device: d.dev, Input: bytes.NewReader(in), Pace: PaceCaptured,
		Speed: 2, MaxGap: 200 * time.Millisecond, Linger: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.Answered != 4 {
		var b strings.Builder
		s.PrintPackets(&b)
		t.Fatalf("answered %d of 4:\n%s", s.Answered, b.String())
	}
	// Gaps of 300ms at speed 2 are 150ms; the 9.4s gap is capped at 200ms.
	// The schedule is anchored at the first write, so each packet's time
	// since then is never short of its due offset.
	want := []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond}
	for i, w := range want {
		got := s.Packets[i+1].Sent.Sub(s.Packets[0].Sent)
		if got < w-time.Millisecond || got > w+250*time.Millisecond {
			t.Errorf("record %d was written %v after the first, want %v", i+2, got, w)
		}
	}
}

// Fast replay on a caller's loop, which Run leaves running and usable.
func TestReplayFastOnCallersLoop(t *testing.T) {
	d := newTestDevice(t, "rfast0", tun.Config{})
	l, err := loop.New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	offsets := make([]time.Duration, 200)
	for i := range offsets {
		offsets[i] = time.Duration(i) * time.Second
	}
	in := echoCapture(t, offsets...)
	start := time.Now()
	s, err := Run(context.Background(), Options{Device: d.dev, Loop: l, Input: bytes.NewReader(in), Pace: PaceFast, Linger: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("fast replay of 200 packets captured over 200s took %v", el)
	}
	if s.Written != 200 || s.Answered != 200 {
		var b strings.Builder
		s.Print(&b)
		t.Errorf("written %d, answered %d, want 200 each:\n%s", s.Written, s.Answered, b.String())
	}
	if err := l.Do(func() {}); err != nil {
		t.Errorf("the caller's loop is not usable after Run: %v", err)
	}
	// The device is the caller's again: a second run on it works.
	s2, err := Run(context.Background(), Options{Device: d.dev, Loop: l, Input: bytes.NewReader(echoCapture(t, 0)), Pace: PaceFast, Linger: 50 * time.Millisecond})
	if err != nil || s2.Answered != 1 {
		t.Errorf("second run: %v, answered %d", err, s2.Answered)
	}
}

// Cancelling stops a paced replay at once; what was not written is
// reported as skipped (canceled).
func TestReplayCancel(t *testing.T) {
	d := newTestDevice(t, "rcanc0", tun.Config{})
	in := echoCapture(t, 0, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err := Run(ctx, Options{Device: d.dev, Input: bytes.NewReader(in)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v, want the context's deadline", err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("Run took %v to notice cancellation", el)
	}
	if len(s.Packets) != 2 || s.Packets[0].Verdict != VerdictAnswered || s.Packets[1].Skip != skipCanceled {
		var b strings.Builder
		s.Print(&b)
		s.PrintPackets(&b)
		t.Errorf("outcomes after cancel (%d):\n%s", len(s.Packets), b.String())
	}
}

// A capture cut in the middle of a record stops the replay with an error
// after the records before it, and leaves the device and loop working.
func TestReplayTruncatedCapture(t *testing.T) {
	d := newTestDevice(t, "rtrunc0", tun.Config{})
	in := echoCapture(t, 0, time.Millisecond, 2*time.Millisecond)
	// Run leaves no descriptor behind (loop, counter files), whatever the
	// outcome.
	before := leakcheck.FDs(t)
	defer leakcheck.NoNewFDs(t, before)
	s, err := Run(context.Background(), Options{Device: d.dev, Input: bytes.NewReader(in[:len(in)-10]), Pace: PaceFast, Linger: 50 * time.Millisecond})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Run on a truncated file: %v, want io.ErrUnexpectedEOF", err)
	}
	if s.Answered != 2 {
		t.Errorf("answered %d records before the cut, want 2", s.Answered)
	}
	s, err = Run(context.Background(), Options{Device: d.dev, Input: bytes.NewReader(in), Pace: PaceFast, Linger: 50 * time.Millisecond})
	if err != nil || s.Answered != 3 {
		t.Errorf("after the truncated run: %v, answered %d of 3", err, s.Answered)
	}
	if _, err := Run(context.Background(), Options{Device: d.dev, Input: strings.NewReader("not a capture at all")}); !errors.Is(err, ErrMalformed) {
		t.Errorf("Run on garbage: %v, want ErrMalformed", err)
	}
}

// requireTool finds a command the test needs, failing under
// TUNDRA_REQUIRE_PRIV=1 and skipping otherwise when it is missing.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(netnstest.RequirePrivEnv) == "1" {
			t.Fatalf("%s=1 but %s is not installed (Debian package %s)", netnstest.RequirePrivEnv, name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s)", name, pkg)
	}
	return p
}

// A capture of a ping -6 session made by the library opens in tcpdump -r
// and tshark -r with the right packet count and contents.
func TestCapturePing6(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	tcpdump := requireTool(t, "tcpdump", "tcpdump")
	tshark := requireTool(t, "tshark", "tshark")
	ping := requireTool(t, "ping", "iputils-ping")
	d := newTestDevice(t, "rcap0", tun.Config{})
	file := filepath.Join(t.TempDir(), "ping6.pcap")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	isEchoRequest := func(p []byte) bool {
		ip, ok := parseIP(p)
		l4 := ip.l4(p)
		return ok && ip.proto == protoICMPv6 && len(l4) > 0 && l4[0] == 128
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ready := make(chan struct{})
	type result struct {
		st  CaptureStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Capture(ctx, CaptureOptions{Device: d.dev, Output: f, Count: 3, Filter: isEchoRequest, Ready: ready})
		done <- result{st, err}
	}()
	select {
	case <-ready:
	case r := <-done:
		t.Fatalf("Capture ended before it was ready: %v", r.err)
	}
	out, _ := d.ns.Output(ping, "-6", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-s", "56", "fd00:7e57::2")
	if !strings.Contains(string(out), "3 packets transmitted") {
		t.Fatalf("ping did not send 3 requests:\n%s", out)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Capture: %v", r.err)
	}
	if r.st.Recorder.Packets != 3 || r.st.Recorder.Dropped != 0 {
		t.Errorf("recorder wrote %d packets and dropped %d, want 3 and 0", r.st.Recorder.Packets, r.st.Recorder.Dropped)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	dump, err := exec.Command(tcpdump, "-n", "-tt", "-r", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, dump)
	}
	t.Logf("tcpdump -r:\n%s", dump)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(dump)), "\n") {
		if !strings.HasPrefix(l, "reading from file") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("tcpdump shows %d packets, want 3", len(lines))
	}
	re := regexp.MustCompile(`^(\d+)\.\d+ IP6 fd00:7e57::1 > fd00:7e57::2: ICMP6, echo request, id \d+, seq (\d+), length 64$`)
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("tcpdump line %d does not show an echo request from the device: %q", i+1, l)
			continue
		}
		if m[2] != fmt.Sprint(i+1) {
			t.Errorf("tcpdump line %d has seq %s, want %d", i+1, m[2], i+1)
		}
		if ts := m[1]; ts < fmt.Sprint(time.Now().Add(-time.Minute).Unix()) {
			t.Errorf("tcpdump line %d has timestamp %s, not from this run", i+1, ts)
		}
	}
	fields, err := exec.Command(tshark, "-r", file, "-T", "fields", "-e", "ipv6.src", "-e", "icmpv6.type", "-e", "icmpv6.echo.sequence_number").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, fields)
	}
	var rows []string
	for _, l := range strings.Split(strings.TrimSpace(string(fields)), "\n") {
		if strings.Contains(l, "\t") { // skip tshark's own warnings
			rows = append(rows, l)
		}
	}
	want := []string{"fd00:7e57::1\t128\t1", "fd00:7e57::1\t128\t2", "fd00:7e57::1\t128\t3"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("tshark -r fields:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

// The replay's framer is tun.PIFramer for IP packets and, where that one
// refuses (a version nibble neither 4 nor 6), still frames the packet with
// protocol 0 so that the kernel gets to judge it.
func TestPIFramer(t *testing.T) {
	var f loop.Framer = piFramer{}
	if f.HeaderLen() != tun.PIHeaderLen {
		t.Fatalf("HeaderLen = %d, want %d", f.HeaderLen(), tun.PIHeaderLen)
	}
	for _, tc := range []struct {
		first byte
		want  []byte
	}{
		{0x45, []byte{0, 0, 0x08, 0x00}},
		{0x60, []byte{0, 0, 0x86, 0xdd}},
		{0x50, []byte{0, 0, 0, 0}},
	} {
		hdr := []byte{0xff, 0xff, 0xff, 0xff}
		if err := f.PutHeader(hdr, []byte{tc.first, 0, 0, 0}); err != nil {
			t.Fatalf("PutHeader(version %d): %v", tc.first>>4, err)
		}
		if !bytes.Equal(hdr, tc.want) {
			t.Errorf("version %d: header % x, want % x", tc.first>>4, hdr, tc.want)
		}
	}
}
