//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/netnstest"
)

// Paths from this package's directory: the generated captures and the
// third-party ones (real/, with SOURCES.md), both in the repository.
const (
	pcapDir     = "../../testdata/pcaps"
	realPcapDir = "../../testdata/pcaps/real"
)

// runCmd runs tunbench with args in this process.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = dispatch(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

var writtenLine = regexp.MustCompile(`written +(\d+): answered (\d+), dropped (\d+), delivered (\d+), queued (\d+), accepted (\d+)`)

// verdicts reads the summary's line of written packets: written,
// answered, dropped, delivered, queued, accepted.
func verdicts(t *testing.T, out string) []int {
	t.Helper()
	m := writtenLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line in:\n%s", out)
	}
	v := make([]int, 6)
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v
}

// tcpdumpRead reads a pcap file with tcpdump, the reference reader.
func tcpdumpRead(t *testing.T, path string) []string {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is not installed (Debian: tcpdump); scripts/test installs it")
	}
	out, err := exec.Command("tcpdump", "-nn", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v\n%s", path, err, out)
	}
	var pkts []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, " IP") { // "12:00:00.000000 IP6 a > b: ..."
			pkts = append(pkts, line)
		}
	}
	return pkts
}

func TestReplayCaptureUsage(t *testing.T) {
	for _, args := range [][]string{
		{"replay"},
		{"replay", "a.pcap", "b.pcap"},
		{"replay", "-pace", "slow", "a.pcap"},
		{"replay", "-checksums", "maybe", "a.pcap"},
		{"replay", "-listen", "sctp:9", "a.pcap"},
		{"replay", "-addrs", "198.18.0.1", "a.pcap"},
		{"replay", "-speed", "0", "a.pcap"},
		{"replay", "-keep-bad-checksums", "x", "a.pcap"},
		{"replay", "-expect", "/nonexistent.expect"},
		{"capture"},
		{"capture", "-o", "x.pcap", "-count", "-1"},
		{"capture", "-o", "x.pcap", "-mtu", "10"},
	} {
		_, stderr, code := runCmd(t, args...)
		if code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
	for _, cmd := range []string{"replay", "capture"} {
		_, stderr, code := runCmd(t, cmd, "-h")
		if code != 0 || !strings.Contains(stderr, "usage: tunbench "+cmd) || !strings.Contains(stderr, "-addrs") {
			t.Errorf("%s -h: exit %d:\n%s", cmd, code, stderr)
		}
	}
	out, _, _ := runCmd(t, "help")
	if !strings.Contains(out, "replay") || !strings.Contains(out, "capture") {
		t.Errorf("help does not list replay and capture:\n%s", out)
	}
}

func TestParseFlagsAnywhere(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"a.pcap", "-v"}, []string{"a.pcap"}},
		{[]string{"-v", "a.pcap"}, []string{"a.pcap"}},
		{[]string{"-v", "--", "ping", "-c", "1"}, []string{"ping", "-c", "1"}},
		{[]string{"--", "-v"}, []string{"-v"}},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.Bool("v", false, "")
		got, err := parseFlagsAnywhere(fs, c.args)
		if err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q: %q %v, want %q", c.args, got, err, c.want)
		}
	}
}

func TestIsNDP(t *testing.T) {
	ip6 := func(nh byte, rest ...byte) []byte {
		p := make([]byte, 40)
		p[0], p[6] = 0x60, nh
		return append(p, rest...)
	}
	hbh := []byte{58, 0, 5, 2, 0, 0, 1, 0} // next: ICMPv6, router alert
	for _, c := range []struct {
		p    []byte
		want bool
	}{
		{ip6(58, 133, 0), true},                            // router solicitation
		{ip6(58, 135, 0), true},                            // neighbour solicitation
		{ip6(0, append(hbh, 143, 0)...), true},             // MLDv2 report
		{ip6(58, 128, 0), false},                           // echo request
		{ip6(17, 0, 0), false},                             // UDP
		{append([]byte{0x45}, make([]byte, 40)...), false}, // IPv4
		{nil, false},
	} {
		if got := isNDP(c.p); got != c.want {
			t.Errorf("% x: %v, want %v", c.p[:min(len(c.p), 48)], got, c.want)
		}
	}
}

