package tundra

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/vnet"
)

// ErrWouldBlock is returned by Recv, RecvBatch, Send and SendBatch when the
// device cannot move a packet now (Tundra's {:select, info}); the readiness
// callback given to Attach is armed and runs on the owning loop when it
// can. It matches unix.EAGAIN with errors.Is.
var ErrWouldBlock = loop.ErrWouldBlock

// ErrNotOwner is returned by I/O called from anywhere but the owning loop's
// thread, and by I/O on a queue attached to no loop.
var ErrNotOwner = loop.ErrNotOwner

// errNotAttached is ErrNotOwner with the reason; preallocated so the
// refusal costs nothing.
var errNotAttached error = &Error{Op: "io", Err: errors.Join(loop.ErrNotOwner, errors.New("the queue is attached to no loop (call Attach)"))}

// Device is a TUN or TAP device this process holds: one Queue per file
// descriptor, which does the I/O (Queues). Its methods are safe from any
// goroutine unless they say they are loop-only (Handoff).
type Device struct {
	name   string
	index  int
	addr   netip.Prefix // what Create configured; zero for an adopted device
	peer   netip.Addr
	queues []*Queue
	sys    sysDevice // the operating system's handle
	// fallback is why the broker made the device: the direct attempt's
	// error; nil when it was made directly.
	fallback error
	// brokered is set on a device the broker made (adoptBrokered):
	// SetPersist, SetOwner and SetGroup refuse it (ErrBrokered).
	brokered bool
	// offloads are what the kernel and this package agreed on for a device
	// created with the Offloads option; notes say why anything asked for
	// was left out.
	offloads     vnet.Offloads
	offloadNotes []string

	closed atomic.Bool
}

// Name is the interface name, as the kernel reported it.
func (d *Device) Name() string { return d.name }

// Index is the interface index.
func (d *Device) Index() int { return d.index }

// Addr is the address and prefix Create configured; the zero Prefix for an
// adopted device.
func (d *Device) Addr() netip.Prefix { return d.addr }

// Peer is the point-to-point peer Create configured, or the zero Addr.
func (d *Device) Peer() netip.Addr { return d.peer }

// FallbackReason is why Create asked the broker: the error of the direct
// attempt (EPERM or EACCES from the kernel). It is nil for a device created
// directly, adopted, or created with Mode(BrokerOnly).
func (d *Device) FallbackReason() error { return d.fallback }

// Offloads are the offloads in use on a device created with the Offloads
// option: which super-packets the kernel hands over and this package
// writes. The zero value means none (no virtio-net header).
func (d *Device) Offloads() vnet.Offloads { return d.offloads }

// OffloadNotes say why offloads asked for are not in use (a kernel that
// refused the flag, or refused a coalesced write at start-up).
func (d *Device) OffloadNotes() []string { return append([]string(nil), d.offloadNotes...) }

// Queues are the device's queues, first queue first (one unless created
// with Queues(n)). The slice is a copy.
func (d *Device) Queues() []*Queue { return append([]*Queue(nil), d.queues...) }

// Fds are every queue's file descriptor, first queue first. The Device
// keeps ownership.
func (d *Device) Fds() []int {
	fds := make([]int, len(d.queues))
	for i, q := range d.queues {
		fds[i] = q.fd
	}
	return fds
}

// Attach gives every queue of the device to loop l, which owns them from
// now on (Tundra's owning process): only l's thread may do I/O on them,
// onReady runs on it when a queue armed by ErrWouldBlock becomes ready, and
// when l closes it closes them (a non-persistent device then disappears).
// Readable is armed at once. To spread the queues of a multi-queue device
// over several loops, attach each Queue instead.
func (d *Device) Attach(l *loop.Loop, onReady ReadyFunc) error {
	for i, q := range d.queues {
		if err := q.Attach(l, onReady); err != nil {
			for _, done := range d.queues[:i] {
				done.detach()
			}
			return err
		}
	}
	return nil
}

// AttachEach spreads the device's queues over loops, queue i to
// loops[i%len(loops)]: with a loop.Group of one pinned loop per core and a
// device made with Queues(n), each core serves its own queue and the kernel
// keeps each flow on one queue. On error no queue stays attached.
func (d *Device) AttachEach(loops []*loop.Loop, onReady ReadyFunc) error {
	if len(loops) == 0 {
		return &Error{Op: "attach", Name: d.name, Arg: "loops", Err: invalid{errorString("no loops")}}
	}
	for i, q := range d.queues {
		if err := q.Attach(loops[i%len(loops)], onReady); err != nil {
			for _, done := range d.queues[:i] {
				done.detach()
			}
			return err
		}
	}
	return nil
}

// Handoff gives every queue to another loop (Tundra's
// controlling_process/2). It must be called on the loop that owns them. See
// Queue.Handoff. Loop-only.
func (d *Device) Handoff(to *loop.Loop, onReady ReadyFunc) error {
	for _, q := range d.queues {
		if err := q.Handoff(to, onReady); err != nil {
			return err
		}
	}
	return nil
}

// Close closes every queue, on its loop if it is attached to one. A
// non-persistent device then disappears. Idempotent; safe from any
// goroutine, and from the owning loop's callbacks.
func (d *Device) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, q := range d.queues {
		if err := q.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.sys.close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return &Error{Op: "close", Name: d.name, Err: errors.Join(errs...)}
	}
	return nil
}
