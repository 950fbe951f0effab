package tundra

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"

	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// The settings below act on the link through rtnetlink (SetOwner and
// SetGroup through the TUN ioctls). Each is safe from any goroutine, but
// not concurrently with Close: they use the first queue's descriptor to
// find the device's network namespace.

// SetMTU sets the link MTU: 68..65535, as the MTU option, and at least
// 1280 while the device has an IPv6 address other than its link-local one
// (the kernel would disable IPv6 on the link and drop the address). Safe
// from any goroutine; the change is made in the device's network
// namespace, whichever thread calls.
func (d *Device) SetMTU(mtu int) error {
	const op = "set mtu"
	if err := checkMTU(mtu); err != nil {
		return d.settingError(op, "mtu", err)
	}
	return d.netlink(op, func(c *nl.Conn, link nl.Link) error {
		if mtu < minIPv6MTU {
			addrs, err := c.Addrs(link.Index)
			if err != nil {
				return err
			}
			for _, a := range addrs {
				if a.Prefix.Addr().Is6() && !a.Prefix.Addr().IsLinkLocalUnicast() {
					return badArg{"mtu", fmt.Errorf("%d is below %d, the IPv6 minimum, and the device has %s: the kernel would disable IPv6 on the link and drop it", mtu, minIPv6MTU, a.Prefix)}
				}
			}
		}
		return c.SetLinkMTU(link.Index, mtu)
	})
}

// AddAddr gives the device an address: p is the address with the prefix
// length of its subnet (10.0.0.1/24), peer the point-to-point peer or the
// zero Addr. The checks are Create's: a unicast address without a zone, a
// prefix length above 0, a peer of the same family that is not the address
// itself. IPv6 addresses are added without duplicate address detection
// (IFA_F_NODAD), as Create adds them, and need a link MTU of at least 1280;
// an IPv4 address without a peer gets the subnet's broadcast address, as
// ifconfig gives it. The link may be down: unlike Create, AddAddr does not
// wait for the address to be usable. Safe from any goroutine.
func (d *Device) AddAddr(p netip.Prefix, peer netip.Addr) error {
	const op = "add address"
	if arg, err := checkLinkAddr(p, peer); err != nil {
		return d.settingError(op, arg, err)
	}
	return d.netlink(op, func(c *nl.Conn, link nl.Link) error {
		a := nl.Addr{Index: link.Index, Prefix: p, Peer: peer, Broadcast: ipv4Broadcast(p, peer)}
		if p.Addr().Is6() {
			a.Flags |= nl.IFA_F_NODAD
		}
		if err := c.AddAddr(a); err != nil {
			if p.Addr().Is6() && link.MTU < minIPv6MTU && errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (the link's MTU is %d, below IPv6's minimum of %d: SetMTU(1280) or more first)", err, link.MTU, minIPv6MTU)
			}
			if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("%w (%s is already configured on %s)", err, p, link.Name)
			}
			return err
		}
		return nil
	})
}

// DelAddr removes an address AddAddr or Create gave the device; p and peer
// are checked as AddAddr checks them. Removing an address the device does
// not have fails with an error matching unix.EADDRNOTAVAIL. Safe from any
// goroutine.
func (d *Device) DelAddr(p netip.Prefix, peer netip.Addr) error {
	const op = "delete address"
	if arg, err := checkLinkAddr(p, peer); err != nil {
		return d.settingError(op, arg, err)
	}
	return d.netlink(op, func(c *nl.Conn, link nl.Link) error {
		err := c.DeleteAddr(nl.Addr{Index: link.Index, Prefix: p, Peer: peer})
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			err = fmt.Errorf("%w (%s has no address %s)", err, link.Name, p)
		}
		return err
	})
}

// Addrs lists the device's addresses, IPv4 and IPv6, the kernel's
// link-local ones included, in the kernel's order. Safe from any goroutine.
func (d *Device) Addrs() ([]LinkAddr, error) {
	var out []LinkAddr
	err := d.netlink("addresses", func(c *nl.Conn, link nl.Link) error {
		addrs, err := c.Addrs(link.Index)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			out = append(out, linkAddrOf(a))
		}
		return nil
	})
	return out, err
}

// Up sets the link up (IFF_UP). A TUN/TAP device that no descriptor holds
// then has no carrier (ip shows NO-CARRIER) until one attaches. Safe from
// any goroutine.
func (d *Device) Up() error {
	return d.netlink("set up", func(c *nl.Conn, link nl.Link) error { return c.SetLinkUp(link.Index) })
}

// Down sets the link down. Its addresses stay. Safe from any goroutine.
func (d *Device) Down() error {
	return d.netlink("set down", func(c *nl.Conn, link nl.Link) error { return c.SetLinkDown(link.Index) })
}

// SetOwner lets the user uid (0..4294967294, as the Owner option) attach
// to the device without CAP_NET_ADMIN (TUNSETOWNER). Once set, an owner
// can be replaced but not cleared. On a device the broker made it fails
// with an error matching ErrBrokered. Safe from any goroutine.
func (d *Device) SetOwner(uid int) error {
	return d.setID("set owner", "owner", "uid", uid, (*tun.Device).SetOwner)
}

