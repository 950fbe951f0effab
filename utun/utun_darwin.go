package utun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/tundra-go/tundra/internal/fdutil"
	"golang.org/x/sys/unix"
)

// x/sys/unix's CtlInfo must be struct ctl_info exactly: controlID copies
// MarshalCtlInfo's bytes over it. These fail to compile otherwise.
var (
	_ [unsafe.Sizeof(unix.CtlInfo{}) - sizeofCtlInfo]byte
	_ [sizeofCtlInfo - unsafe.Sizeof(unix.CtlInfo{})]byte
)

// Device is a utun interface and the kernel-control socket that owns it:
// the interface exists for as long as the socket is open, and closing it
// (Close) destroys the interface with its addresses and routes.
//
// Name and Fd are fixed at creation and safe from any goroutine. The
// configuration methods (AddAddr, DeleteAddr, SetMTU, SetUp, Flags, MTU,
// Index) are independent ioctls on short-lived sockets: they are safe from
// any goroutine, concurrently with each other and with packet I/O on Fd,
// but they are not transactions, so callers that configure the same
// property from several goroutines must order the calls themselves. After
// Close they return an *OpError wrapping ErrClosed.
type Device struct {
	name   string
	fd     int
	closed atomic.Bool
}

// Open creates a utun interface: it opens a PF_SYSTEM/SYSPROTO_CONTROL
// socket, looks up the utun kernel control (CTLIOCGINFO for ControlName),
// connects to it, reads the interface name back (UTUN_OPT_IFNAME) and makes
// the socket non-blocking and close-on-exec. With unit AnyUnit the kernel
// chooses the lowest free unit; with 0 <= unit <= MaxUnit it creates
// utun<unit> or fails with an error wrapping unix.EBUSY when that exists.
// The kernel control is privileged: without root, connect fails with
// unix.EPERM.
//
// The new interface is up, point-to-point, with MTU 1500 and no address
// (utun_ctl_connect, bsd/net/if_utun.c). Packets read from Fd carry the
// 4-byte address-family header; attach Fd to a loop with Framer{}.
//
// On error nothing is left behind. Safe from any goroutine.
func Open(unit int) (*Device, error) {
	var scUnit uint32
	switch {
	case unit == AnyUnit:
		scUnit = 0
	case unit >= 0 && unit <= MaxUnit:
		scUnit = uint32(unit) + 1
	default:
		return nil, &OpError{Op: "open", Err: fmt.Errorf("%w: unit %d, want AnyUnit (-1) or 0..%d", ErrInvalidArgument, unit, MaxUnit)}
	}
	want := ""
	if unit != AnyUnit {
		want = "utun" + strconv.Itoa(unit)
	}

	fd, err := cloexecSocket(unix.AF_SYSTEM, unix.SOCK_DGRAM, sysprotoControl)
	if err != nil {
		return nil, &OpError{Op: "socket PF_SYSTEM SYSPROTO_CONTROL", Name: want, Err: err}
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd) // closing the control socket destroys any interface it created
		}
	}()

	id, err := controlID(fd, ControlName)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrCtl{ID: id, Unit: scUnit}); err != nil {
		return nil, &OpError{Op: "connect " + ControlName, Name: want, Err: err}
	}
	name, err := ifnameOf(fd)
	if err != nil {
		return nil, err
	}
	if want != "" && name != want {
		return nil, &OpError{Op: "getsockopt UTUN_OPT_IFNAME", Name: name, Err: fmt.Errorf("asked for %s, the kernel created %s", want, name)}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, &OpError{Op: "F_SETFL O_NONBLOCK", Name: name, Err: err}
	}
	ok = true
	return &Device{name: name, fd: fd}, nil
}

// Adopt takes over fd, a utun control socket some other process or
// component opened (inherited, or received over a Unix socket). It checks
// that fd is one: UTUN_OPT_IFNAME must give a utun name, and getpeername
// must give the kernel-control unit that name implies. It then duplicates
// fd with F_DUPFD_CLOEXEC (numbered 3 or above), makes the duplicate
// non-blocking, and closes fd.
// The returned Device owns the duplicate.
//
// O_NONBLOCK belongs to the open file, so any other descriptor for the same
// socket (in another process too) becomes non-blocking as well.
//
// On error fd is left open and its flags as they were. Safe from any
// goroutine, but nothing else may use or close fd during the call.
func Adopt(fd int) (*Device, error) {
	if fd < 0 {
		return nil, &OpError{Op: "adopt", Err: fmt.Errorf("%w: fd %d", ErrInvalidArgument, fd)}
	}
	name, err := ifnameOf(fd)
	if err != nil {
		return nil, err
	}
	unit, _ := ParseName(name) // ifnameOf checked it
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return nil, &OpError{Op: "getpeername", Name: name, Err: err}
	}
	ctl, isCtl := sa.(*unix.SockaddrCtl)
	if !isCtl {
		return nil, &OpError{Op: "getpeername", Name: name, Err: fmt.Errorf("%w: peer is %T, not a kernel control", ErrInvalidArgument, sa)}
	}
	if ctl.Unit != uint32(unit)+1 {
		return nil, &OpError{Op: "getpeername", Name: name, Err: fmt.Errorf("%w: kernel-control unit %d, but %s implies %d", ErrInvalidArgument, ctl.Unit, name, unit+1)}
	}

	nfd, err := fdutil.Take(fd, true)
	if err != nil {
		var fe *fdutil.Error
		errors.As(err, &fe)
		return nil, &OpError{Op: fe.Op, Name: name, Err: fe.Err}
	}
	// The duplicate keeps the socket, and with it the interface, alive.
	unix.Close(fd)
	return &Device{name: name, fd: nfd}, nil
}

