package tundra

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/utun"
	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// sysDevice is the macOS handle: the utun device.
type sysDevice struct {
	u *utun.Device
}

func (s sysDevice) close() error { return s.u.Close() }

func newDevice(u *utun.Device, index int, addr netip.Prefix, peer netip.Addr) *Device {
	d := &Device{name: u.Name(), index: index, addr: addr, peer: peer, sys: sysDevice{u}}
	d.queues = []*Queue{{dev: d, fd: u.Fd(), framer: utun.Framer{}, closeFD: u.Close}}
	return d
}

// Flags returns tun.FlagTUN: a utun device is a layer-3 device with the
// address-family header, which Queue adds and strips.
func (d *Device) Flags() tun.Flags { return tun.FlagTUN }

// SetPersist fails: a utun device lives exactly as long as its socket.
func (d *Device) SetPersist(bool) error {
	return &Error{Op: "set persist", Name: d.name, Err: fmt.Errorf("%w: utun devices cannot persist", ErrNotSupported)}
}

// create makes a utun device: open (the kernel creates the interface up),
// MTU, address (with the peer), the prefix route IPv4 point-to-point
// interfaces do not get on their own, and up.
func createDirect(s plan) (_ *Device, err error) {
	unit, err := utunUnit(s)
	if err != nil {
		return nil, err
	}
	u, err := utun.Open(unit)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			// Only root may create a utun interface: Auto asks the broker.
			err = lackOfPrivilege{err}
		}
		return nil, &Error{Op: "create", Name: s.tun.Name, Err: fmt.Errorf("open: %w", err)}
	}
	defer func() {
		if err != nil {
			u.Close() // the interface, its addresses and routes go with it
		}
	}()
	fail := func(step string, cause error) error {
		return &Error{Op: "create", Name: u.Name(), Err: fmt.Errorf("%s: %w", step, cause)}
	}
	if s.mtu != 0 {
		if err := u.SetMTU(s.mtu); err != nil {
			return nil, fail(fmt.Sprintf("set mtu %d", s.mtu), err)
		}
	}
	if err := u.AddAddr(s.prefix(), s.peer, s.nodad); err != nil {
		return nil, fail("add address "+s.prefix().String(), err)
	}
	index, err := u.Index()
	if err != nil {
		return nil, fail("index", err)
	}
	if s.local.Is4() && s.bits < 32 {
		if err := addInterfaceRoute(s.prefix().Masked(), index); err != nil {
			return nil, fail("route "+s.prefix().Masked().String(), err)
		}
	}
	if err := u.SetUp(true); err != nil {
		return nil, fail("set up", err)
	}
	return newDevice(u, index, s.prefix(), s.peer), nil
}

// addInterfaceRoute routes an IPv4 prefix through the interface with the
// given index (RTM_ADD on a routing socket, the gateway being the
// interface's link address): XNU gives a point-to-point interface only a
// host route to its peer (bsd/netinet/in.c, in_ifinit).
func addInterfaceRoute(dst netip.Prefix, index int) error {
	var maskBytes [4]byte
	for i := 0; i < dst.Bits(); i++ {
		maskBytes[i/8] |= 0x80 >> (i % 8)
	}
	msg := route.RouteMessage{
		Version: unix.RTM_VERSION,
		Type:    unix.RTM_ADD,
		Flags:   unix.RTF_UP | unix.RTF_STATIC,
		Index:   index,
		Seq:     1,
		Addrs: []route.Addr{
			unix.RTAX_DST:     &route.Inet4Addr{IP: dst.Addr().As4()},
			unix.RTAX_GATEWAY: &route.LinkAddr{Index: index},
			unix.RTAX_NETMASK: &route.Inet4Addr{IP: maskBytes},
		},
	}
	b, err := msg.Marshal()
	if err != nil {
		return err
	}
	// macOS has no SOCK_CLOEXEC: hold ForkLock so no exec sees the socket
	// before it is marked close-on-exec.
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return fmt.Errorf("routing socket: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, b); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("RTM_ADD: %w", err)
	}
	return nil
}

// adoptBrokered turns the broker's descriptor into a Device. On error
// every descriptor is closed.
func adoptBrokered(s plan, created broker.Created) (*Device, error) {
	if len(created.Fds) != 1 {
		created.Close()
		return nil, fmt.Errorf("%w: %d descriptors for a utun device, which has one", broker.ErrProtocol, len(created.Fds))
	}
	u, err := utun.Adopt(created.Fds[0])
	if err != nil {
		created.Close()
		return nil, err
	}
	d := newDevice(u, created.Index, s.prefix(), s.peer)
	d.brokered = true // SetPersist, SetOwner and SetGroup fail on utun anyway
	return d, nil
}

// Adopt takes over fd, a utun control socket opened elsewhere: it checks
// it with UTUN_OPT_IFNAME, takes a close-on-exec, non-blocking duplicate
// and closes fd. On error fd is untouched. Safe from any goroutine.
func Adopt(fd int) (*Device, error) {
	u, err := utun.Adopt(fd)
	if err != nil {
		return nil, &Error{Op: "adopt", Err: err}
	}
	// fd is closed by now and the duplicate is the only handle left: an
	// index that cannot be read leaves the device usable, with Index 0,
	// rather than lost.
	index, _ := u.Index()
	return newDevice(u, index, netip.Prefix{}, netip.Addr{}), nil
}
