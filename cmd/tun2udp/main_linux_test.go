package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/netnstest"
)

// testMainEnv makes the test binary tun2udp itself: the tests re-execute
// it with their command line, so no go build is needed.
const testMainEnv = "TUN2UDP_TEST_MAIN"

// TestMain runs main when testMainEnv=1 (main's exit is the process's:
// returning means status 0), and the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(testMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// proc is tun2udp running as a child of the test.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr netnstest.SyncBuffer
	done           chan struct{} // closed once Wait returned
	err            error         // Wait's, valid after done
}

// start runs tun2udp with args inside ns (or here, with ns nil). The child
// dies with the test process (parent-death signal, see netns.Spawn) and is
// killed and reaped when the test ends, whatever happened.
func start(t *testing.T, ns *netnstest.Namespace, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), testMainEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	var err error
	if ns != nil {
		err = ns.Spawn(p.cmd)
	} else {
		err = p.cmd.Start()
	}
	if err != nil {
		t.Fatalf("start tun2udp %q: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("tun2udp %q: %v\nstdout:\n%s\nstderr:\n%s", args, p.err, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// wait waits at most d for the child to exit and returns its exit code,
// or fails the test.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("tun2udp %q still running after %v\nstderr:\n%s", p.cmd.Args[1:], d, p.stderr.String())
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		t.Fatalf("tun2udp %q: %v", p.cmd.Args[1:], p.err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("tun2udp %q killed by %v\nstderr:\n%s", p.cmd.Args[1:], ws.Signal(), p.stderr.String())
	}
	return ee.ExitCode()
}

// signal sends sig to the running child.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// eventually polls cond for at most d.
func eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// laneStats is one "queue N: ..." line of printStats.
type laneStats struct {
	queue                                                int
	tunToUDP, droppedToUDP, refused, udpToTun, dropToTun uint64
}

var statsLine = regexp.MustCompile(`^queue (\d+): tun->udp (\d+) \(dropped (\d+), refused (\d+)\), udp->tun (\d+) \(dropped (\d+)\)$`)

// parseOutput splits tun2udp's stderr into its start line and its
// statistics blocks (one line per queue, queue 0 first, each printing),
// and reports any other line as an error. A last line still without its
// newline is left for later.
func parseOutput(stderr string, queues int) (startLine string, blocks [][]laneStats, err error) {
	stderr = stderr[:strings.LastIndex(stderr, "\n")+1]
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := statsLine.FindStringSubmatch(line)
		if m == nil {
			if startLine == "" && len(blocks) == 0 && strings.HasPrefix(line, "tun2udp: ") {
				startLine = line
				continue
			}
			return "", nil, fmt.Errorf("unexpected line %q", line)
		}
		var n [6]uint64
		for i := range n {
			if n[i], err = strconv.ParseUint(m[i+1], 10, 64); err != nil {
				return "", nil, fmt.Errorf("line %q: %v", line, err)
			}
		}
		s := laneStats{int(n[0]), n[1], n[2], n[3], n[4], n[5]}
		if s.queue == 0 {
			blocks = append(blocks, nil)
		}
		if len(blocks) == 0 || len(blocks[len(blocks)-1]) != s.queue {
			return "", nil, fmt.Errorf("line %q out of order", line)
		}
		blocks[len(blocks)-1] = append(blocks[len(blocks)-1], s)
	}
	for i, b := range blocks {
		// The last block may be half written yet.
		if len(b) != queues && i != len(blocks)-1 {
			return "", nil, fmt.Errorf("statistics block %d has %d queues, want %d", i, len(b), queues)
		}
	}
	return startLine, blocks, nil
}

// complete drops a last block that is not fully printed yet.
func complete(blocks [][]laneStats, queues int) [][]laneStats {
	if n := len(blocks); n > 0 && len(blocks[n-1]) != queues {
		return blocks[:n-1]
	}
	return blocks
}