// Name returns the interface name, such as "utun7".
func (d *Device) Name() string { return d.name }

// Fd returns the kernel-control socket: a non-blocking, close-on-exec
// datagram descriptor where each read returns one packet and each write
// sends one, both preceded by the 4-byte address-family header. The
// descriptor stays the Device's: it is valid until Close, and must not be
// closed by other means. To hand it to a loop, give loop.PacketConfig
// Framer{} and Close: d.Close.
func (d *Device) Fd() int { return d.fd }

// Close closes the socket, which makes the kernel detach the interface and
// remove its addresses (utun_ctl_disconnect). A second Close returns an
// *OpError wrapping ErrClosed. Safe from any goroutine, but packet I/O on
// Fd must have stopped: the descriptor number may be reused at once.
func (d *Device) Close() error {
	if d.closed.Swap(true) {
		return &OpError{Op: "close", Name: d.name, Err: ErrClosed}
	}
	if err := unix.Close(d.fd); err != nil {
		return &OpError{Op: "close", Name: d.name, Err: err}
	}
	return nil
}

// AddAddr adds an address to the interface. For IPv4 it issues SIOCAIFADDR
// on an AF_INET socket with MarshalIfaliasreq(d.Name(), p, peer): without a
// peer the local address doubles as the destination the kernel requires on
// a point-to-point link. For IPv6 it issues SIOCAIFADDR_IN6 on an AF_INET6
// socket with MarshalIn6Aliasreq, infinite lifetimes, and IN6_IFF_NODAD
// when noDAD is set (noDAD is ignored for IPv4). Adding an address that is
// already there updates it. The kernel needs root for both.
//
// Routes differ by family (bsd/netinet/in.c in_ifinit, bsd/netinet6/in6.c
// in6ctl_aifaddr): for IPv4 on a point-to-point interface the kernel
// installs only a host route to the destination, none for the rest of the
// prefix; for IPv6 shorter than /128 it makes the prefix on-link through
// the interface. Any other route is the caller's to add.
func (d *Device) AddAddr(p netip.Prefix, peer netip.Addr, noDAD bool) error {
	if err := d.check("add address"); err != nil {
		return err
	}
	if p.Addr().Is4() {
		req, err := MarshalIfaliasreq(d.name, p, peer)
		if err != nil {
			return err
		}
		return ioctlOn(unix.AF_INET, unix.SIOCAIFADDR, "SIOCAIFADDR", d.name, req)
	}
	var flags int32
	if noDAD {
		flags |= In6IFFNoDAD
	}
	req, err := MarshalIn6Aliasreq(d.name, p, peer, flags)
	if err != nil {
		return err
	}
	return ioctlOn(unix.AF_INET6, siocAIFAddrIn6, "SIOCAIFADDR_IN6", d.name, req)
}

// DeleteAddr removes the address p.Addr() from the interface (SIOCDIFADDR
// or SIOCDIFADDR_IN6); the prefix length is not needed and is ignored. An
// address that is not there gives an error wrapping unix.EADDRNOTAVAIL.
func (d *Device) DeleteAddr(p netip.Prefix) error {
	if err := d.check("delete address"); err != nil {
		return err
	}
	a := p.Addr()
	if a.Is4() {
		req, err := MarshalIfreqAddr4(d.name, a)
		if err != nil {
			return err
		}
		return ioctlOn(unix.AF_INET, unix.SIOCDIFADDR, "SIOCDIFADDR", d.name, req)
	}
	req, err := MarshalIn6Ifreq(d.name, a)
	if err != nil {
		return err
	}
	return ioctlOn(unix.AF_INET6, siocDIFAddrIn6, "SIOCDIFADDR_IN6", d.name, req)
}

// SetMTU sets the interface MTU (SIOCSIFMTU), 72 to 65535.
func (d *Device) SetMTU(mtu int) error {
	if err := d.check("set MTU"); err != nil {
		return err
	}
	req, err := MarshalIfreqMTU(d.name, mtu)
	if err != nil {
		return err
	}
	return ioctlOn(unix.AF_INET, unix.SIOCSIFMTU, "SIOCSIFMTU", d.name, req)
}

// MTU returns the interface MTU (SIOCGIFMTU).
func (d *Device) MTU() (int, error) {
	if err := d.check("get MTU"); err != nil {
		return 0, err
	}
	req, err := MarshalIfreq(d.name)
	if err != nil {
		return 0, err
	}
	if err := ioctlOn(unix.AF_INET, unix.SIOCGIFMTU, "SIOCGIFMTU", d.name, req); err != nil {
		return 0, err
	}
	return ParseIfreqMTU(req)
}

