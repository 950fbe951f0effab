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

// system is what creating a device asks of the kernel. Production uses
// realSystem; a test hands createDirect another (through a test-only
// Option) to play a kernel that refuses a call or to fail a step, without
// a global hook, so that a broker serving in the same process is
// unaffected.
type system struct {
	dialNetlink func() (*nl.Conn, error)
	openTUN     func(tun.Config) (*tun.Device, error)
	setOffload  func(*tun.Device, tun.Offload) error // TUNSETOFFLOAD
	probeWrite  func(fd int, iovs [][]byte) (int, error)
	// after, when set, runs after each step of createDirect with the
	// step's name; its error fails the step, so every rollback path is
	// exercised against the real kernel.
	after func(step string) error
}

var realSystem = system{
	dialNetlink: nl.Dial,
	openTUN:     tun.Open,
	setOffload:  (*tun.Device).SetOffload,
	probeWrite:  unix.Writev,
}

// sys is the plan's system: realSystem unless a test gave another.
func (s plan) system() system {
	if s.sys != nil {
		return *s.sys
	}
	return realSystem
}

// creation is the state createDirect's steps share.
type creation struct {
	plan
	sys     system
	c       *nl.Conn
	existed bool        // a device of this name was there before
	t       *tun.Device // set by the open step
	link    nl.Link     // set by the look-up step
	// configured: a netlink request changed the device (see configure).
	configured bool
	offloads   vnet.Offloads
	notes      []string
}

// createStep is one named step of creating a device. do makes it and
// returns its undo, which puts back what it changed should a later step
// fail (nil when there is nothing to put back). Its error says what
// failed; the runner adds the device's name.
type createStep struct {
	name string
	do   func(*creation) (undo func() error, err error)
}

// directSteps are Create's steps, in order. Owner and group come at
// once on a device this call made: until they are set, any user who can
// open the clone device may attach a queue to a multi-queue device (the
// kernel checks them only when set), and should a later step fail the
// device goes anyway. On a device that existed they come last, with
// persistence, once nothing else can fail: what they replace is not known,
// so they could not be put back. (Were SetGroup or SetPersist to fail
// after SetOwner succeeded on such a device, its owner would stay changed;
// all three need the same privilege, so that does not happen in practice.)
var directSteps = []createStep{
	{"open", (*creation).open},
	{"queues", (*creation).addQueues},
	{"offloads", (*creation).negotiateOffloads},
	{"look up", (*creation).lookUp},
	{"mtu", (*creation).setMTU},
	{"address", (*creation).addAddress},
	{"up", (*creation).setUp},
	{"usable", (*creation).waitUsable},
	{"ownership", (*creation).ownLate},
	{"persist", (*creation).persist},
}

// bareSteps are CreateBare's: the device alone, no address, left down.
var bareSteps = []createStep{
	{"open", (*creation).open},
	{"queues", (*creation).addQueues},
	{"offloads", (*creation).negotiateOffloads},
	{"look up", (*creation).lookUp},
	{"mtu", (*creation).setMTU},
	{"ownership", (*creation).ownLate},
	{"persist", (*creation).persist},
}

// runSteps dials netlink and runs steps in order, in the calling thread's
// network namespace. On error it undoes what the steps did, last first,
// and returns an *Error naming the device; the error says too when an
// undo failed. On success the device is cr.t, open.
func runSteps(s plan, steps []createStep) (cr *creation, err error) {
	// The device and the netlink socket must be in the same network
	// namespace: the calling thread's. Keep to one thread throughout.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cr = &creation{plan: s, sys: s.system()}
	name := func() string {
		if cr.t != nil {
			return cr.t.Name()
		}
		return s.tun.Name
	}
	if cr.c, err = cr.sys.dialNetlink(); err != nil {
		return nil, &Error{Op: "create", Name: name(), Err: fmt.Errorf("netlink: %w", err)}
	}
	defer cr.c.Close()
	// A device of this name that exists already is reused (unless
	// Exclusive), as tunctl does; if anything fails it must be left as it
	// was found, not removed.
	if n := s.tun.Name; n != "" && !strings.Contains(n, "%") {
		_, lerr := cr.c.LinkByName(n)
		cr.existed = lerr == nil
	}
	var undo []func() error
	for _, st := range steps {
		u, err := st.do(cr)
		if u != nil {
			undo = append(undo, u)
		}
		if err == nil && cr.sys.after != nil {
			if err = cr.sys.after(st.name); err != nil {
				err = fmt.Errorf("%s: %w", st.name, err)
			}
		}
		if err != nil {
			var cleanup []error
			for i := len(undo) - 1; i >= 0; i-- {
				if uerr := undo[i](); uerr != nil {
					cleanup = append(cleanup, uerr)
				}
			}
			if len(cleanup) > 0 {
				err = fmt.Errorf("%w; cleanup also failed: %w", err, errors.Join(cleanup...))
			}
			return nil, &Error{Op: "create", Name: name(), Err: err}
		}
	}
	return cr, nil
}

// createDirect opens and configures the device itself.
func createDirect(s plan) (*Device, error) {
	cr, err := runSteps(s, directSteps)
	if err != nil {
		return nil, err
	}
	d := newDevice(cr.t, cr.t.Name(), cr.link.Index, s.prefix(), s.peer, s.tun.PacketInfo)
	if s.tun.VnetHdr {
		offloads, segments, probeNotes := probeOffloads(cr.sys, cr.t.Fd(), s.local, cr.offloads)
		d.enableOffloads(offloads, segments, append(cr.notes, probeNotes...))
	}
	return d, nil
}

