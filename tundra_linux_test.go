package tundra

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/nl/nltest"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// createIn runs Create inside ns and closes the device when the test ends.
func createIn[A Address](t *testing.T, ns *netnstest.Namespace, addr A, opts ...Option) *Device {
	t.Helper()
	var dev *Device
	if err := ns.Do(func() error {
		var err error
		dev, err = Create(addr, opts...)
		return err
	}); err != nil {
		t.Fatalf("Create(%v): %v", addr, err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func createErrIn[A Address](ns *netnstest.Namespace, addr A, opts ...Option) error {
	return ns.Do(func() error {
		dev, err := Create(addr, opts...)
		if err == nil {
			dev.Close()
			return errors.New("Create succeeded")
		}
		return err
	})
}

// linkDetails is `ip -j -d link show` for one TUN/TAP link.
type linkDetails struct {
	netnstest.Link
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			Type        string `json:"type"`
			PI          bool   `json:"pi"`
			VnetHdr     bool   `json:"vnet_hdr"`
			MultiQueue  bool   `json:"multi_queue"`
			Persist     bool   `json:"persist"`
			User        *ipUID `json:"user"`  // only when an owner is set
			Group       *ipGID `json:"group"` // only when a group is set
			NumQueues   int    `json:"numqueues"`
			NumDisabled int    `json:"numdisabled"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

// ipUID and ipGID are the owner and group as ip -j prints them: a number,
// or the name when the host's user database has one (ip resolves them).
type (
	ipUID int
	ipGID int
)

func (u *ipUID) UnmarshalJSON(b []byte) error {
	return unmarshalID((*int)(u), b, func(name string) (string, error) {
		x, err := user.Lookup(name)
		if err != nil {
			return "", err
		}
		return x.Uid, nil
	})
}

func (g *ipGID) UnmarshalJSON(b []byte) error {
	return unmarshalID((*int)(g), b, func(name string) (string, error) {
		x, err := user.LookupGroup(name)
		if err != nil {
			return "", err
		}
		return x.Gid, nil
	})
}

func unmarshalID(id *int, b []byte, lookup func(string) (string, error)) error {
	if err := json.Unmarshal(b, id); err == nil {
		return nil
	}
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("ip -j id %s is neither a number nor a name", b)
	}
	s, err := lookup(name)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	*id = n
	return err
}

func details(t *testing.T, ns *netnstest.Namespace, name string) linkDetails {
	t.Helper()
	var links []linkDetails
	if err := ns.IPJSON(&links, "-d", "link", "show", "dev", name); err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 {
		t.Fatalf("ip -d link show dev %s: %d links", name, len(links))
	}
	return links[0]
}

func requireGone(t *testing.T, ns *netnstest.Namespace, name string) {
	t.Helper()
	if l, err := ns.LinkByName(name); !errors.Is(err, netnstest.ErrNoLink) {
		t.Errorf("%s still present (%+v, %v)", name, l, err)
	}
}

func requireFlags(t *testing.T, l netnstest.Link, want ...string) {
	t.Helper()
	for _, f := range want {
		if !l.HasFlag(f) {
			t.Errorf("%s: flags %v lack %s", l.Name, l.Flags, f)
		}
	}
}

// onlyAddr returns the link's one address of family ("inet", "inet6"),
// ignoring the kernel's own IPv6 link-local address.
func onlyAddr(t *testing.T, ns *netnstest.Namespace, name, family string) netnstest.AddrInfo {
	t.Helper()
	addrs, err := ns.Addrs(name)
	if err != nil {
		t.Fatal(err)
	}
	var found []netnstest.AddrInfo
	for _, a := range addrs {
		if a.Family == family && !(family == "inet6" && strings.HasPrefix(a.Local, "fe80:")) {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d %s addresses, want 1: %+v", name, len(found), family, addrs)
	}
	return found[0]
}

func TestCreateIPv4WithPeer(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, "10.9.0.1/24", Peer("10.9.0.2"), MTU(1400), Name("tdr4"))
	l, err := ns.LinkByName("tdr4")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ip -j link: %+v", l)
	requireFlags(t, l, "UP", "POINTOPOINT", "NOARP")
	if l.MTU != 1400 || l.LinkType != "none" || l.Index != dev.Index() || dev.Name() != "tdr4" {
		t.Errorf("ip: mtu %d type %s index %d; device %s index %d", l.MTU, l.LinkType, l.Index, dev.Name(), dev.Index())
	}
	a := onlyAddr(t, ns, "tdr4", "inet")
	t.Logf("ip -j addr: %+v", a)
	if a.Local != "10.9.0.1" || a.Address != "10.9.0.2" || a.PrefixLen != 24 {
		t.Errorf("ip addr: local %s peer %s /%d; want 10.9.0.1 peer 10.9.0.2 /24", a.Local, a.Address, a.PrefixLen)
	}
	if dev.Addr() != netip.MustParsePrefix("10.9.0.1/24") || dev.Peer() != netip.MustParseAddr("10.9.0.2") {
		t.Errorf("Device reports %v peer %v", dev.Addr(), dev.Peer())
	}
	if d := details(t, ns, "tdr4"); d.LinkInfo.Data.PI || d.LinkInfo.Data.Type != "tun" {
		t.Errorf("ip -d: %+v, want a tun without pi", d.LinkInfo.Data)
	}
}

func TestCreateIPv6WithPeer(t *testing.T) {
	ns := netnstest.New(t)
	createIn(t, ns, "fd11:b7b7:4360::2/64", Peer("fd11:b7b7:4360::1"), MTU(1280), Name("tdr6"))
	l, err := ns.LinkByName("tdr6")
	if err != nil {
		t.Fatal(err)
	}
	requireFlags(t, l, "UP", "POINTOPOINT", "NOARP")
	if l.MTU != 1280 {
		t.Errorf("mtu %d, want 1280", l.MTU)
	}
	a := onlyAddr(t, ns, "tdr6", "inet6")
	t.Logf("ip -j addr: %+v", a)
	if a.Local != "fd11:b7b7:4360::2" || a.Address != "fd11:b7b7:4360::1" || a.PrefixLen != 64 {
		t.Errorf("ip addr: local %s peer %s /%d", a.Local, a.Address, a.PrefixLen)
	}
	if a.Tentative || !a.NoDAD {
		t.Errorf("address tentative %v nodad %v: want usable now (nodad)", a.Tentative, a.NoDAD)
	}
}

// The Elixir Tundra's own example: an IPv6 address with the default host
// prefix and a kernel-chosen name.
func TestCreateKernelChosenName(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, netip.MustParseAddr("fd11:b7b7:4360::2"))
	if !strings.HasPrefix(dev.Name(), "tun") {
		t.Errorf("name %q, want tunN", dev.Name())
	}
	l, err := ns.LinkByName(dev.Name())
	if err != nil {
		t.Fatal(err)
	}
	requireFlags(t, l, "UP")
	a := onlyAddr(t, ns, dev.Name(), "inet6")
	if a.Local != "fd11:b7b7:4360::2" || a.PrefixLen != 128 {
		t.Errorf("ip addr %+v, want fd11:b7b7:4360::2/128", a)
	}
}

func TestCreateTAP(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, "fd00:7a9::1/64", TAP(), Name("tdrtap"), PacketInfo())
	if dev.Flags()&tun.FlagTAP == 0 {
		t.Errorf("flags %v lack TAP", dev.Flags())
	}
	l, err := ns.LinkByName("tdrtap")
	if err != nil {
		t.Fatal(err)
	}
	requireFlags(t, l, "UP", "BROADCAST", "MULTICAST")
	if l.LinkType != "ether" {
		t.Errorf("link_type %q, want ether", l.LinkType)
	}
	a := onlyAddr(t, ns, "tdrtap", "inet6")
	if a.Local != "fd00:7a9::1" || a.PrefixLen != 64 || a.Tentative {
		t.Errorf("ip addr %+v", a)
	}
	if d := details(t, ns, "tdrtap"); d.LinkInfo.Data.Type != "tap" || !d.LinkInfo.Data.PI {
		t.Errorf("ip -d: %+v, want a tap with pi", d.LinkInfo.Data)
	}
}

func TestCreateTAPIPv4Netmask(t *testing.T) {
	ns := netnstest.New(t)
	createIn(t, ns, "192.168.77.1", TAP(), Netmask("255.255.255.0"), Name("tdrtap4"))
	a := onlyAddr(t, ns, "tdrtap4", "inet")
	if a.Local != "192.168.77.1" || a.PrefixLen != 24 {
		t.Errorf("ip addr %+v, want 192.168.77.1/24", a)
	}
}

func TestCreateQueues(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, "fd00::1/64", Queues(3), Name("tdrmq"))
	if n := len(dev.Fds()); n != 3 {
		t.Fatalf("%d fds, want 3", n)
	}
	d := details(t, ns, "tdrmq")
	t.Logf("ip -d: %+v", d.LinkInfo.Data)
	if !d.LinkInfo.Data.MultiQueue || d.LinkInfo.Data.NumQueues != 3 || d.LinkInfo.Data.NumDisabled != 0 {
		t.Errorf("ip -d: %+v, want multi_queue with 3 queues", d.LinkInfo.Data)
	}
}

// A persistent device with an owner and a group outlives Create's process
// hold and can be reopened by that uid and gid, without privileges.
func TestCreatePersistOwnerGroup(t *testing.T) {
	ns := netnstest.New(t)
	const uid, gid = 12345, 23456
	dev := createIn(t, ns, "fd00:77::1/64", Name("tdrpers"), Persist(), Owner(uid), Group(gid))
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	d := details(t, ns, "tdrpers")
	t.Logf("after Close: ip -d %+v", d.LinkInfo.Data)
	if !d.LinkInfo.Data.Persist || d.LinkInfo.Data.User == nil || *d.LinkInfo.Data.User != uid ||
		d.LinkInfo.Data.Group == nil || *d.LinkInfo.Data.Group != gid {
		t.Fatalf("ip -d: %+v, want persist, user %d, group %d", d.LinkInfo.Data, uid, gid)
	}
	bin := netnstest.HelperBinary(t)
	child := netnstest.Child{Bin: bin, Run: "TestHelperOpen", Env: []string{helperEnv + "=tdrpers"},
		Uid: uid, Gid: gid, Caps: []uintptr{unix.CAP_DAC_OVERRIDE}}
	if got := child.RunIn(t, ns); !strings.HasPrefix(got, "RESULT ok") {
		t.Errorf("owner could not reopen: %s", got)
	}
	child.Uid = 54321
	if got := child.RunIn(t, ns); !strings.Contains(got, "EPERM") {
		t.Errorf("stranger reopened or failed otherwise: %s", got)
	}
	// Take it back and make it go away.
	var back *tun.Device
	if err := ns.Do(func() error {
		var err error
		back, err = tun.Open(tun.Config{Name: "tdrpers"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := back.SetPersist(false); err != nil {
		t.Fatal(err)
	}
	back.Close()
	requireGone(t, ns, "tdrpers")
}

const (
	helperEnv       = "TUNDRA_HELPER_NAME"
	helperModeEnv   = "TUNDRA_HELPER_MODE"   // auto, direct or broker
	helperBrokerEnv = "TUNDRA_HELPER_BROKER" // the broker's socket
)

// TestHelperOpen is not a test: a child process with another uid runs it
// to attach to a device by name, as an unprivileged owner would.
func TestHelperOpen(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		t.Skip("helper for TestCreatePersistOwnerGroup, runs only in a child process")
	}
	dev, err := tun.Open(tun.Config{Name: name})
	if err != nil {
		fmt.Printf("RESULT err %s: %v\n", errnoName(err), err)
		os.Exit(0)
	}
	fmt.Printf("RESULT ok %s\n", dev.Name())
	dev.Close()
	os.Exit(0)
}

// TestHelperCreate is not a test: a child process without privileges runs
// it to call Create.
func TestHelperCreate(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper, runs only in a child process")
	}
	// Start the Go netpoller first: the broker client's dial would start
	// it, and its epoll and eventfd descriptors are not a leak.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	before := fdCount()
	opts := []Option{Name(os.Getenv(helperEnv)), BrokerSocket(os.Getenv(helperBrokerEnv))}
	switch os.Getenv(helperModeEnv) {
	case "direct":
		opts = append(opts, Mode(DirectOnly))
	case "broker":
		opts = append(opts, Mode(BrokerOnly))
	}
	dev, err := Create("fd00:99::1/64", opts...)
	if err == nil {
		// ip, run by this unprivileged process, reports the device up.
		out, _ := exec.Command("ip", "-o", "link", "show", "dev", dev.Name()).CombinedOutput()
		fmt.Printf("RESULT ok %s up=%v fallback=%v\n", dev.Name(), strings.Contains(string(out), ",UP"), dev.FallbackReason())
		dev.Close()
		os.Exit(0)
	}
	fmt.Printf("RESULT err %s fds %d->%d: %v\n", errnoName(err), before, fdCount(), err)
	os.Exit(0)
}

func fdCount() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

func errnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return "no-errno"
}

// Without CAP_NET_ADMIN, Create says EPERM and leaves nothing open.
func TestCreateUnprivileged(t *testing.T) {
	ns := netnstest.New(t)
	bin := netnstest.HelperBinary(t)
	got := netnstest.Child{Bin: bin, Run: "TestHelperCreate", Env: []string{helperEnv + "=tdrunpriv"},
		Uid: 54321, Gid: 54321, Caps: []uintptr{unix.CAP_DAC_OVERRIDE}}.RunIn(t, ns)
	if !strings.Contains(got, "RESULT err EPERM") {
		t.Fatalf("unprivileged Create: %s, want EPERM", got)
	}
	var before, after int
	if _, err := fmt.Sscanf(got[strings.Index(got, "fds "):], "fds %d->%d", &before, &after); err != nil || before != after {
		t.Errorf("descriptors %d before, %d after a failed Create (%v)", before, after, err)
	}
	requireGone(t, ns, "tdrunpriv")
}

func TestCloseRemovesDevice(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, "10.1.0.1/30", Name("tdrgone"))
	if _, err := ns.LinkByName("tdrgone"); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, ns, "tdrgone")
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// withSystem is a test-only Option: Create goes through sys, not the real
// kernel interface. It touches nothing global, so a broker serving in the
// same process is unaffected.
func withSystem(sys system) Option { return Option{func(c *rawOptions) { c.sys = &sys }} }

// failAt is an Option making Create fail with err at step: "call open"
// stands for tun.Open refused with err; "call set mtu" and "call add
// address" for the kernel answering that netlink request with the errno
// err (nltest.Intercept over the real socket); any other name is a step of
// directSteps, failed with err after it ran, to exercise its undo.
func failAt(step string, err error) Option {
	sys := realSystem
	switch step {
	case "call open":
		sys.openTUN = func(tun.Config) (*tun.Device, error) { return nil, err }
	case "call set mtu", "call add address":
		typ := uint16(unix.RTM_NEWADDR)
		if step == "call set mtu" {
			typ = unix.RTM_SETLINK // the MTU's is the first RTM_SETLINK
		}
		errno := err.(unix.Errno)
		sys.dialNetlink = func() (*nl.Conn, error) {
			t, derr := nl.DialTransport()
			if derr != nil {
				return nil, derr
			}
			refused := false
			return nl.NewConn(nltest.Intercept(t, func(req nltest.Message) ([]nltest.Message, error) {
				if req.Type != typ || refused {
					return nil, nil // to the kernel
				}
				refused = true
				return []nltest.Message{nltest.Error(req, errno)}, nil
			})), nil
		}
	default:
		sys.after = func(s string) error {
			if s == step {
				return err
			}
			return nil
		}
	}
	return withSystem(sys)
}

// Every step of Create can fail; each failure leaves no descriptor and no
// device behind, and a device that existed before is left as it was.
func TestCreateRollsBackEveryStep(t *testing.T) {
	ns := netnstest.New(t)
	// On a device that existed, ownership and persistence come last, once
	// nothing else can fail: they cannot be put back.
	steps := []string{"open", "queues", "offloads", "look up", "mtu", "address", "up", "usable"}
	injected := errors.New("injected failure")
	for _, fail := range append(steps, "ownership", "persist") {
		t.Run("new device/"+fail, func(t *testing.T) {
			before := leakcheck.FDs(t)
			err := createErrIn(ns, "fd00:5::1/64", Name("tdrfail"), Persist(), Owner(1000), MTU(1400), failAt(fail, injected))
			if !errors.Is(err, injected) {
				t.Fatalf("Create: %v, want the injected failure", err)
			}
			if !strings.Contains(err.Error(), fail) || !strings.Contains(err.Error(), "tdrfail") {
				t.Errorf("error %q does not name the step and the device", err)
			}
			leakcheck.NoNewFDs(t, before)
			requireGone(t, ns, "tdrfail")
		})
	}
	// A persistent device made beforehand by ip: Create reuses it by name
	// and, failing, leaves it down, with its MTU, without the address, and
	// with no owner or group.
	if out, err := ns.Output("ip", "tuntap", "add", "dev", "tdrold", "mode", "tun"); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}
	for _, fail := range steps {
		t.Run("existing device/"+fail, func(t *testing.T) {
			before := leakcheck.FDs(t)
			err := createErrIn(ns, "10.5.0.1/24", Name("tdrold"), MTU(1300), Owner(4242), Group(4242), failAt(fail, injected))
			if !errors.Is(err, injected) {
				t.Fatalf("Create: %v", err)
			}
			if d := details(t, ns, "tdrold").LinkInfo.Data; d.User != nil || d.Group != nil || !d.Persist {
				t.Errorf("existing device's ownership changed: user set %v, group set %v, persist %v", d.User != nil, d.Group != nil, d.Persist)
			}
			leakcheck.NoNewFDs(t, before)
			l, err := ns.LinkByName("tdrold")
			if err != nil {
				t.Fatalf("the existing device is gone: %v", err)
			}
			if l.HasFlag("UP") || l.MTU != 1500 {
				t.Errorf("existing device changed: flags %v mtu %d", l.Flags, l.MTU)
			}
			if addrs, _ := ns.Addrs("tdrold"); slices.ContainsFunc(addrs, func(a netnstest.AddrInfo) bool { return a.Family == "inet" }) {
				t.Errorf("address left on the existing device: %+v", addrs)
			}
		})
	}
	// And without a failure, the existing device is reused and configured.
	dev := createIn(t, ns, "10.5.0.1/24", Name("tdrold"), MTU(1300))
	if l, _ := ns.LinkByName("tdrold"); l.MTU != 1300 || !l.HasFlag("UP") || dev.Index() != l.Index {
		t.Errorf("reused device: %+v", l)
	}
}

// Bad input that only the kernel can judge: each gives an error naming the
// reason and leaves nothing behind.
func TestCreateKernelRefusals(t *testing.T) {
	ns := netnstest.New(t)
	createIn(t, ns, "10.6.0.1/24", Name("tdrbusy"))

	check := func(what string, errno unix.Errno, says string, addr string, opts ...Option) {
		t.Run(what, func(t *testing.T) {
			before := leakcheck.FDs(t)
			linksBefore, _ := ns.Links()
			err := createErrIn(ns, addr, opts...)
			t.Logf("%s: %v", what, err)
			if !errors.Is(err, errno) {
				t.Errorf("%v: want %s", err, unix.ErrnoName(errno))
			}
			if !strings.Contains(err.Error(), says) {
				t.Errorf("%q does not say %q", err, says)
			}
			var e *Error
			if !errors.As(err, &e) || e.Op != "create" {
				t.Errorf("not a create *Error: %T", err)
			}
			leakcheck.NoNewFDs(t, before)
			if linksAfter, _ := ns.Links(); len(linksAfter) != len(linksBefore) {
				t.Errorf("%d links before, %d after", len(linksBefore), len(linksAfter))
			}
		})
	}
	check("exclusive name that exists", unix.EBUSY, "already exists", "10.7.0.1", Name("tdrbusy"), Exclusive())
	check("single-queue device already held", unix.EBUSY, "already has a queue", "10.7.0.1", Name("tdrbusy"))
	check("name of a non-TUN device", unix.EINVAL, "not a TUN/TAP device", "10.7.0.1", Name("lo"))
	check("TAP over a TUN", unix.EINVAL, "not a TUN/TAP device", "10.7.0.1", Name("tdrbusy"), TAP())
	// The address is already on the (persistent, reused) device.
	if out, err := ns.Output("ip", "tuntap", "add", "dev", "tdrdup", "mode", "tun"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := ns.Output("ip", "addr", "add", "10.8.0.1/24", "dev", "tdrdup"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	check("address already configured", unix.EEXIST, "already configured", "10.8.0.1/24", Name("tdrdup"))
	// IPv6 on a reused device whose MTU is below 1280, MTU not given.
	if out, err := ns.Output("ip", "link", "set", "tdrdup", "mtu", "1000"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	check("IPv6 on a small-MTU device", unix.EINVAL, "below IPv6's minimum", "fd00:8::1/64", Name("tdrdup"))
	if l, _ := ns.LinkByName("tdrdup"); l.HasFlag("UP") || l.MTU != 1000 {
		t.Errorf("refusals changed the existing device: %+v", l)
	}
}

func TestAdopt(t *testing.T) {
	ns := netnstest.New(t)
	var raw *tun.Device
	if err := ns.Do(func() error {
		var err error
		raw, err = tun.Open(tun.Config{Name: "tdradopt"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Hand Adopt a plain duplicate, as a process receiving it would have.
	fd, err := unix.Dup(raw.Fd())
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	var dev *Device
	if err := ns.Do(func() error {
		var err error
		dev, err = Adopt(fd)
		return err
	}); err != nil {
		unix.Close(fd)
		t.Fatalf("Adopt: %v", err)
	}
	defer dev.Close()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("original fd open after Adopt (%v)", err)
	}
	l, err := ns.LinkByName("tdradopt")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Name() != "tdradopt" || dev.Index() != l.Index || dev.Flags()&tun.FlagTUN == 0 {
		t.Errorf("adopted %s index %d flags %v; ip says index %d", dev.Name(), dev.Index(), dev.Flags(), l.Index)
	}
	if dev.Addr().IsValid() {
		t.Errorf("adopted device claims address %v", dev.Addr())
	}
	dev.Close()
	requireGone(t, ns, "tdradopt")
}

// Adopt refuses what is not a TUN descriptor of this namespace and leaves
// the descriptor as it was.
func TestAdoptRefusals(t *testing.T) {
	ns := netnstest.New(t)
	other := netnstest.New(t)
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	var elsewhere *tun.Device
	if err := other.Do(func() error {
		var err error
		elsewhere, err = tun.Open(tun.Config{Name: "tdrelse"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	for _, tc := range []struct {
		what  string
		fd    int
		errno unix.Errno
		says  string
	}{
		{"pipe", p[0], unix.ENOTTY, "not a TUN/TAP fd"},
		{"device in another namespace", elsewhere.Fd(), unix.ENODEV, "network namespace"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			fl, _ := unix.FcntlInt(uintptr(tc.fd), unix.F_GETFL, 0)
			before := leakcheck.FDs(t)
			err := ns.Do(func() error {
				dev, err := Adopt(tc.fd)
				if err == nil {
					dev.Close()
					return errors.New("Adopt succeeded")
				}
				return err
			})
			t.Logf("%s: %v", tc.what, err)
			if !errors.Is(err, tc.errno) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%v: want %s saying %q", err, unix.ErrnoName(tc.errno), tc.says)
			}
			leakcheck.NoNewFDs(t, before)
			if got, err := unix.FcntlInt(uintptr(tc.fd), unix.F_GETFL, 0); err != nil || got != fl {
				t.Errorf("fd changed: flags %#x -> %#x, %v", fl, got, err)
			}
		})
	}
}

// With duplicate address detection kept, Create waits for it: the address
// is no longer tentative when Create returns.
func TestCreateKeepDADWaits(t *testing.T) {
	ns := netnstest.New(t)
	createIn(t, ns, "fd00:dad::1/64", TAP(), KeepDAD(), Name("tdrdad"))
	a := onlyAddr(t, ns, "tdrdad", "inet6")
	if a.Tentative || a.NoDAD {
		t.Errorf("address %+v: want DAD done (not tentative, not nodad)", a)
	}
}