// Flags returns the interface's IFF_* flags (SIOCGIFFLAGS).
func (d *Device) Flags() (uint16, error) {
	if err := d.check("get flags"); err != nil {
		return 0, err
	}
	req, err := MarshalIfreq(d.name)
	if err != nil {
		return 0, err
	}
	if err := ioctlOn(unix.AF_INET, unix.SIOCGIFFLAGS, "SIOCGIFFLAGS", d.name, req); err != nil {
		return 0, err
	}
	return ParseIfreqFlags(req)
}

// SetUp sets or clears IFF_UP: it reads the flags (SIOCGIFFLAGS) and writes
// them back changed (SIOCSIFFLAGS), or does nothing when IFF_UP is already
// as asked. A new utun interface is already up.
func (d *Device) SetUp(up bool) error {
	flags, err := d.Flags()
	if err != nil {
		return err
	}
	want := flags &^ IFFUp
	if up {
		want |= IFFUp
	}
	if want == flags {
		return nil
	}
	req, err := MarshalIfreqFlags(d.name, want)
	if err != nil {
		return err
	}
	return ioctlOn(unix.AF_INET, unix.SIOCSIFFLAGS, "SIOCSIFFLAGS", d.name, req)
}

// Index returns the interface index, as if_nametoindex would.
func (d *Device) Index() (int, error) {
	if err := d.check("index"); err != nil {
		return 0, err
	}
	ifi, err := net.InterfaceByName(d.name)
	if err != nil {
		return 0, &OpError{Op: "if_nametoindex", Name: d.name, Err: err}
	}
	return ifi.Index, nil
}

func (d *Device) check(op string) error {
	if d.closed.Load() {
		return &OpError{Op: op, Name: d.name, Err: ErrClosed}
	}
	return nil
}

// cloexecSocket opens a socket and marks it close-on-exec. Darwin has no
// SOCK_CLOEXEC, so, like package os, it holds syscall.ForkLock over the
// two calls: no fork in between can leak the descriptor into a child.
func cloexecSocket(domain, typ, proto int) (int, error) {
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(domain, typ, proto)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	return fd, err
}

// controlID looks up the id of the kernel control called name (CTLIOCGINFO)
// through fd, a PF_SYSTEM/SYSPROTO_CONTROL socket.
func controlID(fd int, name string) (uint32, error) {
	raw, err := MarshalCtlInfo(name)
	if err != nil {
		return 0, err
	}
	var info unix.CtlInfo
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&info)), unsafe.Sizeof(info)), raw)
	if err := unix.IoctlCtlInfo(fd, &info); err != nil {
		return 0, &OpError{Op: "CTLIOCGINFO " + name, Err: err}
	}
	return info.Id, nil
}

// ifnameOf reads the interface name of a connected utun control socket
// (getsockopt SYSPROTO_CONTROL UTUN_OPT_IFNAME) and checks that it is one.
func ifnameOf(fd int) (string, error) {
	name, err := unix.GetsockoptString(fd, sysprotoControl, utunOptIfname)
	if err != nil {
		return "", &OpError{Op: "getsockopt UTUN_OPT_IFNAME", Err: err}
	}
	if _, err := ParseName(name); err != nil {
		return "", &OpError{Op: "getsockopt UTUN_OPT_IFNAME", Name: name, Err: fmt.Errorf("%w: not a utun control socket", err)}
	}
	return name, nil
}

// ioctlOn issues the ioctl req with the struct in arg on a new datagram
// socket of the given family, and closes the socket. The kernel reads the
// struct (and for _IOWR requests writes it back) through arg.
func ioctlOn(family int, req uint, op, name string, arg []byte) error {
	fd, err := cloexecSocket(family, unix.SOCK_DGRAM, 0)
	if err != nil {
		return &OpError{Op: op + ": socket", Name: name, Err: err}
	}
	defer unix.Close(fd)
	if err := ioctlPtr(fd, req, arg); err != nil {
		return &OpError{Op: op, Name: name, Err: err}
	}
	return nil
}

// ioctlPtr is ioctl(2) with a pointer argument, through the system-call
// trap (unix.Syscall), as package loop does for readv and writev. x/sys/unix
// exports no pointer ioctl for arbitrary structs (its own ioctlPtr is
// unexported), and its IfreqMTU helpers pass a 20-byte struct to ioctls
// that copy 32 bytes in and out. The kernel copies IOCPARM_LEN(req) bytes
// in and, for _IOWR requests, back out; arg must be at least that long,
// which is checked here.
func ioctlPtr(fd int, req uint, arg []byte) error {
	if n := int(req>>16) & iocParmMask; len(arg) < n {
		return fmt.Errorf("%w: ioctl %#x needs %d bytes, have %d", ErrInvalidArgument, req, n, len(arg))
	}
	//lint:ignore SA1019 every SYS_* number is deprecated on darwin, and no libSystem wrapper takes an arbitrary struct; see above.
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(unsafe.SliceData(arg))))
	if e != 0 {
		return e
	}
	return nil
}
