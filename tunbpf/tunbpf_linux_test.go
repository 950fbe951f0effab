package tunbpf_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/tunbpf"
)

func seqPayload(tag string) func(int) []byte {
	return func(i int) []byte { return fmt.Appendf(nil, "%s #%03d %s", tag, i, strings.Repeat("=", 40)) }
}

// A filter dropping UDP to one port, with real traffic: those datagrams
// never reach the reader and tx_dropped rises by their count, everything
// else arrives intact (IPv4 with options included), and detaching restores
// full delivery.
func TestFilterDropsOnePort(t *testing.T) {
	before := leakcheck.FDs(t)
	ns := netnstest.New(t)
	const name = "tbpfdrop"
	dev := openUp(t, ns, tun.Config{Name: name, Exclusive: true})
	q := dev.Queues()[0]

	prog, err := tunbpf.Filter{DropPorts: []uint16{5001}}.Program()
	if err != nil {
		t.Fatal(err)
	}
	if err := tunbpf.AttachFilter(dev, prog); err != nil {
		t.Fatalf("AttachFilter: %v", err)
	}
	// The kernel holds its own reference: the filter outlives our fd.
	prog.Close()
	drain(t, q, 200*time.Millisecond) // whatever the kernel sent while we set up

	opts := []byte{1, 1, 1, 0} // NOP NOP NOP END: a 24-byte IPv4 header
	const n6, n4 = 20, 10
	dropped0 := txDropped(t, ns, name)
	for _, f := range []struct {
		flow
		n   int
		tag string
	}{
		{flow{dst: remote6, dport: 5001}, n6, "v6-blocked"},
		{flow{dst: remote6, dport: 5002}, n6, "v6-open"},
		{flow{dst: remote4, dport: 5001, ipOptions: opts}, n4, "v4opt-blocked"},
		{flow{dst: remote4, dport: 5002, ipOptions: opts}, n4, "v4opt-open"},
		{flow{dst: remote4, dport: 5001}, n4, "v4-blocked"},
		{flow{dst: remote4, dport: 5002}, n4, "v4-open"},
	} {
		f.send(t, ns, f.n, seqPayload(f.tag))
	}
	got := drain(t, q, 300*time.Millisecond)
	dropped := txDropped(t, ns, name) - dropped0

	counts := map[string]int{}
	for _, u := range got {
		if u.dport == 5001 {
			t.Errorf("read a datagram to the blocked port: %q", u.payload)
			continue
		}
		tag, _, _ := strings.Cut(string(u.payload), " ")
		counts[tag]++
		// Intact: the payload is exactly what was sent.
		var i int
		if _, err := fmt.Sscanf(string(u.payload), tag+" #%d", &i); err != nil || !bytes.Equal(u.payload, seqPayload(tag)(i)) {
			t.Errorf("payload mangled: %q", u.payload)
		}
		if tag == "v4opt-open" && u.ipHeaderLen != 24 {
			t.Errorf("IPv4 packet sent with options has a %d-byte header, want 24", u.ipHeaderLen)
		}
	}
	t.Logf("filter on: read %v; tx_dropped rose by %d", counts, dropped)
	if counts["v6-open"] != n6 || counts["v4opt-open"] != n4 || counts["v4-open"] != n4 {
		t.Errorf("delivered %v, want v6-open %d, v4opt-open %d, v4-open %d", counts, n6, n4, n4)
	}
	if want := uint64(n6 + 2*n4); dropped != want {
		t.Errorf("tx_dropped rose by %d, want %d (the datagrams to port 5001)", dropped, want)
	}

	// Detach: the same traffic now arrives in full and nothing is dropped.
	if err := dev.ClearFilterProgram(); err != nil {
		t.Fatalf("ClearFilterProgram: %v", err)
	}
	dropped0 = txDropped(t, ns, name)
	flow{dst: remote6, dport: 5001}.send(t, ns, n6, seqPayload("v6-after"))
	flow{dst: remote4, dport: 5001, ipOptions: opts}.send(t, ns, n4, seqPayload("v4-after"))
	got = drain(t, q, 300*time.Millisecond)
	after := 0
	for _, u := range got {
		if u.dport == 5001 {
			after++
		}
	}
	dropped = txDropped(t, ns, name) - dropped0
	t.Logf("filter off: read %d of %d datagrams to port 5001; tx_dropped rose by %d", after, n6+n4, dropped)
	if after != n6+n4 || dropped != 0 {
		t.Errorf("after detach: read %d datagrams to port 5001, want %d; tx_dropped +%d, want 0", after, n6+n4, dropped)
	}

	// Nothing attached any more: a clear error, before any ioctl.
	err = dev.ClearFilterProgram()
	wantOpError(t, "second ClearFilterProgram", err, tun.ErrNoProgram, "TUNSETFILTEREBPF detach")

	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	ns.Close()
	leakcheck.NoNewFDs(t, before)
}

