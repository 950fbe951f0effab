package tundra

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/nl/nltest"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// Auto asks the broker only when the direct attempt failed for want of
// privilege: /dev/net/tun not open to the user or TUNSETIFF's EPERM (here),
// or EPERM from the first netlink request that configures the device
// (TestAutoFallsBackOnlyForPrivilege). Any other refusal is returned as it
// is, without a word of the broker. The open's refusals need no device:
// the test's system refuses the open and its netlink is a fake kernel
// (nltest) that knows no link, so this runs without privileges and
// without a namespace.
func TestAutoFallbackOnOpenRefusals(t *testing.T) {
	nobroker := BrokerSocket(filepath.Join(t.TempDir(), "none.sock"))
	for _, tc := range []struct {
		name     string
		err      error
		fallback bool
	}{
		{"clone device EACCES", &tun.OpError{Op: "open /dev/net/tun", Err: unix.EACCES}, true},
		{"clone device EPERM", &tun.OpError{Op: "open /dev/net/tun", Err: unix.EPERM}, true},
		{"TUNSETIFF EPERM", &tun.OpError{Op: "TUNSETIFF", Name: "tdrfb", Err: unix.EPERM}, true},
		{"TUNSETIFF EINVAL", &tun.OpError{Op: "TUNSETIFF", Name: "tdrfb", Err: unix.EINVAL}, false},
		{"TUNSETIFF EBUSY", &tun.OpError{Op: "TUNSETIFF", Name: "tdrfb", Err: unix.EBUSY}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sys system
			sys.openTUN = func(tun.Config) (*tun.Device, error) { return nil, tc.err }
			k := nltest.NewKernel(func(req nltest.Message) ([]nltest.Message, error) {
				if req.Type == unix.RTM_GETLINK {
					return []nltest.Message{nltest.Error(req, unix.ENODEV)}, nil
				}
				return nil, nltest.ErrUnexpected
			})
			sys.dialNetlink = func() (*nl.Conn, error) { return nl.NewConn(k), nil }
			_, err := Create("fd00:fb::1/64", Name("tdrfb"), nobroker, withSystem(sys))
			t.Logf("%v", err)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Create: %v, want the injected %v", err, tc.err)
			}
			var be *broker.Error
			if asked := errors.As(err, &be); asked != tc.fallback || strings.Contains(err.Error(), "broker") != tc.fallback {
				t.Errorf("broker asked %t, want %t: %v", asked, tc.fallback, err)
			}
			if tc.fallback && (!strings.Contains(err.Error(), "directly: ") || !strings.Contains(err.Error(), "; and through the broker: ") || !errors.Is(err, unix.ENOENT)) {
				t.Errorf("the error does not show both causes: %v", err)
			}
			if len(k.Requests) != 1 || k.Closed != 1 {
				t.Errorf("netlink: %d requests, closed %d times; want the one look-up, closed", len(k.Requests), k.Closed)
			}
		})
	}
}

// The netlink half of TestAutoFallbackOnOpenRefusals, against the real
// kernel and a real device, the refusal injected with nltest.Intercept.
func TestAutoFallsBackOnlyForPrivilege(t *testing.T) {
	ns := netnstest.New(t)
	nobroker := BrokerSocket(filepath.Join(t.TempDir(), "none.sock"))
	for _, tc := range []struct {
		name, step string
		err        error
		opts       []Option
		fallback   bool
	}{
		{"first netlink request EPERM", "call add address", unix.EPERM, nil, true},
		{"first netlink request EPERM, the MTU", "call set mtu", unix.EPERM, []Option{MTU(1400)}, true},
		{"netlink EPERM after the MTU was set", "call add address", unix.EPERM, []Option{MTU(1400)}, false},
		{"netlink EACCES (IPv6 disabled)", "call add address", unix.EACCES, nil, false},
		{"netlink EINVAL", "call add address", unix.EINVAL, nil, false},
		{"EPERM from a later step", "up", unix.EPERM, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]Option{Name("tdrfb"), nobroker, failAt(tc.step, tc.err)}, tc.opts...)
			err := createErrIn(ns, "fd00:fb::1/64", opts...)
			t.Logf("%v", err)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Create: %v, want the injected %v", err, tc.err)
			}
			var ne *nl.Error
			if strings.HasPrefix(tc.step, "call ") && !errors.As(err, &ne) {
				t.Errorf("%v: want the kernel's answer as nl's error", err)
			}
			var be *broker.Error
			asked := errors.As(err, &be)
			if asked != tc.fallback || strings.Contains(err.Error(), "broker") != tc.fallback {
				t.Errorf("broker asked %t, want %t: %v", asked, tc.fallback, err)
			}
			if tc.fallback {
				// Both causes, each still matchable.
				if !strings.Contains(err.Error(), "directly: ") || !strings.Contains(err.Error(), "; and through the broker: ") || !errors.Is(err, unix.ENOENT) {
					t.Errorf("the error does not show both causes: %v", err)
				}
			}
			requireGone(t, ns, "tdrfb")
		})
	}
}

