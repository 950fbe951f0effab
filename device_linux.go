package tundra

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/vnet"
	"golang.org/x/sys/unix"
)

// sysDevice is the Linux handle: the tun package's device.
type sysDevice struct {
	t *tun.Device
}

func (s sysDevice) close() error { return s.t.Close() }

// newDevice wraps a tun device; piFraming says whether its packets carry
// the PI header.
func newDevice(t *tun.Device, name string, index int, addr netip.Prefix, peer netip.Addr, piFraming bool) *Device {
	d := &Device{name: name, index: index, addr: addr, peer: peer, sys: sysDevice{t}}
	var framer loop.Framer
	if piFraming {
		framer = tun.PIFramer{TAP: t.Flags()&tun.FlagTAP != 0}
	}
	for _, tq := range t.Queues() {
		d.queues = append(d.queues, &Queue{dev: d, fd: tq.Fd(), framer: framer, closeFD: tq.Close})
	}
	return d
}

// Flags are the device's IFF_* flags (TUN or TAP, NO_PI, MULTI_QUEUE, ...).
func (d *Device) Flags() tun.Flags { return d.sys.t.Flags() }

// TUN is the lower-level device, for the TUN ioctls this package does not
// wrap (queue attach and detach, owner and group changes). Closing queues
// through it behind the Device's back is the caller's responsibility.
func (d *Device) TUN() *tun.Device { return d.sys.t }

// SetPersist makes the device outlive its file descriptors, or undoes that:
// a non-persistent device disappears with its last descriptor. On a device
// the broker made it fails with an error matching ErrBrokered (and
// ErrInvalidArgument). Safe from any goroutine.
func (d *Device) SetPersist(on bool) error {
	if err := d.refuseBrokered("set persist"); err != nil {
		return err
	}
	if err := d.sys.t.SetPersist(on); err != nil {
		return &Error{Op: "set persist", Name: d.name, Err: err}
	}
	return nil
}

// testHook, when set by a test, runs after each step of create and can make
// it fail, so that every rollback path is exercised against the real kernel;
// the "call ..." steps run before the kernel call they name, and their
// error stands for the kernel's.
var testHook func(step string) error

// tunLacksPrivilege reports whether tun.Open failed for want of privilege:
// /dev/net/tun not open to this user (EACCES, or EPERM from a security
// module or a device cgroup), or TUNSETIFF refused for want of
// CAP_NET_ADMIN, the device's owner or its group (EPERM).
func tunLacksPrivilege(err error) bool {
	var op *tun.OpError
	if !errors.As(err, &op) {
		return false
	}
	switch op.Op {
	case "open /dev/net/tun":
		return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
	case "TUNSETIFF":
		return errors.Is(err, unix.EPERM)
	}
	return false
}

// adoptBrokered turns the broker's descriptors into a Device, checking
// each once (tun.AdoptQueues) and that they are the device the broker
// announced, of the kind asked for. On error every descriptor is closed.
func adoptBrokered(s plan, created broker.Created) (*Device, error) {
	t, err := tun.AdoptQueues(created.Fds)
	if err != nil {
		created.Close() // still ours: AdoptQueues took none
		return nil, err
	}
	if got := t.Name(); got != created.Name {
		t.Close()
		return nil, fmt.Errorf("%w: the descriptors belong to %s, the broker announced %s", broker.ErrProtocol, got, created.Name)
	}
	if tap := t.Flags()&tun.FlagTAP != 0; tap != s.tun.TAP {
		t.Close()
		return nil, fmt.Errorf("%w: the broker sent a device with flags %v, TAP=%t was asked", broker.ErrProtocol, t.Flags(), s.tun.TAP)
	}
	d := newDevice(t, created.Name, created.Index, s.prefix(), s.peer, s.tun.PacketInfo)
	d.brokered = true
	return d, nil
}