// open opens the device (TUNSETIFF), owning it at once if it is new. A
// refusal for want of privilege is marked so that Auto asks the broker.
func (cr *creation) open() (func() error, error) {
	t, err := cr.sys.openTUN(cr.tun)
	if err != nil {
		if tunLacksPrivilege(err) {
			err = lackOfPrivilege{err}
		}
		return nil, fmt.Errorf("open: %w", err)
	}
	cr.t = t
	if !cr.existed {
		if err := cr.setOwnership(); err != nil {
			return t.Close, err
		}
	}
	return t.Close, nil
}

// addQueues attaches the queues after the first; they close with the
// device.
func (cr *creation) addQueues() (func() error, error) {
	for i := 1; i < cr.queues; i++ {
		if _, err := cr.t.AddQueue(); err != nil {
			return nil, fmt.Errorf("queue %d of %d: %w", i+1, cr.queues, err)
		}
	}
	return nil, nil
}

// negotiateOffloads asks for the Offloads option's offloads, if given.
func (cr *creation) negotiateOffloads() (func() error, error) {
	if !cr.tun.VnetHdr {
		return nil, nil
	}
	var err error
	if cr.offloads, cr.notes, err = negotiateOffloads(cr.sys, cr.t, cr.plan.offloads); err != nil {
		return nil, fmt.Errorf("offloads: %w", err)
	}
	return nil, nil
}

// lookUp learns the link's index, flags and MTU.
func (cr *creation) lookUp() (func() error, error) {
	var err error
	if cr.link, err = cr.c.LinkByName(cr.t.Name()); err != nil {
		return nil, fmt.Errorf("look up: %w", err)
	}
	return nil, nil
}

// configure makes a netlink request that changes the device. The first
// one's EPERM is the kernel saying that this process may not configure
// devices at all (an unprivileged owner of a persistent device gets that
// far): Auto then asks the broker. A refusal after one succeeded is about
// the request, and so is any other errno.
func (cr *creation) configure(request func() error) error {
	err := request()
	if err != nil && !cr.configured && errors.Is(err, unix.EPERM) {
		return lackOfPrivilege{err}
	}
	cr.configured = cr.configured || err == nil
	return err
}

// setMTU sets the MTU option's MTU, before the address: an IPv6 address
// needs the final MTU (the kernel refuses it on a link below 1280). On a
// device that existed the undo puts the old one back.
func (cr *creation) setMTU() (func() error, error) {
	if cr.mtu == 0 || cr.mtu == cr.link.MTU {
		return nil, nil
	}
	index, old := cr.link.Index, cr.link.MTU
	if err := cr.configure(func() error { return cr.c.SetLinkMTU(index, cr.mtu) }); err != nil {
		return nil, fmt.Errorf("set mtu %d: %w", cr.mtu, err)
	}
	cr.link.MTU = cr.mtu
	if !cr.existed {
		return nil, nil
	}
	return func() error { return cr.c.SetLinkMTU(index, old) }, nil
}

// addAddress adds the address, with the peer, NODAD unless KeepDAD.
func (cr *creation) addAddress() (func() error, error) {
	a := nl.Addr{Index: cr.link.Index, Prefix: cr.prefix(), Peer: cr.peer}
	if cr.nodad {
		a.Flags |= nl.IFA_F_NODAD
	}
	if err := cr.configure(func() error { return cr.c.AddAddr(a) }); err != nil {
		if cr.local.Is6() && cr.link.MTU < minIPv6MTU && errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w (the link's MTU is %d, below IPv6's minimum of %d: give MTU(1280) or more)", err, cr.link.MTU, minIPv6MTU)
		}
		if errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("%w (%s is already configured on %s)", err, a.Prefix, cr.t.Name())
		}
		return nil, fmt.Errorf("add address %s: %w", a.Prefix, err)
	}
	return func() error { return cr.c.DeleteAddr(a) }, nil
}

// setUp brings the link up; on a device that existed the undo takes it
// down again.
func (cr *creation) setUp() (func() error, error) {
	if cr.link.Flags&unix.IFF_UP != 0 {
		return nil, nil
	}
	index := cr.link.Index
	if err := cr.c.SetLinkUp(index); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	if !cr.existed {
		return nil, nil
	}
	return func() error { return cr.c.SetLinkDown(index) }, nil
}

// waitUsable waits for the kernel to deliver packets for the address.
func (cr *creation) waitUsable() (func() error, error) {
	within := usableWithin
	if cr.keepDAD {
		within = dadWithin
	}
	if err := waitUsable(cr.c, cr.local, within); err != nil {
		return nil, fmt.Errorf("address %s: %w", cr.local, err)
	}
	return nil, nil
}

// ownLate applies owner and group on a device that existed (see
// directSteps).
func (cr *creation) ownLate() (func() error, error) {
	if !cr.existed {
		return nil, nil
	}
	return nil, cr.setOwnership()
}

// persist applies Persist. Closing the fds of a persistent device leaves
// it: on a device this call made the undo clears the flag first.
func (cr *creation) persist() (func() error, error) {
	if !cr.plan.persist {
		return nil, nil
	}
	if err := cr.t.SetPersist(true); err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	if cr.existed {
		return nil, nil
	}
	return func() error { return cr.t.SetPersist(false) }, nil
}

// setOwnership applies the Owner and Group options, if given.
func (cr *creation) setOwnership() error {
	if cr.owner >= 0 {
		if err := cr.t.SetOwner(cr.owner); err != nil {
			return fmt.Errorf("owner: %w", err)
		}
	}
	if cr.group >= 0 {
		if err := cr.t.SetGroup(cr.group); err != nil {
			return fmt.Errorf("group: %w", err)
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