// The generated ICMPv6 echo capture: three requests, three answers, and
// the device's capture holds the replies.
func TestReplayEcho(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	before := leftovers(t)
	capPath := filepath.Join(t.TempDir(), "answers.pcap")
	out, stderr, code := runCmd(t, "replay", "-v", "-pace", "fast", "-capture", capPath, pcapDir+"/icmp6-echo.pcapng")
	t.Logf("\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if v := verdicts(t, out); v[0] != 3 || v[1] != 3 {
		t.Errorf("written %d, answered %d; want 3 and 3", v[0], v[1])
	}
	for _, want := range []string{"skipped   1 (non-ip 1)", "#2    answered", "<- echo-reply", "Icmp6OutEchoReplies +3", "into replay0 (198.18.0.1/24, fd00:7e57::1/64)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	replies := 0
	for _, p := range tcpdumpRead(t, capPath) {
		if strings.Contains(p, "fd00:7e57::1 > fd00:7e57::2: ICMP6, echo reply") {
			replies++
		}
	}
	if replies != 3 {
		t.Errorf("the capture holds %d echo replies, want 3", replies)
	}
	checkNoLeftovers(t, before)
}

// Captures from elsewhere, with their expectations (testdata/pcaps/real):
// the verdicts tunbench prints must be those the expectation states.
func TestReplayRealCaptures(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	if _, err := os.Stat(filepath.Join(realPcapDir, "SOURCES.md")); err != nil {
		t.Fatalf("the real captures must be in %s (testdata/pcaps/real from the repository root): %v", realPcapDir, err)
	}
	before := leftovers(t)
	for _, c := range []struct {
		name string
		want []int // written, answered, dropped, delivered, queued, accepted
		also []string
	}{
		{"icmp6-ping.pcap", []int{8, 4, 4, 0, 0, 0}, []string{"Ip6InAddrErrors +4"}},
		{"ech.pcap", []int{4, 0, 2, 2, 0, 0}, []string{"listener udp 53: 2 datagrams received"}},
		{"ipv6-bad-version.pcap", []int{2, 0, 0, 0, 0, 2}, []string{"refused   2 (EINVAL 2)"}},
		{"test_ethernet.pcap", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			capture := filepath.Join(realPcapDir, c.name)
			if _, err := os.Stat(capture); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := runCmd(t, "replay", "-pace", "fast", "-expect", "../../testdata/pcaps/real/"+c.name+".expect", capture)
			t.Logf("\n%s", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(out, "every record as expected") {
				t.Error("the expectation was not met")
			}
			if c.want != nil {
				if v := verdicts(t, out); !slices.Equal(v, c.want) {
					t.Errorf("verdicts %v, want %v", v, c.want)
				}
			}
			for _, want := range c.also {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in the output", want)
				}
			}
		})
	}
	checkNoLeftovers(t, before)
}