// Truncation: a packet longer than SnapLen arrives cut to SnapLen bytes,
// counted without the PI header, which the kernel adds after the filter;
// shorter packets arrive whole and nothing counts as dropped.
func TestFilterSnapLen(t *testing.T) {
	ns := netnstest.New(t)
	const name, snap = "tbpfsnap", 64
	dev := openUp(t, ns, tun.Config{Name: name, PacketInfo: true, Exclusive: true})
	q := dev.Queues()[0]
	prog, err := tunbpf.Filter{SnapLen: snap}.Program()
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if err := tunbpf.AttachFilter(dev, prog); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	read := func(match func([]byte) bool) []byte {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			n, err := q.Read(buf)
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if n >= tun.PIHeaderLen && match(buf[tun.PIHeaderLen:n]) {
				return buf[:n]
			}
		}
		t.Fatal("no matching packet within 5s")
		return nil
	}
	isUDP6 := func(p []byte) bool { return len(p) >= 8 && p[0]>>4 == 6 && p[6] == 17 }

	dropped0 := txDropped(t, ns, name)
	long := bytes.Repeat([]byte("abcdefgh"), 25) // 200 bytes: a 248-byte packet
	flow{dst: remote6, dport: 7000}.send(t, ns, 1, func(int) []byte { return long })
	frame := read(isUDP6)
	pkt := frame[tun.PIHeaderLen:]
	t.Logf("248-byte IPv6 packet read as %d bytes: PI header %d + packet %d", len(frame), tun.PIHeaderLen, len(pkt))
	if len(pkt) != snap {
		t.Fatalf("truncated packet is %d bytes, want %d", len(pkt), snap)
	}
	if proto := binary.BigEndian.Uint16(frame[2:]); proto != 0x86dd {
		t.Errorf("PI header protocol %#x, want 0x86dd", proto)
	}
	if plen := binary.BigEndian.Uint16(pkt[4:]); plen != 208 {
		t.Errorf("IPv6 payload length field %d, want 208 (the header is kept as it was)", plen)
	}
	if port := binary.BigEndian.Uint16(pkt[42:]); port != 7000 || !bytes.Equal(pkt[48:], long[:snap-48]) {
		t.Errorf("truncated packet's content differs: port %d, payload %q", port, pkt[48:])
	}

	short := []byte("tiny")
	flow{dst: remote6, dport: 7001}.send(t, ns, 1, func(int) []byte { return short })
	pkt = read(isUDP6)[tun.PIHeaderLen:]
	t.Logf("52-byte IPv6 packet read as %d bytes", len(pkt))
	if len(pkt) != 52 || !bytes.Equal(pkt[48:], short) {
		t.Errorf("short packet: %d bytes, want 52 intact", len(pkt))
	}
	if d := txDropped(t, ns, name) - dropped0; d != 0 {
		t.Errorf("truncation counted %d drops", d)
	}
}

