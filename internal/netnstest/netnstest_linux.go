// Package netnstest gives privileged tests a private network namespace
// (package netns) that disappears on its own when the test ends, even if the
// test fails or the process is killed, and helpers that check the result
// with the real ip tool.
package netnstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netns"
)

// RequirePrivEnv is the environment variable that turns every privilege skip
// into a failure, so that CI can never pass by skipping.
const RequirePrivEnv = "TUNDRA_REQUIRE_PRIV"

// SkipUnlessPrivileged skips t when the process cannot create network
// namespaces and TUN devices, or fails it when TUNDRA_REQUIRE_PRIV=1.
func SkipUnlessPrivileged(t testing.TB) {
	t.Helper()
	if err := privileged(); err != nil {
		if os.Getenv(RequirePrivEnv) == "1" {
			t.Fatalf("%s=1 but this test needs CAP_NET_ADMIN: %v", RequirePrivEnv, err)
		}
		t.Skipf("skipped: needs CAP_NET_ADMIN (run as root; %v)", err)
	}
}

func privileged() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("euid is %d, not 0", os.Geteuid())
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return err
	}
	return nil
}

// Namespace is a private network namespace (see package netns) with the
// helpers tests use to check what the library did. Its methods are safe
// from any goroutine.
type Namespace struct {
	*netns.Namespace
}

// New creates a private network namespace with loopback up. It skips or
// fails the test as SkipUnlessPrivileged does when the process lacks the
// privilege, and releases the namespace when the test ends.
func New(t testing.TB) *Namespace {
	t.Helper()
	SkipUnlessPrivileged(t)
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("netnstest: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return &Namespace{ns}
}

// IPJSON runs `ip -j ARGS...` inside the namespace and decodes its output
// into v.
func (ns *Namespace) IPJSON(v any, args ...string) error {
	var stdout, stderr bytes.Buffer
	err := ns.Do(func() error {
		cmd := exec.Command("ip", append([]string{"-j"}, args...)...)
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		return cmd.Run()
	})
	if err != nil {
		return fmt.Errorf("ip -j %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("ip -j %s: decoding %q: %w", strings.Join(args, " "), stdout.String(), err)
	}
	return nil
}

// Link is the part of `ip -j link show` output the tests look at.
type Link struct {
	Index     int      `json:"ifindex"`
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	MTU       int      `json:"mtu"`
	OperState string   `json:"operstate"`
	LinkType  string   `json:"link_type"`
	Address   string   `json:"address"`
}

// HasFlag reports whether ip listed flag for the link.
func (l Link) HasFlag(flag string) bool {
	for _, f := range l.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// AddrInfo is one address of `ip -j addr show` output.
type AddrInfo struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	Address   string `json:"address"` // the peer, when one is set
	PrefixLen int    `json:"prefixlen"`
	Scope     string `json:"scope"`
	Tentative bool   `json:"tentative"`
	NoDAD     bool   `json:"nodad"`
}

// LinkAddrs is one link of `ip -j addr show` output.
type LinkAddrs struct {
	Link
	AddrInfo []AddrInfo `json:"addr_info"`
}

// ErrNoLink is returned by LinkByName when ip does not know the link.
var ErrNoLink = errors.New("no such link")

// Links lists the namespace's links as ip sees them.
func (ns *Namespace) Links() ([]Link, error) {
	var links []Link
	err := ns.IPJSON(&links, "link", "show")
	return links, err
}

// LinkByName returns ip's view of one link, or ErrNoLink.
func (ns *Namespace) LinkByName(name string) (Link, error) {
	links, err := ns.Links()
	if err != nil {
		return Link{}, err
	}
	for _, l := range links {
		if l.Name == name {
			return l, nil
		}
	}
	return Link{}, fmt.Errorf("%s: %w", name, ErrNoLink)
}

// Addrs returns ip's view of the addresses of one link.
func (ns *Namespace) Addrs(name string) ([]AddrInfo, error) {
	var links []LinkAddrs
	if err := ns.IPJSON(&links, "addr", "show", "dev", name); err != nil {
		return nil, err
	}
	if len(links) != 1 {
		return nil, fmt.Errorf("ip -j addr show dev %s: %d links", name, len(links))
	}
	return links[0].AddrInfo, nil
}
