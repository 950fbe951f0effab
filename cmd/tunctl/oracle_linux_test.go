package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
)

// The test binary doubles as tunctl: with this variable set it runs the
// command, so the tests exercise it as installed.
const runEnv = "TUNDRA_TEST_RUN_TUNCTL"

func TestMain(m *testing.M) {
	if os.Getenv(runEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// originalTunctl is Debian's uml-utilities tunctl, the oracle.
const originalTunctl = "/usr/bin/tunctl"

func requireOriginal(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(originalTunctl); err != nil {
		if os.Getenv(netnstest.RequirePrivEnv) == "1" {
			t.Fatalf("the oracle %s is missing (scripts/test installs uml-utilities): %v", originalTunctl, err)
		}
		t.Skipf("skipped: the oracle %s is missing (apt-get install uml-utilities): %v", originalTunctl, err)
	}
}

// result is what one run of a tunctl left: its output, its exit status and
// the namespace's links as `ip -d -j link` shows them.
type result struct {
	stdout, stderr string
	code           int
	links          []string // normalised, sorted; see linkSummary
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q, links %q", r.code, r.stdout, firstLine(r.stderr), r.links)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// ipLinkDetail is the part of `ip -d -j link` the oracle compares.
type ipLinkDetail struct {
	Name     string   `json:"ifname"`
	Flags    []string `json:"flags"`
	MTU      int      `json:"mtu"`
	LinkType string   `json:"link_type"`
	LinkInfo *struct {
		Kind string          `json:"info_kind"`
		Data json.RawMessage `json:"info_data"`
	} `json:"linkinfo"`
}

// linkSummary is one link as the oracle compares it: name, type, MTU,
// whether it is up, and for TUN/TAP devices type, pi, vnet_hdr,
// multi_queue, persist, user and group as ip prints them. The MAC
// address, random per device, is left out.
func linkSummary(l ipLinkDetail) string {
	up := false
	for _, f := range l.Flags {
		up = up || f == "UP"
	}
	s := fmt.Sprintf("%s %s mtu %d up=%t", l.Name, l.LinkType, l.MTU, up)
	if l.LinkInfo != nil {
		s += " kind=" + l.LinkInfo.Kind
		if l.LinkInfo.Kind == "tun" {
			var d struct {
				Type       string `json:"type"`
				PI         bool   `json:"pi"`
				VnetHdr    bool   `json:"vnet_hdr"`
				MultiQueue bool   `json:"multi_queue"`
				Persist    bool   `json:"persist"`
				User       any    `json:"user"`
				Group      any    `json:"group"`
			}
			if err := json.Unmarshal(l.LinkInfo.Data, &d); err != nil {
				return s + " info_data: " + err.Error()
			}
			s += fmt.Sprintf(" type=%s pi=%t vnet_hdr=%t multi_queue=%t persist=%t user=%v group=%v",
				d.Type, d.PI, d.VnetHdr, d.MultiQueue, d.Persist, d.User, d.Group)
		}
	}
	return s
}

func links(t *testing.T, ns *netnstest.Namespace) []string {
	t.Helper()
	var ls []ipLinkDetail
	if err := ns.IPJSON(&ls, "-d", "link", "show"); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		if l.Name != "lo" {
			out = append(out, linkSummary(l))
		}
	}
	sort.Strings(out)
	return out
}

// runIn runs a tunctl (the original, or ours when bin is "") with args in
// a fresh namespace prepared by the ip commands of setup.
func runIn(t *testing.T, bin string, setup [][]string, args []string) result {
	t.Helper()
	ns := netnstest.New(t)
	for _, s := range setup {
		if out, err := ns.Output("ip", s...); err != nil {
			t.Fatalf("setup ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return runBin(t, ns, bin, args)
}

// runInNS runs our tunctl in ns.
func runInNS(t *testing.T, ns *netnstest.Namespace, args []string) result {
	t.Helper()
	return runBin(t, ns, "", args)
}

func runBin(t *testing.T, ns *netnstest.Namespace, bin string, args []string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if bin == "" {
		cmd = exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runEnv+"=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := ns.Do(cmd.Run)
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running %s %q: %v", bin, args, err)
	}
	r.links = links(t, ns)
	return r
}

// both runs the original and ours with the same arguments, each in its own
// namespace, and logs both.
func both(t *testing.T, setup [][]string, args ...string) (orig, ours result) {
	t.Helper()
	orig = runIn(t, originalTunctl, setup, args)
	ours = runIn(t, "", setup, args)
	t.Logf("tunctl %s\n  original: %v\n  ours:     %v", strings.Join(args, " "), orig, ours)
	return orig, ours
}

var (
	tapExists  = [][]string{{"tuntap", "add", "tap0", "mode", "tap"}}
	tunExists  = [][]string{{"tuntap", "add", "tun0", "mode", "tun"}}
	ownedTap   = [][]string{{"tuntap", "add", "tap0", "mode", "tap", "user", "5", "group", "6"}}
	vethExists = [][]string{{"link", "add", "v0", "type", "veth", "peer", "name", "v1"}}
)

// The oracle: wherever the original is right, ours prints the same on
// standard output, exits the same, and leaves the kernel with the same
// devices (type, pi, vnet_hdr, multi_queue, persist, user, group, MTU, up).
// Standard error is compared by kind only (empty or not): ours words its
// reasons differently.
func TestOracle(t *testing.T) {
	requireOriginal(t)
	for _, tc := range []struct {
		name  string
		setup [][]string
		args  []string
	}{
		{"default", nil, nil},
		{"brief", nil, []string{"-b"}},
		{"owner by number", nil, []string{"-u", "65534"}},
		{"owner by name", nil, []string{"-u", "nobody"}},
		{"group by name", nil, []string{"-g", "nogroup"}},
		{"owner and group", nil, []string{"-u", "nobody", "-g", "100"}},
		{"owner unknown to ip", nil, []string{"-u", "54321"}},
		{"owner hex", nil, []string{"-u", "0x10"}},
		{"owner octal", nil, []string{"-u", "010"}},
		{"owner with leading space", nil, []string{"-u", " 5"}},
		{"largest owner printed alike", nil, []string{"-u", "2147483647"}},
		{"name", nil, []string{"-t", "foo"}},
		{"name brief owner", nil, []string{"-t", "foo", "-b", "-u", "1000"}},
		{"grouped letters", nil, []string{"-bt", "foo"}},
		{"attached argument", nil, []string{"-tfoo"}},
		{"last name wins", nil, []string{"-t", "a", "-t", "b"}},
		{"pattern", nil, []string{"-t", "tap%d"}},
		{"second device", tapExists, nil},
		{"clone device", nil, []string{"-f", "/dev/net/tun", "-t", "c0"}},
		{"existing tap gets an owner", tapExists, []string{"-t", "tap0", "-u", "7"}},
		{"existing owned tap", ownedTap, []string{"-t", "tap0", "-g", "8"}},
		{"existing tun is not a tap", tunExists, []string{"-t", "tun0"}},
		{"name of a veth", vethExists, []string{"-t", "v0"}},
		{"delete", tapExists, []string{"-d", "tap0"}},
		{"delete owned", ownedTap, []string{"-d", "tap0"}},
		{"delete ignores -u", tapExists, []string{"-d", "tap0", "-u", "5"}},
		{"delete with clone device", tapExists, []string{"-f", "/dev/net/tun", "-d", "tap0"}},
		{"invalid option", nil, []string{"-x"}},
		{"missing argument", nil, []string{"-t"}},
		{"missing argument of -d", nil, []string{"-d"}},
		{"operand", nil, []string{"extra"}},
		{"operand after --", nil, []string{"--", "-b"}},
		{"unknown user", nil, []string{"-u", "nosuchuser"}},
		{"unknown group", nil, []string{"-g", "nosuchgroup"}},
		{"not a number", nil, []string{"-u", "5x"}},
		{"bad octal", nil, []string{"-u", "08"}},
		{"missing clone device", nil, []string{"-f", "/nonexistent/tun"}},
		{"slash in name", nil, []string{"-t", "a/b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, ours := both(t, tc.setup, tc.args...)
			if orig.code != ours.code {
				t.Errorf("exit: original %d, ours %d", orig.code, ours.code)
			}
			if orig.stdout != ours.stdout {
				t.Errorf("stdout: original %q, ours %q", orig.stdout, ours.stdout)
			}
			if (orig.stderr == "") != (ours.stderr == "") {
				t.Errorf("stderr: original %q, ours %q", orig.stderr, ours.stderr)
			}
			if strings.Join(orig.links, "\n") != strings.Join(ours.links, "\n") {
				t.Errorf("ip -d -j link:\n  original %q\n  ours     %q", orig.links, ours.links)
			}
		})
	}
}

// Deliberate difference: `tunctl -d NAME` on a name that does not exist.
// The original creates a TAP device of that name, clears its persistence
// (so it vanishes) and reports success; ours says there is no such device
// and exits 1. Neither leaves a device.
func TestDifferenceDeleteMissing(t *testing.T) {
	requireOriginal(t)
	orig, ours := both(t, nil, "-d", "nosuch")
	if orig.code != 0 || orig.stdout != "Set 'nosuch' nonpersistent\n" {
		t.Logf("the original no longer reports success here: %v", orig)
	}
	if ours.code != 1 || ours.stdout != "" || !strings.Contains(ours.stderr, "no device named 'nosuch'") || len(ours.links) != 0 {
		t.Errorf("ours: %v; want exit 1 and \"no device named 'nosuch'\"", ours)
	}
}

// Deliberate difference: -d on a TUN device. The original always attaches
// as TAP and fails (TUNSETIFF: Invalid argument); ours deletes TUN and TAP
// alike.
func TestDifferenceDeleteTUN(t *testing.T) {
	requireOriginal(t)
	orig, ours := both(t, tunExists, "-d", "tun0")
	if orig.code != 1 || len(orig.links) != 1 {
		t.Logf("the original now deletes TUN devices: %v", orig)
	}
	if ours.code != 0 || ours.stdout != "Set 'tun0' nonpersistent\n" || len(ours.links) != 0 {
		t.Errorf("ours: %v; want tun0 deleted with the original's message", ours)
	}
	// A multi-queue TUN device with vnet_hdr too: ours attaches with the
	// device's own flags.
	_, ours = both(t, [][]string{{"tuntap", "add", "mq0", "mode", "tun", "multi_queue", "vnet_hdr", "pi"}}, "-d", "mq0")
	if ours.code != 0 || len(ours.links) != 0 {
		t.Errorf("ours on a multi-queue vnet_hdr pi TUN device: %v", ours)
	}
}

// Deliberate difference: -d on a device that is not TUN/TAP. The original
// prints "TUNSETIFF: Invalid argument"; ours names the device's kind.
func TestDifferenceDeleteNotTun(t *testing.T) {
	requireOriginal(t)
	orig, ours := both(t, vethExists, "-d", "v0")
	if !strings.Contains(orig.stderr, "TUNSETIFF: Invalid argument") {
		t.Logf("the original's message changed: %v", orig)
	}
	if ours.code != 1 || !strings.Contains(ours.stderr, "'v0' is not a TUN/TAP device: it is a veth device") || len(ours.links) != 2 {
		t.Errorf("ours: %v; want the kind named and v0 untouched", ours)
	}
	_, ours = both(t, nil, "-d", "lo")
	if ours.code != 1 || !strings.Contains(ours.stderr, "it is the loopback device") {
		t.Errorf("ours on lo: %v", ours)
	}
}

// Deliberate difference: -h. The original calls it an invalid option and
// exits 1; ours prints the usage on standard output and exits 0.
func TestDifferenceHelp(t *testing.T) {
	requireOriginal(t)
	orig, ours := both(t, nil, "-h")
	if orig.code != 1 {
		t.Logf("the original's -h now exits %d", orig.code)
	}
	if ours.code != 0 || !strings.HasPrefix(ours.stdout, "Create: tunctl [-b] [-u owner]") || ours.stderr != "" || len(ours.links) != 0 {
		t.Errorf("ours: %v", ours)
	}
}

// Deliberate difference: a name longer than 15 bytes. The original cuts it
// to 15 (strncpy into ifr_name) and makes a device with another name than
// the one asked for; ours refuses it.
func TestDifferenceLongName(t *testing.T) {
	requireOriginal(t)
	orig, ours := both(t, nil, "-t", "waytoolongname12345")
	if orig.code != 0 || len(orig.links) != 1 {
		t.Logf("the original no longer cuts long names: %v", orig)
	}
	if ours.code != 1 || ours.stdout != "" || !strings.Contains(ours.stderr, "waytoolongname12345") || len(ours.links) != 0 {
		t.Errorf("ours: %v; want the name refused", ours)
	}
}

// Deliberate difference: ids outside 0..4294967294 and the empty string.
// The original reads -u -1 and -u 4294967295 as "no owner given" (so the
// caller, root, becomes the owner), cuts 4294967296 to 0, and reads "" as
// 0: each makes root the owner when the administrator asked for something
// else. Ours refuses them.
func TestDifferenceIDRange(t *testing.T) {
	requireOriginal(t)
	for _, id := range []string{"-1", "4294967295", "4294967296", ""} {
		orig, ours := both(t, nil, "-u", id)
		if orig.code != 0 || orig.stdout != "Set 'tap0' persistent and owned by uid 0\n" {
			t.Logf("the original's -u %q changed: %v", id, orig)
		}
		if ours.code != 1 || ours.stdout != "" || len(ours.links) != 0 {
			t.Errorf("ours -u %q: %v; want it refused", id, ours)
		}
	}
}

// Deliberate difference: uids and gids above 2147483647. Both set the same
// owner, but the original prints it as a signed int ("uid -2" for
// 4294967294); ours prints the id.
func TestDifferenceLargeIDPrinted(t *testing.T) {
	requireOriginal(t)
	orig, ours := both(t, nil, "-u", "4294967294", "-g", "3000000000")
	if orig.stdout != "Set 'tap0' persistent and owned by uid -2 gid -1294967296\n" {
		t.Logf("the original now prints: %v", orig)
	}
	if ours.code != 0 || ours.stdout != "Set 'tap0' persistent and owned by uid 4294967294 gid 3000000000\n" {
		t.Errorf("ours: %v", ours)
	}
	if strings.Join(orig.links, "\n") != strings.Join(ours.links, "\n") {
		t.Errorf("the devices differ:\n  original %q\n  ours     %q", orig.links, ours.links)
	}
}