func totals(b []laneStats) (tunToUDP, udpToTun uint64) {
	for _, s := range b {
		tunToUDP += s.tunToUDP
		udpToTun += s.udpToTun
	}
	return tunToUDP, udpToTun
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// side is one end of the tunnel.
type side struct {
	ns           *netnstest.Namespace
	veth, vethIP string
	tun, tunAddr string
	mtu, queues  int
	args         []string
	p            *proc
}

// Two tun2udp relays, one in each of two namespaces joined by a veth pair,
// with the default offloads (-offloads, -gso and -gro on): ping crosses the
// tunnel, ip sees the devices as asked, SIGUSR1 and -stats print per-queue
// counts, and SIGTERM or SIGINT ends each with status 0, removing its device.
func TestTunnel(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatal("ping is not installed (Debian: iputils-ping)")
	}
	a := &side{ns: netnstest.New(t), veth: "t2uva", vethIP: "192.168.98.1", tun: "t2ua", tunAddr: "10.98.0.1/24",
		mtu: 1400, queues: 2}
	b := &side{ns: netnstest.New(t), veth: "t2uvb", vethIP: "192.168.98.2", tun: "t2ub", tunAddr: "10.98.0.2/24",
		mtu: 1420, queues: 2} // tun2udp's default MTU; the same queue count as A (-port-per-lane)
	for _, c := range []struct {
		ns   *netnstest.Namespace
		args []string
	}{
		{a.ns, []string{"link", "add", a.veth, "type", "veth", "peer", "name", b.veth, "netns", b.ns.Path()}},
		{a.ns, []string{"addr", "add", a.vethIP + "/24", "dev", a.veth}},
		{a.ns, []string{"link", "set", a.veth, "up"}},
		{b.ns, []string{"addr", "add", b.vethIP + "/24", "dev", b.veth}},
		{b.ns, []string{"link", "set", b.veth, "up"}},
	} {
		if out, err := c.ns.Output("ip", c.args...); err != nil {
			t.Fatalf("ip %q: %v: %s", c.args, err, out)
		}
	}
	// A: explicit -mtu, statistics only on SIGUSR1. B: the default MTU,
	// statistics every 100ms. Both with two queues: with a port per lane
	// (the default) both ends need the same count.
	a.args = []string{"-addr", a.tunAddr, "-name", a.tun, "-mtu", strconv.Itoa(a.mtu), "-queues", strconv.Itoa(a.queues),
		"-local", a.vethIP + ":5555", "-remote", b.vethIP + ":5555"}
	b.args = []string{"-addr", b.tunAddr, "-name", b.tun, "-stats", "100ms", "-queues", strconv.Itoa(b.queues),
		"-local", b.vethIP + ":5555", "-remote", a.vethIP + ":5555"}
	for _, s := range []*side{a, b} {
		s.p = start(t, s.ns, s.args...)
	}
	for _, s := range []*side{a, b} {
		remote := b.vethIP
		if s == b {
			remote = a.vethIP
		}
		want := fmt.Sprintf("tun2udp: %s (%s) <-> udp %s:5555 -> %s:5555, %d queue(s)", s.tun, s.tunAddr, s.vethIP, remote, s.queues)
		if !eventually(10*time.Second, func() bool { return strings.Contains(s.p.stderr.String(), "\n") }) {
			t.Fatalf("%s: no start line after 10s", s.tun)
		}
		if first, _, _ := strings.Cut(s.p.stderr.String(), "\n"); first != want {
			t.Fatalf("%s: start line %q, want %q", s.tun, first, want)
		}
	}

	// ip sees each device up, with its name, MTU and address.
	for _, s := range []*side{a, b} {
		l, err := s.ns.LinkByName(s.tun)
		if err != nil {
			t.Fatal(err)
		}
		if !l.HasFlag("UP") || l.MTU != s.mtu || l.LinkType != "none" {
			t.Errorf("%s: %+v; want UP, mtu %d, link_type none (a TUN)", s.tun, l, s.mtu)
		}
		// -offloads is on by default: the device carries the virtio-net
		// header. With -queues above 1 it is multi-queue with that many
		// attached (the kernel reports numqueues only for multi-queue
		// devices).
		var details []struct {
			LinkInfo struct {
				Kind string `json:"info_kind"`
				Data struct {
					Type       string `json:"type"`
					VnetHdr    bool   `json:"vnet_hdr"`
					MultiQueue bool   `json:"multi_queue"`
					NumQueues  int    `json:"numqueues"`
				} `json:"info_data"`
			} `json:"linkinfo"`
		}
		if err := s.ns.IPJSON(&details, "-d", "link", "show", "dev", s.tun); err != nil {
			t.Fatal(err)
		}
		if len(details) != 1 {
			t.Fatalf("ip -j -d link show dev %s: %d links", s.tun, len(details))
		}
		wantQueues := 0
		if s.queues > 1 {
			wantQueues = s.queues
		}
		if d := details[0].LinkInfo; d.Kind != "tun" || d.Data.Type != "tun" || !d.Data.VnetHdr ||
			d.Data.MultiQueue != (s.queues > 1) || d.Data.NumQueues != wantQueues {
			t.Errorf("%s: linkinfo %+v; want a tun with vnet_hdr (default -offloads) and %d queue(s)", s.tun, d, s.queues)
		}
		addrs, err := s.ns.Addrs(s.tun)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ai := range addrs {
			found = found || ai.Family == "inet" && fmt.Sprintf("%s/%d", ai.Local, ai.PrefixLen) == s.tunAddr
		}
		if !found {
			t.Errorf("%s: addresses %+v, want %s", s.tun, addrs, s.tunAddr)
		}
	}

	out, _ := a.ns.Output("ping", "-n", "-c", "5", "-i", "0.05", "-W", "2", "10.98.0.2")
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("ping printed no summary:\n%s", out)
	}
	if string(m[1]) != "5" || string(m[2]) != "5" {
		t.Fatalf("%s of %s pings answered through the tunnel:\n%s", m[2], m[1], out)
	}

	// A prints nothing until asked; then one line per queue, and the
	// queues together carried the 5 echo requests out and the 5 replies in.
	if _, blocks, err := parseOutput(a.p.stderr.String(), a.queues); err != nil || len(blocks) != 0 {
		t.Fatalf("A's stderr before SIGUSR1 (err %v, %d statistics blocks):\n%s", err, len(blocks), a.p.stderr.String())
	}
	a.p.signal(t, syscall.SIGUSR1)
	var blocks [][]laneStats
	if !eventually(5*time.Second, func() bool {
		var err error
		_, blocks, err = parseOutput(a.p.stderr.String(), a.queues)
		return err == nil && len(complete(blocks, a.queues)) > 0
	}) {
		_, _, err := parseOutput(a.p.stderr.String(), a.queues)
		t.Fatalf("no statistics from A 5s after SIGUSR1 (%v):\n%s", err, a.p.stderr.String())
	}
	if len(blocks) != 1 {
		t.Errorf("one SIGUSR1, %d statistics blocks", len(blocks))
	}
	out2, in := totals(blocks[0])
	t.Logf("A after SIGUSR1: %+v", blocks[0])
	if out2 < 5 || in < 5 {
		t.Errorf("A's statistics say tun->udp %d, udp->tun %d; 5 echoes need at least 5 each way: %+v", out2, in, blocks[0])
	}

	// B prints every 100ms unasked, and its counts include the echoes.
	var bBlocks [][]laneStats
	if !eventually(5*time.Second, func() bool {
		var err error
		_, bBlocks, err = parseOutput(b.p.stderr.String(), b.queues)
		bBlocks = complete(bBlocks, b.queues)
		if err != nil || len(bBlocks) < 3 {
			return false
		}
		o, i := totals(bBlocks[len(bBlocks)-1])
		return o >= 5 && i >= 5
	}) {
		t.Fatalf("B (-stats 100ms): no periodic statistics counting the 5 echoes within 5s:\n%s", b.p.stderr.String())
	}
	t.Logf("B, %d periodic statistics so far, last %+v", len(bBlocks), bBlocks[len(bBlocks)-1])

	// SIGTERM ends A, SIGINT ends B: status 0, final statistics, device gone.
	for _, c := range []struct {
		s   *side
		sig os.Signal
	}{{a, syscall.SIGTERM}, {b, os.Interrupt}} {
		_, before, _ := parseOutput(c.s.p.stderr.String(), c.s.queues)
		before = complete(before, c.s.queues)
		c.s.p.signal(t, c.sig)
		if code := c.s.p.wait(t, 5*time.Second); code != 0 {
			t.Errorf("%s: exit status %d after %v, want 0", c.s.tun, code, c.sig)
		}
		_, after, err := parseOutput(c.s.p.stderr.String(), c.s.queues)
		if err != nil || len(complete(after, c.s.queues)) != len(after) || len(after) <= len(before) {
			t.Errorf("%s: no final statistics on %v (%v):\n%s", c.s.tun, c.sig, err, c.s.p.stderr.String())
		}
		if got := c.s.p.stdout.String(); got != "" {
			t.Errorf("%s: stdout %q; everything goes to stderr", c.s.tun, got)
		}
		if l, err := c.s.ns.LinkByName(c.s.tun); !errors.Is(err, netnstest.ErrNoLink) {
			t.Errorf("%s after %v: %+v, %v; want the device gone", c.s.tun, c.sig, l, err)
		}
	}

	// Nothing of this on the host.
	host, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{a.tun, b.tun, a.veth, b.veth} {
		if strings.Contains(string(host), name) {
			t.Errorf("%s is on the host:\n%s", name, host)
		}
	}
}