// createDirect opens and configures the device itself.
func createDirect(s plan) (_ *Device, err error) {
	// The device and the netlink socket must be in the same network
	// namespace: the calling thread's. Keep to one thread throughout.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	fail := func(step string, cause error) error {
		return &Error{Op: "create", Name: s.tun.Name, Err: fmt.Errorf("%s: %w", step, cause)}
	}
	c, err := nl.Dial()
	if err != nil {
		return nil, fail("netlink", err)
	}
	defer c.Close()

	// A device of this name that exists already is reused (unless
	// Exclusive), as tunctl does; if anything fails it must be left as it
	// was found, not removed.
	existed := false
	if s.tun.Name != "" && !strings.Contains(s.tun.Name, "%") {
		if _, err := c.LinkByName(s.tun.Name); err == nil {
			existed = true
		}
	}

	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		var cleanup []error
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				cleanup = append(cleanup, uerr)
			}
		}
		if len(cleanup) > 0 {
			err = fmt.Errorf("%w; cleanup also failed: %w", err, errors.Join(cleanup...))
		}
	}()
	step := func(name string) error {
		if testHook != nil {
			return testHook(name)
		}
		return nil
	}

	// The kernel calls whose refusal decides Auto's fallback can be made
	// to fail by a test before they run ("call ..." steps), with the error
	// the kernel would give, so each classification is exercised.
	var t *tun.Device
	if err = step("call open"); err == nil {
		t, err = tun.Open(s.tun)
	}
	if err != nil {
		if tunLacksPrivilege(err) {
			err = lackOfPrivilege{err}
		}
		return nil, fail("open", err)
	}
	undo = append(undo, t.Close)
	name := t.Name()
	fail = func(stepName string, cause error) error {
		return &Error{Op: "create", Name: name, Err: fmt.Errorf("%s: %w", stepName, cause)}
	}
	// On a device this call made, owner and group at once: until they
	// are set, any user who can open the clone device may attach a queue
	// to a multi-queue device (the kernel checks them only when set), and
	// should a later step fail the device goes anyway. (On a device that
	// existed they come last; see below.)
	ownedEarly := !existed
	if ownedEarly {
		if err := setOwnership(t, s); err != nil {
			return nil, fail(err.step, err.err)
		}
	}
	if err := step("open"); err != nil {
		return nil, fail("open", err)
	}

	for i := 1; i < s.queues; i++ {
		if _, err := t.AddQueue(); err != nil {
			return nil, fail(fmt.Sprintf("queue %d of %d", i+1, s.queues), err)
		}
	}
	var offloads vnet.Offloads
	var offloadNotes []string
	if s.tun.VnetHdr {
		if offloads, offloadNotes, err = negotiateOffloads(t, s.offloads); err != nil {
			return nil, fail("offloads", err)
		}
	}

	link, err := c.LinkByName(name)
	if err != nil {
		return nil, fail("look up", err)
	}
	// configure makes a netlink request that changes the device. The
	// first one's EPERM is the kernel saying that this process may not
	// configure devices at all (an unprivileged owner of a persistent
	// device gets that far): Auto then asks the broker. A refusal after
	// one succeeded is about the request, and so is any other errno.
	configured := false
	configure := func(call string, request func() error) error {
		err := step("call " + call)
		if err == nil {
			err = request()
		}
		if err != nil && !configured && errors.Is(err, unix.EPERM) {
			return lackOfPrivilege{err}
		}
		configured = configured || err == nil
		return err
	}
	if s.mtu != 0 {
		// Before the address: an IPv6 address needs the final MTU (the
		// kernel refuses it on a link below 1280).
		if err := configure("set mtu", func() error { return c.SetLinkMTU(link.Index, s.mtu) }); err != nil {
			return nil, fail(fmt.Sprintf("set mtu %d", s.mtu), err)
		}
		if existed {
			old := link.MTU
			undo = append(undo, func() error { return c.SetLinkMTU(link.Index, old) })
		}
		link.MTU = s.mtu
	}
	if err := step("mtu"); err != nil {
		return nil, fail("mtu", err)
	}

	a := nl.Addr{Index: link.Index, Prefix: s.prefix(), Peer: s.peer}
	if s.nodad {
		a.Flags |= nl.IFA_F_NODAD
	}
	if err := configure("add address", func() error { return c.AddAddr(a) }); err != nil {
		if s.local.Is6() && link.MTU < minIPv6MTU && errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w (the link's MTU is %d, below IPv6's minimum of %d: give MTU(1280) or more)", err, link.MTU, minIPv6MTU)
		}
		if errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("%w (%s is already configured on %s)", err, a.Prefix, name)
		}
		return nil, fail("add address "+a.Prefix.String(), err)
	}
	undo = append(undo, func() error { return c.DeleteAddr(a) })
	if err := step("address"); err != nil {
		return nil, fail("address", err)
	}

	if link.Flags&unix.IFF_UP == 0 {
		if err := c.SetLinkUp(link.Index); err != nil {
			return nil, fail("set up", err)
		}
		if existed {
			undo = append(undo, func() error { return c.SetLinkDown(link.Index) })
		}
	}
	if err := step("up"); err != nil {
		return nil, fail("up", err)
	}
	within := usableWithin
	if s.keepDAD {
		within = dadWithin
	}
	if err := waitUsable(c, s.local, within); err != nil {
		return nil, fail("address "+s.local.String(), err)
	}
	// Persistence, and on a device that existed ownership too, last, once
	// nothing else can fail: on a device that existed, what they replace
	// is not known, so they could not be put back. (Were SetGroup or SetPersist to fail after SetOwner
	// succeeded on such a device, its owner would stay changed; all three
	// need the same privilege, so that does not happen in practice.)
	if err := step("ownership"); err != nil {
		return nil, fail("ownership", err)
	}
	if !ownedEarly {
		if err := setOwnership(t, s); err != nil {
			return nil, fail(err.step, err.err)
		}
	}
	if s.persist {
		if err := t.SetPersist(true); err != nil {
			return nil, fail("persist", err)
		}
		if !existed {
			// Closing the fds of a persistent device leaves it: clear the
			// flag first when unwinding a device this call made.
			undo = append(undo, func() error { return t.SetPersist(false) })
		}
	}
	d := newDevice(t, name, link.Index, s.prefix(), s.peer, s.tun.PacketInfo)
	if s.tun.VnetHdr {
		offloads, segments, probeNotes := probeOffloads(t.Fd(), s.local, offloads)
		d.enableOffloads(offloads, segments, append(offloadNotes, probeNotes...))
	}
	return d, nil
}