// Steering on a multi-queue device: each flow lands on exactly one queue,
// the flows spread over more than one, and the queue is exactly
// uint16(hash) % queues for the hash the Go model computes on the packet
// read. A filter attached at the same time applies to every queue.
func TestFlowSteering(t *testing.T) {
	ns := netnstest.New(t)
	const name, nq, flows, per = "tbpfsteer", 4, 16, 5
	dev := openUp(t, ns, tun.Config{Name: name, MultiQueue: true, Exclusive: true})
	qs := addQueues(t, ns, dev, nq-1)
	if len(qs) != nq {
		t.Fatalf("%d queues, want %d", len(qs), nq)
	}
	s := tunbpf.FlowSteering{Seed: 0x5eed}
	prog, err := s.Program()
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if err := tunbpf.AttachSteering(dev, prog); err != nil {
		t.Fatalf("AttachSteering: %v", err)
	}
	filter, err := tunbpf.Filter{DropPorts: []uint16{6999}}.Program()
	if err != nil {
		t.Fatal(err)
	}
	defer filter.Close()
	if err := tunbpf.AttachFilter(dev, filter); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		drain(t, q, 100*time.Millisecond)
	}

	for i := range flows {
		dst := remote6
		if i%2 == 1 {
			dst = remote4
		}
		flow{dst: dst, sport: uint16(41000 + i), dport: uint16(6000 + i)}.send(t, ns, per, seqPayload("steer"))
	}
	// Blocked on every queue: a flow on port 6999 from several sources.
	for i := range 8 {
		flow{dst: remote6, sport: uint16(42000 + i), dport: 6999}.send(t, ns, 1, seqPayload("blocked"))
	}

	where := map[uint16]map[int]int{} // flow (source port) -> queue -> packets
	perQueue := make([]int, nq)
	for qi, q := range qs {
		for _, u := range drain(t, q, 300*time.Millisecond) {
			if u.dport == 6999 {
				t.Errorf("queue %d read a datagram the filter should drop", qi)
				continue
			}
			if where[u.sport] == nil {
				where[u.sport] = map[int]int{}
			}
			where[u.sport][qi]++
			perQueue[qi]++
			if want := int(uint16(tunbpf.FlowHashForTest(s, u.raw))) % nq; want != qi {
				t.Errorf("flow from port %d: read on queue %d, the hash says %d", u.sport, qi, want)
			}
		}
	}
	t.Logf("%d flows of %d datagrams over %d queues: per queue %v", flows, per, nq, perQueue)
	used := 0
	for _, n := range perQueue {
		if n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("all flows on one queue: %v", perQueue)
	}
	if len(where) != flows {
		t.Errorf("read %d flows, want %d", len(where), flows)
	}
	for sport, m := range where {
		if len(m) != 1 {
			t.Errorf("flow from port %d split over queues %v", sport, m)
		}
		for _, n := range m {
			if n != per {
				t.Errorf("flow from port %d: %d datagrams, want %d", sport, n, per)
			}
		}
	}

	if err := dev.ClearSteeringProgram(); err != nil {
		t.Fatalf("ClearSteeringProgram: %v", err)
	}
	err = dev.ClearSteeringProgram()
	wantOpError(t, "second ClearSteeringProgram", err, tun.ErrNoProgram, "TUNSETSTEERINGEBPF detach")
}

// The queue is the program's return value, cut to 16 bits, modulo the
// number of attached queues: a constant program sends every packet to one
// queue, and 0x10001 goes where 1 goes (a 32-bit remainder would pick
// queue 2 of 3).
func TestSteeringReturnValue(t *testing.T) {
	ns := netnstest.New(t)
	const name, nq = "tbpfmod", 3
	dev := openUp(t, ns, tun.Config{Name: name, MultiQueue: true, Exclusive: true})
	qs := addQueues(t, ns, dev, nq-1)
	for i, v := range []int32{0, 1, 2, 4, 0x10001, 0x20000} {
		if err := tunbpf.AttachSteering(dev, constProgram(t, ebpf.SocketFilter, v)); err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			drain(t, q, 50*time.Millisecond)
		}
		const n = 4
		for j := range n {
			flow{dst: remote6, sport: uint16(43000 + 10*i + j), dport: 6100}.send(t, ns, 1, seqPayload("mod"))
		}
		counts := make([]int, nq)
		for qi, q := range qs {
			counts[qi] = len(drain(t, q, 200*time.Millisecond))
		}
		want := make([]int, nq)
		want[int(uint16(v))%nq] = n
		t.Logf("program returns %#x: %d flows per queue %v", v, n, counts)
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("program returning %#x: per queue %v, want %v", v, counts, want)
		}
	}
}

