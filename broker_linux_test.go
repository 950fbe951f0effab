package tundra

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// startBroker runs a broker server for group 4242 whose devices are made
// in ns, on a socket an unprivileged child can reach.
func startBroker(t *testing.T, ns *netnstest.Namespace) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tundra-broker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tundra.sock")
	var srv *broker.Server
	if err := ns.Do(func() error { // the inventory's netlink socket must see ns
		var err error
		srv, err = broker.NewServer(broker.Config{
			Group:  "4242",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Create: func(ctx context.Context, r broker.Request) (broker.Created, error) {
				var c broker.Created
				err := ns.Do(func() error {
					var err error
					c, err = BrokerCreate(ctx, r)
					return err
				})
				return c, err
			},
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path
}

// An unprivileged member gets its device through the broker, and learns
// why; the device goes with its descriptors.
func TestCreateFallsBackToBroker(t *testing.T) {
	ns := netnstest.New(t)
	path := startBroker(t, ns)
	bin := netnstest.HelperBinary(t)
	member := netnstest.Child{Bin: bin, Run: "TestHelperCreate", Uid: 4243, Gid: 4243, Groups: []uint32{4242},
		Caps: []uintptr{unix.CAP_DAC_OVERRIDE}, Env: []string{helperEnv + "=tunbrok", helperBrokerEnv + "=" + path}}
	got := member.RunIn(t, ns)
	if !strings.HasPrefix(got, "RESULT ok tunbrok up=true fallback=") || !strings.Contains(got, "operation not permitted") {
		t.Errorf("member through the broker: %s; want the device, up, with the EPERM that caused the fallback", got)
	}
	requireGone(t, ns, "tunbrok")

	// Forced direct: EPERM, and no word of the broker.
	member.Env = append(member.Env, helperModeEnv+"=direct")
	if got := member.RunIn(t, ns); !strings.Contains(got, "RESULT err EPERM") || strings.Contains(got, "broker") {
		t.Errorf("forced direct: %s", got)
	}
	// Forced broker: served, with no fallback reason.
	member.Env[len(member.Env)-1] = helperModeEnv + "=broker"
	if got := member.RunIn(t, ns); !strings.HasPrefix(got, "RESULT ok tunbrok up=true fallback=<nil>") {
		t.Errorf("forced broker: %s", got)
	}
	// Both refused: the error says why each failed.
	outsider := member
	outsider.Groups, outsider.Env = nil, []string{helperEnv + "=tunbrok", helperBrokerEnv + "=" + path}
	got = outsider.RunIn(t, ns)
	if !strings.Contains(got, "RESULT err EPERM") || !strings.Contains(got, "directly: ") || !strings.Contains(got, "through the broker: ") || !strings.Contains(got, "unauthorized") {
		t.Errorf("non-member: %s; want both reasons", got)
	}
	requireGone(t, ns, "tunbrok")
}

// Root may force the broker too; options the broker cannot carry are
// refused before asking it.
func TestCreateViaBrokerAsRoot(t *testing.T) {
	ns := netnstest.New(t)
	path := startBroker(t, ns)
	dev := createIn(t, ns, "fd00:98::1/64", Mode(BrokerOnly), BrokerSocket(path), Queues(2), Name("tunroot"))
	if dev.FallbackReason() != nil || len(dev.Fds()) != 2 || dev.Name() != "tunroot" {
		t.Errorf("via broker: fallback %v, %d fds, name %s", dev.FallbackReason(), len(dev.Fds()), dev.Name())
	}
	if l, err := ns.LinkByName("tunroot"); err != nil || !l.HasFlag("UP") || l.Index != dev.Index() {
		t.Errorf("ip: %+v, %v", l, err)
	}
	a := onlyAddr(t, ns, "tunroot", "inet6")
	if a.Local != "fd00:98::1" || a.PrefixLen != 64 {
		t.Errorf("ip addr %+v", a)
	}
	dev.Close()
	requireGone(t, ns, "tunroot")

	err := createErrIn(ns, "fd00:98::1/64", Mode(BrokerOnly), BrokerSocket(path), Persist())
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "not available through the broker") {
		t.Errorf("persist through the broker: %v", err)
	}
	err = createErrIn(ns, "fd00:98::1/64", Mode(BrokerOnly), BrokerSocket(filepath.Join(t.TempDir(), "none.sock")))
	if err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("missing broker: %v", err)
	}
}

// BrokerCreate leaves nothing behind when it fails, and configures what it
// is asked to, exclusively.
func TestBrokerCreate(t *testing.T) {
	ns := netnstest.New(t)
	before := leakcheck.FDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ns.Do(func() error {
		_, err := BrokerCreate(ctx, broker.Request{Addr: netip.MustParsePrefix("fd00:1::1/64"), Name: "dc0", Queues: 2})
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	leakcheck.NoNewFDs(t, before)
	if ls, _ := ns.Links(); len(ls) != 1 {
		t.Errorf("links after a failed BrokerCreate: %+v", ls)
	}
	var cr broker.Created
	err = ns.Do(func() (err error) {
		cr, err = BrokerCreate(context.Background(), broker.Request{Addr: netip.MustParsePrefix("fd00:1::1/64"), Name: "dc%d", TAP: true, Queues: 3, MTU: 1500})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	if cr.Name != "dc0" || len(cr.Fds) != 3 {
		t.Errorf("BrokerCreate = %+v", cr)
	}
	for _, fd := range cr.Fds {
		name, flags, err := tun.Inspect(fd)
		if err != nil || name != "dc0" || flags&tun.FlagTAP == 0 || flags&tun.FlagMultiQueue == 0 {
			t.Errorf("fd %d: %s %v %v", fd, name, flags, err)
		}
		if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 || fd < 3 {
			t.Errorf("fd %d not close-on-exec or below 3", fd)
		}
	}
	// Exclusive: the name in use is refused, the device untouched.
	err = ns.Do(func() error {
		_, err := BrokerCreate(context.Background(), broker.Request{Addr: netip.MustParsePrefix("fd00:2::1/64"), Name: "dc0", TAP: true})
		return err
	})
	if !errors.Is(err, unix.EBUSY) {
		t.Errorf("name in use: %v, want EBUSY", err)
	}
	if l, err := ns.LinkByName("dc0"); err != nil || !l.HasFlag("UP") {
		t.Errorf("existing device changed: %+v %v", l, err)
	}
}