// A privilege refusal the broker makes up for: the device comes from the
// broker, and FallbackReason says why.
func TestAutoFallbackServed(t *testing.T) {
	ns := netnstest.New(t)
	refusal := &tun.OpError{Op: "TUNSETIFF", Name: "tdrfbok", Err: unix.EPERM}
	// The broker's own Create, in this process, does not see the test's
	// system and succeeds.
	path := startBroker(t, ns)
	dev := createIn(t, ns, "fd00:fc::1/64", Name("tdrfbok"), BrokerSocket(path), failAt("call open", refusal))
	if fb := dev.FallbackReason(); !errors.Is(fb, refusal) || !errors.Is(fb, unix.EPERM) {
		t.Errorf("FallbackReason() = %v, want the TUNSETIFF refusal", fb)
	}
	if _, err := ns.LinkByName("tdrfbok"); err != nil {
		t.Errorf("the broker's device: %v", err)
	}
}

// Options the broker cannot carry are refused under their own names.
func TestBrokerRefusesOwnershipUnderItsName(t *testing.T) {
	nobroker := BrokerSocket(filepath.Join(t.TempDir(), "none.sock"))
	for label, opt := range map[string]Option{"persist": Persist(), "owner": Owner(0), "group": Group(0)} {
		_, err := Create("10.77.0.1/24", Mode(BrokerOnly), nobroker, opt)
		var e *Error
		if !errors.As(err, &e) || e.Arg != label || !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), ": "+label+": ") {
			t.Errorf("%s through the broker: %v, want an argument error labelled %q", label, err, label)
		}
	}
}

// The real kernel's EACCES for an IPv6 address on a link with IPv6
// disabled is the answer, not a reason to ask the broker; and the real
// EPERM of an unprivileged owner's first netlink request is one.
func TestAutoFallbackRealKernel(t *testing.T) {
	ns := netnstest.New(t)
	if err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	err := createErrIn(ns, "fd00:fd::1/64", Name("tdrnov6"), BrokerSocket(filepath.Join(t.TempDir(), "none.sock")))
	if !errors.Is(err, unix.EACCES) || strings.Contains(err.Error(), "broker") {
		t.Errorf("IPv6 address with IPv6 disabled: %v; want EACCES, without the broker", err)
	}
	requireGone(t, ns, "tdrnov6")

	// A persistent device owned by the member: it may attach (TUNSETIFF),
	// not configure (netlink EPERM), so Auto asks the broker, which will
	// not hand out a device that exists already.
	path := startBroker(t, ns)
	if out, err := ns.Output("ip", "tuntap", "add", "dev", "tdrown", "mode", "tun", "user", "4243"); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}
	t.Cleanup(func() { ns.Output("ip", "link", "del", "tdrown") })
	member := netnstest.Child{Bin: netnstest.HelperBinary(t), Run: "TestHelperCreate", Uid: 4243, Gid: 4243, Groups: []uint32{4242},
		Caps: []uintptr{unix.CAP_DAC_OVERRIDE}, Env: []string{helperEnv + "=tdrown", helperBrokerEnv + "=" + path}}
	got := member.RunIn(t, ns)
	if !strings.Contains(got, "directly: add address fd00:99::1/64: nl: addaddr: operation not permitted") || !strings.Contains(got, "; and through the broker: ") {
		t.Errorf("owner without CAP_NET_ADMIN: %s; want the netlink EPERM and the broker's answer", got)
	}
}
