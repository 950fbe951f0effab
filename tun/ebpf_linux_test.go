package tun

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
)

// These tests drive the TUNSET*EBPF ioctls with the smallest programs there
// are (return a constant); package tunbpf tests real filters.

func constProg(t *testing.T, typ ebpf.ProgramType, v int32) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
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

// bpfTestDevice opens a TUN device in ns with fd00::1/64, up.
func bpfTestDevice(t *testing.T, ns *netnstest.Namespace, cfg Config) *Device {
	t.Helper()
	var d *Device
	if err := ns.Do(func() error {
		var err error
		d, err = Open(cfg)
		return err
	}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	for _, args := range [][]string{{"link", "set", "dev", cfg.Name, "up"}, {"-6", "addr", "add", "fd00::1/64", "dev", cfg.Name, "nodad"}} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	return d
}

// sendAndRead sends one 100-byte UDP payload to [fd00::2]:port and returns
// the length the reader sees for it (the first packet of at least 40 bytes
// to that port), or -1 if none arrives within a second.
func sendAndRead(t *testing.T, ns *netnstest.Namespace, q *Queue, port int) int {
	t.Helper()
	if err := ns.Do(func() error {
		c, err := net.Dial("udp6", net.JoinHostPort("fd00::2", strconv.Itoa(port)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(make([]byte, 100))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		n, err := q.Read(buf)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		// Truncated to less than a UDP header, a packet can only be
		// recognised as IPv6 UDP; with the header, by its port.
		if n >= 40 && buf[0]>>4 == 6 && buf[6] == unix.IPPROTO_UDP && (n < 44 || int(buf[42])<<8|int(buf[43]) == port) {
			return n
		}
	}
	return -1
}

func TestSetFilterProgram(t *testing.T) {
	before := leakcheck.FDs(t)
	ns := netnstest.New(t)
	d := bpfTestDevice(t, ns, Config{Name: "tdrbpf", MultiQueue: true, Exclusive: true})
	q0 := d.Queues()[0]
	var q1 *Queue
	if err := ns.Do(func() error { var err error; q1, err = d.AddQueue(); return err }); err != nil {
		t.Fatal(err)
	}
	// Every packet to q1: detach q0, whose fd the ioctls then go through
	// (a detached queue still belongs to its device).
	if err := q0.Detach(); err != nil {
		t.Fatal(err)
	}

	if n := sendAndRead(t, ns, q1, 9000); n != 148 {
		t.Fatalf("without a filter read %d bytes, want 148", n)
	}
	trunc := constProg(t, ebpf.SocketFilter, 40) // keep the IPv6 header only
	if err := d.SetFilterProgram(trunc.FD()); err != nil {
		t.Fatalf("SetFilterProgram: %v", err)
	}
	trunc.Close() // the kernel holds its own reference
	if n := sendAndRead(t, ns, q1, 9001); n != 40 {
		t.Fatalf("with a return-40 filter read %d bytes, want 40", n)
	}
	// The probe explainSetBPF uses has no effect on a kernel that knows
	// the ioctl: EBADF, and the filter stays.
	if err := unix.IoctlSetPointerInt(q0.Fd(), unix.TUNSETFILTEREBPF, -2); err != unix.EBADF {
		t.Errorf("probe with fd -2: %v, want EBADF", err)
	}
	if n := sendAndRead(t, ns, q1, 9002); n != 40 {
		t.Errorf("after the probe read %d bytes, want 40", n)
	}

	// -1 is the kernel's unconditional detach; the record follows it.
	if err := d.SetFilterProgram(-1); err != nil {
		t.Fatalf("SetFilterProgram(-1): %v", err)
	}
	if n := sendAndRead(t, ns, q1, 9003); n != 148 {
		t.Errorf("after SetFilterProgram(-1) read %d bytes, want 148", n)
	}
	if err := d.ClearFilterProgram(); !errors.Is(err, ErrNoProgram) {
		t.Errorf("ClearFilterProgram after SetFilterProgram(-1): %v, want ErrNoProgram", err)
	}
	// -1 with nothing attached is accepted, as the kernel does.
	if err := d.SetFilterProgram(-1); err != nil {
		t.Errorf("SetFilterProgram(-1) with nothing attached: %v", err)
	}

	// Steering: a constant 1 sends everything to the second attached queue.
	if err := q0.Attach(); err != nil {
		t.Fatal(err)
	}
	steer := constProg(t, ebpf.SocketFilter, 1)
	if err := d.SetSteeringProgram(steer.FD()); err != nil {
		t.Fatalf("SetSteeringProgram: %v", err)
	}
	// The kernel numbers attached queues in its own order: after q0
	// detached and reattached, q1 is slot 0 and q0 slot 1.
	for port := 9100; port < 9104; port++ {
		if n := sendAndRead(t, ns, q0, port); n != 148 {
			t.Errorf("steering to queue 1: port %d read %d bytes on q0", port, n)
		}
	}
	if err := d.ClearSteeringProgram(); err != nil {
		t.Fatalf("ClearSteeringProgram: %v", err)
	}
	if err := d.ClearSteeringProgram(); !errors.Is(err, ErrNoProgram) {
		t.Errorf("second ClearSteeringProgram: %v, want ErrNoProgram", err)
	}
	steer.Close()

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{d.SetFilterProgram(3), d.ClearFilterProgram(), d.SetSteeringProgram(3), d.ClearSteeringProgram()} {
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("on a closed device: %v, want os.ErrClosed", err)
		}
	}
	ns.Close()
	leakcheck.NoNewFDs(t, before)
}

func TestSetBPFErrors(t *testing.T) {
	ns := netnstest.New(t)
	d := bpfTestDevice(t, ns, Config{Name: "tdrbpferr", Exclusive: true})

	wantErr := func(what string, err error, target error, op, text string) {
		t.Helper()
		var oe *OpError
		if !errors.As(err, &oe) || oe.Op != op || oe.Name != "tdrbpferr" || !errors.Is(err, target) || !strings.Contains(err.Error(), text) {
			t.Errorf("%s: %v, want an *OpError %q on tdrbpferr wrapping %v and saying %q", what, err, op, target, text)
		}
	}

	wantErr("ClearFilterProgram with nothing attached", d.ClearFilterProgram(), ErrNoProgram, "TUNSETFILTEREBPF detach", "no eBPF program")

	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	wantErr("SetFilterProgram(/dev/null)", d.SetFilterProgram(int(f.Fd())), unix.EINVAL, "TUNSETFILTEREBPF", "not a BPF program of type socket filter")
	closedFD := int(f.Fd())
	f.Close()
	wantErr("SetFilterProgram(closed fd)", d.SetFilterProgram(closedFD), unix.EBADF, "TUNSETFILTEREBPF", "not an open file descriptor")
	xdp := constProg(t, ebpf.XDP, 2)
	wantErr("SetFilterProgram(XDP)", d.SetFilterProgram(xdp.FD()), unix.EINVAL, "TUNSETFILTEREBPF", "socket filter")

	sf := constProg(t, ebpf.SocketFilter, 0)
	wantErr("SetSteeringProgram on a single-queue device", d.SetSteeringProgram(sf.FD()), ErrNotMultiQueue, "TUNSETSTEERINGEBPF", "several queues")
	// None of these left a record behind.
	wantErr("ClearFilterProgram after failures", d.ClearFilterProgram(), ErrNoProgram, "TUNSETFILTEREBPF detach", "")
}

// The kernel answers EINVAL both for a wrong program and for an unknown
// ioctl; the probe's answer tells them apart.
func TestExplainSetBPF(t *testing.T) {
	probe := func(err error) func() error { return func() error { return err } }
	old := explainSetBPF(unix.EINVAL, 7, probe(unix.EINVAL))
	if !errors.Is(old, ErrBPFNotSupported) || !errors.Is(old, unix.EINVAL) {
		t.Errorf("EINVAL, probe EINVAL: %v, want ErrBPFNotSupported wrapping EINVAL", old)
	}
	if e := explainSetBPF(unix.EINVAL, 7, probe(unix.ENOTTY)); !errors.Is(e, ErrBPFNotSupported) {
		t.Errorf("EINVAL, probe ENOTTY: %v, want ErrBPFNotSupported", e)
	}
	wrong := explainSetBPF(unix.EINVAL, 7, probe(unix.EBADF))
	if errors.Is(wrong, ErrBPFNotSupported) || !errors.Is(wrong, unix.EINVAL) || !strings.Contains(wrong.Error(), "fd 7 is not a BPF program") {
		t.Errorf("EINVAL, probe EBADF: %v, want a wrong-program EINVAL", wrong)
	}
	if e := explainSetBPF(unix.EOPNOTSUPP, 7, nil); !errors.Is(e, ErrBPFNotSupported) || !errors.Is(e, unix.EOPNOTSUPP) {
		t.Errorf("EOPNOTSUPP: %v, want ErrBPFNotSupported", e)
	}
	if e := explainSetBPF(unix.EBADF, 7, nil); !strings.Contains(e.Error(), "fd 7 is not an open file descriptor") {
		t.Errorf("EBADF: %v", e)
	}
	if e := explainSetBPF(unix.ENOMEM, 7, nil); e != unix.ENOMEM {
		t.Errorf("ENOMEM changed to %v", e)
	}
}