// SetGroup lets members of gid (0..4294967294) attach without
// CAP_NET_ADMIN (TUNSETGROUP); with an owner as well, the kernel requires
// both to match. On a device the broker made it fails with an error
// matching ErrBrokered. Safe from any goroutine.
func (d *Device) SetGroup(gid int) error {
	return d.setID("set group", "group", "gid", gid, (*tun.Device).SetGroup)
}

func (d *Device) setID(op, arg, what string, id int, set func(*tun.Device, int) error) error {
	if err := d.refuseBrokered(op); err != nil {
		return err
	}
	if err := checkID(what, id); err != nil {
		return d.settingError(op, arg, err)
	}
	if err := set(d.sys.t, id); err != nil {
		return &Error{Op: op, Name: d.name, Err: err}
	}
	return nil
}

func linkAddrOf(a nl.Addr) LinkAddr {
	return LinkAddr{Prefix: a.Prefix, Peer: a.Peer, Broadcast: a.Broadcast}
}

// netlink runs fn with a netlink socket in the device's network namespace
// and the device's link, looked up by index and checked against the name
// the kernel reports for the device's descriptor (so a renamed device is
// still found, and an index that now names another link is never
// touched). The namespace is the one TUNGETDEVNETNS names: when it is not
// the calling thread's, fn runs on a fresh thread that joins it and is
// then thrown away, so the caller's thread never changes namespace.
// Kernel errors are wrapped in an *Error naming op; a badArg returned by fn
// becomes an argument error.
func (d *Device) netlink(op string, fn func(c *nl.Conn, link nl.Link) error) error {
	if d.closed.Load() {
		return &Error{Op: op, Name: d.name, Err: os.ErrClosed}
	}
	fd := d.queues[0].fd
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is unlocked (returned to Go) only if it kept its
		// namespace; otherwise the goroutine ends locked and the runtime
		// ends the thread.
		switched, err := joinDeviceNetns(fd)
		if !switched {
			defer runtime.UnlockOSThread()
		}
		if err != nil {
			done <- err
			return
		}
		done <- d.withLink(fd, fn)
	}()
	err := <-done
	if err == nil {
		return nil
	}
	var bad badArg
	if errors.As(err, &bad) {
		return d.settingError(op, bad.arg, bad.reason)
	}
	return &Error{Op: op, Name: d.name, Err: err}
}

func (d *Device) withLink(fd int, fn func(c *nl.Conn, link nl.Link) error) error {
	name, _, err := tun.Inspect(fd)
	if err != nil {
		return err
	}
	c, err := nl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	link, err := c.LinkByIndex(d.index)
	if err != nil {
		return fmt.Errorf("looking up index %d: %w", d.index, err)
	}
	if link.Name != name {
		return fmt.Errorf("index %d is %s here, not the device %s: is the device in another network namespace?", d.index, link.Name, name)
	}
	return fn(c, link)
}

// joinDeviceNetns moves the calling thread, which must be locked, into the
// network namespace of the device behind fd, and says whether it moved.
// When the kernel will not name the namespace (TUNGETDEVNETNS needs Linux
// 5.2 and CAP_NET_ADMIN over it), the thread stays where it is, and
// withLink's name check catches a mismatch.
func joinDeviceNetns(fd int) (switched bool, err error) {
	nsfd, err := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS)
	if err != nil {
		return false, nil
	}
	defer unix.Close(nsfd)
	var dev, self unix.Stat_t
	if err := unix.Fstat(nsfd, &dev); err != nil {
		return false, nil
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err == nil && dev.Dev == self.Dev && dev.Ino == self.Ino {
		return false, nil
	}
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		// setns may have failed half-way; do not hand the thread back.
		return true, fmt.Errorf("joining the device's network namespace: %w", err)
	}
	return true, nil
}

// badArg is an argument that fn, inside netlink, found wrong once it could
// see the link (SetMTU's IPv6 rule).
type badArg struct {
	arg    string
	reason error
}

func (b badArg) Error() string { return b.reason.Error() }

// refuseBrokered is the answer of SetPersist, SetOwner and SetGroup on a
// brokered device; nil for any other.
func (d *Device) refuseBrokered(op string) error {
	if !d.brokered {
		return nil
	}
	return &Error{Op: op, Name: d.name, Err: invalid{fmt.Errorf("%w: the broker made %s for this client, and the device must go when the client's descriptors close", ErrBrokered, d.name)}}
}

// ipv4Broadcast is the broadcast address ifconfig gives an IPv4 address
// without a peer: the subnet's last address. /31 (RFC 3021) and /32 have
// none, nor does IPv6.
func ipv4Broadcast(p netip.Prefix, peer netip.Addr) netip.Addr {
	if !p.Addr().Is4() || peer.IsValid() || p.Bits() > 30 {
		return netip.Addr{}
	}
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}