// Wrong program type, a closed program and detaching with nothing attached
// each give a clear error; a refused attach leaves the filter in place.
func TestAttachErrors(t *testing.T) {
	ns := netnstest.New(t)
	dev := openUp(t, ns, tun.Config{Name: "tbpferr", Exclusive: true})
	q := dev.Queues()[0]

	err := dev.ClearFilterProgram()
	wantOpError(t, "ClearFilterProgram with nothing attached", err, tun.ErrNoProgram, "TUNSETFILTEREBPF detach")
	err = dev.ClearSteeringProgram()
	wantOpError(t, "ClearSteeringProgram with nothing attached", err, tun.ErrNoProgram, "TUNSETSTEERINGEBPF detach")

	drop, err := tunbpf.Filter{DropPorts: []uint16{5101}}.Program()
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Close()
	if err := tunbpf.AttachFilter(dev, drop); err != nil {
		t.Fatal(err)
	}

	xdp := constProgram(t, ebpf.XDP, 2)
	err = tunbpf.AttachFilter(dev, xdp)
	oe := wantOpError(t, "AttachFilter(XDP program)", err, tunbpf.ErrProgramType, "TUNSETFILTEREBPF")
	if oe.Name != "tbpferr" || !strings.Contains(err.Error(), "XDP") {
		t.Errorf("error %q does not name the device and the type", err)
	}
	err = tunbpf.AttachSteering(dev, xdp)
	wantOpError(t, "AttachSteering(XDP program)", err, tunbpf.ErrProgramType, "TUNSETSTEERINGEBPF")

	// The kernel refuses it too, if asked directly.
	err = dev.SetFilterProgram(xdp.FD())
	if oe := wantOpError(t, "SetFilterProgram(XDP fd)", err, unix.EINVAL, "TUNSETFILTEREBPF"); !strings.Contains(oe.Error(), "socket filter") {
		t.Errorf("error %q does not say what the kernel wants", err)
	}

	closed := constProgram(t, ebpf.SocketFilter, 0)
	closed.Close()
	err = tunbpf.AttachFilter(dev, closed)
	wantOpError(t, "AttachFilter(closed program)", err, os.ErrClosed, "TUNSETFILTEREBPF")
	err = tunbpf.AttachFilter(dev, nil)
	wantOpError(t, "AttachFilter(nil)", err, os.ErrClosed, "TUNSETFILTEREBPF")
	err = tunbpf.AttachSteering(dev, drop)
	wantOpError(t, "AttachSteering on a single-queue device", err, tun.ErrNotMultiQueue, "TUNSETSTEERINGEBPF")

	// None of the refusals touched the attached filter (a closed program's
	// fd -1 would have detached it): port 5101 is still dropped.
	drain(t, q, 100*time.Millisecond)
	flow{dst: remote6, dport: 5101}.send(t, ns, 3, seqPayload("still-blocked"))
	flow{dst: remote6, dport: 5102}.send(t, ns, 3, seqPayload("open"))
	got := drain(t, q, 300*time.Millisecond)
	if len(got) != 3 || got[0].dport != 5102 {
		t.Errorf("after refused attaches read %d datagrams (%+v), want the 3 to port 5102", len(got), got)
	}

	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	err = tunbpf.AttachFilter(dev, drop)
	wantOpError(t, "AttachFilter on a closed device", err, os.ErrClosed, "TUNSETFILTEREBPF")
}

// A program from a compiled ELF object (testdata/filters.c) loads and
// works; a section of another type is refused before loading.
func TestLoadProgram(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	const obj = "testdata/filters.o"

	_, err := tunbpf.LoadProgram(obj, "xdp")
	if !errors.Is(err, tunbpf.ErrProgramType) || !strings.Contains(err.Error(), "pass_all") {
		t.Errorf("LoadProgram(xdp): %v, want ErrProgramType naming pass_all", err)
	}
	_, err = tunbpf.LoadProgram(obj, "nosuch")
	if err == nil || !strings.Contains(err.Error(), "socket (drop_udp_7777)") {
		t.Errorf("LoadProgram(nosuch): %v, want an error listing the sections", err)
	}
	if _, err := tunbpf.LoadProgram("testdata/missing.o", "socket"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadProgram(missing file): %v, want os.ErrNotExist", err)
	}
	byName, err := tunbpf.LoadProgram(obj, "drop_udp_7777")
	if err != nil {
		t.Fatalf("LoadProgram by function name: %v", err)
	}
	byName.Close()

	prog, err := tunbpf.LoadProgram(obj, "socket")
	if err != nil {
		t.Fatalf("LoadProgram(socket): %v", err)
	}
	defer prog.Close()
	if prog.Type() != ebpf.SocketFilter {
		t.Fatalf("loaded a %v", prog.Type())
	}

	ns := netnstest.New(t)
	const name = "tbpfelf"
	dev := openUp(t, ns, tun.Config{Name: name, Exclusive: true})
	q := dev.Queues()[0]
	if err := tunbpf.AttachFilter(dev, prog); err != nil {
		t.Fatal(err)
	}
	drain(t, q, 100*time.Millisecond)
	dropped0 := txDropped(t, ns, name)
	flow{dst: remote6, dport: 7777}.send(t, ns, 5, seqPayload("elf-blocked"))
	flow{dst: remote6, dport: 7778}.send(t, ns, 5, seqPayload("elf-open"))
	got := drain(t, q, 300*time.Millisecond)
	dropped := txDropped(t, ns, name) - dropped0
	t.Logf("ELF filter: read %d datagrams, tx_dropped rose by %d", len(got), dropped)
	for _, u := range got {
		if u.dport != 7778 {
			t.Errorf("read a datagram to port %d", u.dport)
		}
	}
	if len(got) != 5 || dropped != 5 {
		t.Errorf("read %d, dropped %d; want 5 and 5", len(got), dropped)
	}
}
