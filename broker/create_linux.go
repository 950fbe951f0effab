package broker

import (
	"context"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/tun"
)

// DirectCreate is the production CreateFunc: it creates the device r
// describes in the network namespace of the calling thread and returns
// descriptors for it. It always opens with IFF_TUN_EXCL (whatever
// r.Exclusive says), so it never attaches to an existing device; then it
// adds the other queues, sets the MTU before the address (the kernel
// refuses an IPv6 address on a link whose MTU is below 1280), adds the
// address (IFA_F_NODAD for IPv6, so it is usable at once) and brings the
// link up.
//
// The returned descriptors are close-on-exec, non-blocking, numbered 3 or
// above, and owned by the caller. On any error nothing is left behind: all
// descriptors are closed, which removes the device. The error is an *Error
// naming the step and the interface and wrapping the cause (a tun.OpError
// or nl.Error, so errors.Is(err, unix.EBUSY) works). It needs
// CAP_NET_ADMIN. Safe to call from many goroutines at once; each call locks
// its goroutine to one thread for its duration.
func DirectCreate(ctx context.Context, r Request) (Created, error) {
	if err := r.Validate(); err != nil {
		return Created{}, &Error{Op: "create: validate", Path: r.Name, Err: err}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	q := r.queues()
	dev, err := tun.Open(tun.Config{
		Name:       r.Name,
		TAP:        r.TAP,
		PacketInfo: r.PacketInfo,
		MultiQueue: q > 1,
		Exclusive:  true,
	})
	if err != nil {
		return Created{}, &Error{Op: "create: open", Path: r.Name, Err: err}
	}
	// dev's own descriptors are always closed; the caller gets duplicates.
	defer dev.Close()
	name := dev.Name()
	fail := func(step string, err error) (Created, error) {
		return Created{}, &Error{Op: "create: " + step, Path: name, Err: err}
	}
	for i := 1; i < q; i++ {
		if _, err := dev.AddQueue(); err != nil {
			return fail("add queue", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fail("configure", err)
	}
	c, err := nl.Dial()
	if err != nil {
		return fail("netlink", err)
	}
	defer c.Close()
	link, err := c.LinkByName(name)
	if err != nil {
		return fail("look up link", err)
	}
	if r.MTU != 0 {
		if err := c.SetLinkMTU(link.Index, r.MTU); err != nil {
			return fail("set mtu", err)
		}
	}
	a := nl.Addr{Index: link.Index, Prefix: r.Addr, Peer: r.Peer}
	if r.Addr.Addr().Is6() {
		a.Flags = nl.IFA_F_NODAD
	}
	if err := c.AddAddr(a); err != nil {
		return fail("add address", err)
	}
	if err := c.SetLinkUp(link.Index); err != nil {
		return fail("set link up", err)
	}
	if err := ctx.Err(); err != nil {
		return fail("configure", err)
	}
	out := Created{Name: name, Index: link.Index}
	for _, qu := range dev.Queues() {
		fd, err := unix.FcntlInt(uintptr(qu.Fd()), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			out.Close()
			return fail("F_DUPFD_CLOEXEC", err)
		}
		out.Fds = append(out.Fds, fd)
	}
	return out, nil
}