// stepError is a failed step of setOwnership.
type stepError struct {
	step string
	err  error
}

// setOwnership applies the Owner and Group options, if given.
func setOwnership(t *tun.Device, s plan) *stepError {
	if s.owner >= 0 {
		if err := t.SetOwner(s.owner); err != nil {
			return &stepError{"owner", err}
		}
	}
	if s.group >= 0 {
		if err := t.SetGroup(s.group); err != nil {
			return &stepError{"group", err}
		}
	}
	return nil
}

// usableWithin bounds how long Create waits for the kernel to take an
// address into use; dadWithin, when duplicate address detection runs
// (KeepDAD), which takes a second by default (net.ipv6.conf.*.retrans_time_ms
// per probe, dad_transmits probes).
const (
	usableWithin = 2 * time.Second
	dadWithin    = 10 * time.Second
)

// waitUsable returns once the kernel delivers packets for addr locally. An
// IPv4 address is usable when it is added; an IPv6 one only once the
// kernel's address work queue has run (addrconf_dad_work, even with
// IFA_F_NODAD) and installed its local route: a packet that arrives before
// is dropped as not addressed to this host (Ip6InAddrErrors). Create
// promises a usable address, so it asks the routing table, as `ip route
// get` would, until the answer is "local".
func waitUsable(c *nl.Conn, addr netip.Addr, within time.Duration) error {
	deadline := time.Now().Add(within)
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 10*time.Millisecond) {
		r, err := c.RouteGet(addr)
		if err == nil && r.Type == nl.RouteLocal {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("the kernel still routes it as type %d, not local", r.Type)
			}
			return fmt.Errorf("not usable after %v: %w", within, err)
		}
		time.Sleep(pause)
	}
}

// Adopt takes over fd, a TUN or TAP descriptor opened elsewhere (passed
// over a Unix socket, inherited, handed over by the broker), as Tundra's
// adopt/1 does. It checks that fd is a TUN/TAP descriptor bound to a device
// in this network namespace, learns the device's name, flags and index,
// takes a close-on-exec, non-blocking duplicate and closes fd. On any error
// fd is left untouched and open, and the error says why. Safe from any
// goroutine; the caller must not use fd concurrently.
func Adopt(fd int) (*Device, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	name, _, err := tun.Inspect(fd)
	if err != nil {
		return nil, &Error{Op: "adopt", Err: err}
	}
	c, err := nl.Dial()
	if err != nil {
		return nil, &Error{Op: "adopt", Name: name, Err: err}
	}
	defer c.Close()
	link, err := c.LinkByName(name)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("%w (the device is not in this thread's network namespace)", err)
		}
		return nil, &Error{Op: "adopt", Name: name, Err: err}
	}
	t, err := tun.Adopt(fd)
	if err != nil {
		return nil, &Error{Op: "adopt", Name: name, Err: err}
	}
	// The kernel cannot say whether the device carries the PI header
	// (tun.Device.PacketInfo); without a sign of it, assume the common
	// IFF_NO_PI, which is what Create and the broker make.
	pi, _ := t.PacketInfo()
	d := newDevice(t, name, link.Index, netip.Prefix{}, netip.Addr{}, pi)
	if t.Flags()&tun.FlagVnetHdr != 0 {
		// Packets carry the virtio-net header; whoever made the device
		// chose the offloads, so reads split whatever arrives and writes
		// are not merged.
		d.enableOffloads(vnet.Offloads{}, vnet.MaxSegments, []string{"adopted device: its offloads are unknown, so writes are not coalesced"})
	}
	return d, nil
}
