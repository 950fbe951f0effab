// Package netnstest gives privileged tests a private network namespace that
// disappears on its own when the test ends, even if the test fails or the
// process is killed: the namespace is held only by a file descriptor and by
// the devices and sockets created inside it, never by a name in /var/run/netns.
//
// Namespaces are per thread on Linux. A Namespace therefore never changes the
// calling goroutine: Do runs a function on a fresh OS thread that has joined
// the namespace, and that thread is thrown away afterwards (the goroutine exits
// while locked, so the Go runtime terminates the thread instead of reusing it).
// Sockets and TUN devices opened inside Do stay in the namespace for their
// whole life, whichever thread later reads or writes them.
package netnstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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

// Namespace is a private network namespace. Its methods are safe from any
// goroutine.
type Namespace struct {
	fd int // an open /proc/<pid>/task/<tid>/ns/net of the namespace
}

// New creates a private network namespace with loopback up. It skips or
// fails the test as SkipUnlessPrivileged does when the process lacks the
// privilege, and releases the namespace when the test ends.
func New(t testing.TB) *Namespace {
	t.Helper()
	SkipUnlessPrivileged(t)
	ns, err := Create()
	if err != nil {
		t.Fatalf("netnstest: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	if out, err := ns.Output("ip", "link", "set", "lo", "up"); err != nil {
		t.Fatalf("netnstest: lo up: %v: %s", err, out)
	}
	return ns
}

// Create makes a namespace without a testing.TB; the caller must Close it.
func Create() (*Namespace, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: this thread leaves the host namespace and must die
		// with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, fmt.Errorf("unshare(CLONE_NEWNET): %w", err)}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{-1, fmt.Errorf("open ns/net: %w", err)}
			return
		}
		ch <- result{fd, nil}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	return &Namespace{fd: r.fd}, nil
}

// Close drops the test's reference to the namespace. The kernel frees it
// once the last device and socket inside it are closed too.
func (ns *Namespace) Close() error {
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// Do runs fn on a thread inside the namespace and returns its error. Files
// and sockets that fn opens stay in the namespace. A process started inside
// fn (exec.Cmd.Start) is born in the namespace.
func (ns *Namespace) Do(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see the package doc
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("setns: %w", err)
			return
		}
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic in namespace: %v", r)
				}
			}()
			err = fn()
		}()
		ch <- err
	}()
	return <-ch
}

// Start starts cmd inside the namespace.
func (ns *Namespace) Start(cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}

// Output runs a command inside the namespace and returns its combined output.
func (ns *Namespace) Output(name string, args ...string) ([]byte, error) {
	var out []byte
	err := ns.Do(func() error {
		var err error
		cmd := exec.Command(name, args...)
		var buf bytes.Buffer
		cmd.Stdout = &buf
		cmd.Stderr = &buf
		err = cmd.Run()
		out = buf.Bytes()
		return err
	})
	return out, err
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