// Bad command lines stop tun2udp before it makes anything, with a status
// and a message that names the flag at fault. As root they run in a
// namespace of their own, so a mistake could create nothing on the host.
func TestBadFlags(t *testing.T) {
	const addr, local, remote = "10.98.0.1/24", "192.168.98.1:5555", "192.168.98.2:5555"
	for _, c := range []struct {
		name  string
		args  []string
		code  int    // 0: any non-zero status
		want  string // in stderr
		usage bool   // the flags' usage printed too
	}{
		{"missing -local", []string{"-addr", addr, "-remote", remote}, 2, "tun2udp: missing -local (-addr, -local and -remote are required)", true},
		{"missing -addr", []string{"-local", local, "-remote", remote}, 2, "tun2udp: missing -addr (-addr, -local and -remote are required)", true},
		{"no port in -remote", []string{"-addr", addr, "-local", local, "-remote", "192.168.98.2"}, 2, "tun2udp: -remote: ", false},
		{"port out of range in -remote", []string{"-addr", addr, "-local", local, "-remote", "192.168.98.2:70000"}, 2, "tun2udp: -remote: ", false},
		{"host name in -remote", []string{"-addr", addr, "-local", local, "-remote", "peer.invalid:5555"}, 2, "tun2udp: -remote: ", false},
		{"no port in -local", []string{"-addr", addr, "-local", "192.168.98.1", "-remote", remote}, 2, "tun2udp: -local: ", false},
		{"unknown flag", []string{"-addr", addr, "-local", local, "-remote", remote, "-bogus"}, 2, "flag provided but not defined: -bogus", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ns *netnstest.Namespace
			if os.Geteuid() == 0 {
				ns = netnstest.New(t)
			}
			p := start(t, ns, c.args...)
			code := p.wait(t, 10*time.Second)
			stderr := p.stderr.String()
			switch {
			case c.code != 0 && code != c.code:
				t.Errorf("exit status %d, want %d", code, c.code)
			case code == 0:
				t.Errorf("exit status 0, want non-zero")
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr does not say %q:\n%s", c.want, stderr)
			}
			if strings.Contains(stderr, "<-> udp") || strings.Contains(stderr, "queue 0:") {
				t.Errorf("tun2udp started:\n%s", stderr)
			}
			if c.usage && !strings.Contains(stderr, "-local string") {
				t.Errorf("no usage with the flags on status 2:\n%s", stderr)
			}
			if ns != nil {
				links, err := ns.Links()
				if err != nil {
					t.Fatal(err)
				}
				if len(links) != 1 {
					t.Errorf("left behind in its namespace: %+v", links)
				}
			}
			t.Logf("status %d: %s", code, strings.SplitN(stderr, "\n", 2)[0])
		})
	}
}