// An expectation that the kernel does not meet makes tunbench replay say
// so and exit 1: the check can fail.
func TestReplayExpectDiffers(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	capture, err := filepath.Abs(pcapDir + "/icmp6-echo.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	exp := filepath.Join(t.TempDir(), "wrong.expect")
	os.WriteFile(exp, []byte("capture "+capture+"\nchecksums fix\n1 skipped non-ip\n2 answered echo-reply\n3 dropped Ip6InAddrErrors\n4 answered echo-reply\n"), 0o600)
	out, _, code := runCmd(t, "replay", "-pace", "fast", "-expect", exp)
	if code != 1 || !strings.Contains(out, "DIFFERENT") || !strings.Contains(out, "record 3") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// tunbench capture around ping: the file opens with tcpdump and holds the
// echo requests ping sent out of the device.
func TestCapturePing(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatal("ping is not installed (Debian: iputils-ping); scripts/test installs it")
	}
	before := leftovers(t)
	path := filepath.Join(t.TempDir(), "ping.pcap")
	out, stderr, code := runCmd(t, "capture", "-o", path, "-no-ndp", "-count", "3", "--", "ping", "-6", "-n", "-c", "3", "-i", "0.2", "fd00:7e57::2")
	t.Logf("\n%s%s", out, stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, "3 packets written to "+path) {
		t.Errorf("the output does not say 3 packets were written")
	}
	pkts := tcpdumpRead(t, path)
	requests := 0
	for _, p := range pkts {
		if strings.Contains(p, "fd00:7e57::1 > fd00:7e57::2: ICMP6, echo request") {
			requests++
		}
	}
	if len(pkts) < 3 || requests != 3 {
		t.Errorf("tcpdump reads %d packets, %d of them echo requests; want 3 and 3:\n%s", len(pkts), requests, strings.Join(pkts, "\n"))
	}
	checkNoLeftovers(t, before)

	// Without a filter, over IPv4, until the command ends.
	out, stderr, code = runCmd(t, "capture", "-o", path, "--", "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "198.18.0.9")
	if code != 0 || !strings.Contains(out, "ping ended") {
		t.Fatalf("exit %d:\n%s%s", code, out, stderr)
	}
	requests = 0
	for _, p := range tcpdumpRead(t, path) {
		if strings.Contains(p, "IP 198.18.0.1 > 198.18.0.9: ICMP echo request") {
			requests++
		}
	}
	if requests != 2 {
		t.Errorf("%d IPv4 echo requests captured, want 2", requests)
	}
	checkNoLeftovers(t, before)
}

// Ctrl-C: tunbench replay stops at once with the summary so far (exit
// 130); tunbench capture ends the capture normally (exit 0, like tcpdump),
// stops its command, and leaves a file tcpdump reads. Neither leaves a
// process or a namespace behind.
func TestInterruptReplayCapture(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	self, _ := os.Readlink("/proc/self/ns/net")
	path := filepath.Join(t.TempDir(), "sleep.pcap")
	for _, c := range []struct {
		args     []string
		busy     func(pid int) bool           // the run is under way
		ready    func(h *heldNamespaces) bool // the interrupt may come
		code     int
		inStdout string
	}{
		{
			// The capture's gaps stretched a thousandfold: seconds apart.
			args: []string{"replay", "-speed", "0.001", "-max-gap", "0", pcapDir + "/icmp6-echo.pcapng"},
			busy: func(pid int) bool {
				for _, ns := range netnsInodes(pid) {
					if ns != self {
						return true
					}
				}
				return false
			},
			// The kernel answered the first echo request: its reply went
			// into the device, where the replay reads it at once. (The
			// device's tx counter would not do: router solicitations and
			// MLD reports go there too.) The next request is seconds away.
			ready: func(h *heldNamespaces) bool { return h.snmp6("Icmp6OutEchoReplies") >= 1 },
			code:  130, inStdout: "written   1: answered 1",
		},
		{
			args: []string{"capture", "-o", path, "--", "sleep", "30"},
			busy: func(pid int) bool {
				for _, k := range children(pid) {
					if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", k)); strings.TrimSpace(string(comm)) == "sleep" {
						return true
					}
				}
				return false
			},
			code: 0, inStdout: "(interrupted; the device read",
		},
	} {
		cmd := exec.Command(os.Args[0], c.args...)
		cmd.Env = append(os.Environ(), "TUNBENCH_TEST_MAIN=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		pid := cmd.Process.Pid
		deadline := time.Now().Add(20 * time.Second)
		for !c.busy(pid) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				<-exited
				t.Fatalf("%q: not under way after 20s\n%s%s", c.args, stdout.String(), stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		kids := children(pid)
		hold := holdNamespaces(pid, self)
		defer hold.release()
		if len(hold.inodes) == 0 {
			t.Fatalf("%q: could hold none of its namespaces", c.args)
		}
		for c.ready != nil && !c.ready(hold) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				<-exited
				t.Fatalf("%q: not ready for the interrupt after 20s\n%s%s", c.args, stdout.String(), stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // for the replay's read of what the kernel queued
		cmd.Process.Signal(os.Interrupt)
		var err error
		select {
		case err = <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Fatalf("%q: still running 10s after SIGINT", c.args)
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != c.code || !strings.Contains(stdout.String(), c.inStdout) {
			t.Errorf("%q: exit %d (want %d), output lacks %q:\n%s%s", c.args, code, c.code, c.inStdout, stdout.String(), stderr.String())
		}
		for _, k := range kids {
			if !waitGone(k) {
				t.Errorf("%q: child %d outlived tunbench", c.args, k)
			}
		}
		// No process refers to its namespaces any more.
		for _, r := range hold.referrers() {
			t.Errorf("%q: after tunbench exited, %s, one of its namespaces", c.args, r)
		}
		hold.release()
	}
	tcpdumpRead(t, path) // fails the test unless tcpdump reads it
}
