//go:build linux

package tun

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNoProgram is wrapped by the error ClearFilterProgram and
// ClearSteeringProgram return when this Device has no program of that kind
// attached (it never attached one, or has detached it since). The kernel
// itself accepts a detach when nothing is attached and has no call that
// reports what is attached, so the check is the package's own bookkeeping,
// done before any ioctl.
var ErrNoProgram = errors.New("no eBPF program of this kind was attached through this Device")

// ErrBPFNotSupported is wrapped by the errors of SetFilterProgram and
// SetSteeringProgram when the running kernel cannot attach eBPF programs to
// TUN/TAP devices: TUNSETSTEERINGEBPF and TUNSETFILTEREBPF first appeared in
// Linux 4.16, and a kernel built without CONFIG_BPF_SYSCALL refuses them with
// EOPNOTSUPP. On operating systems other than Linux the same methods return
// ErrNotSupported instead. Test for it with errors.Is.
var ErrBPFNotSupported = errors.New("the kernel cannot attach eBPF programs to TUN/TAP devices (needs Linux 4.16 and CONFIG_BPF_SYSCALL)")

// bpfKind tells the two per-device program slots apart.
type bpfKind int

const (
	bpfFilter bpfKind = iota
	bpfSteering
)

func (k bpfKind) op() string {
	if k == bpfSteering {
		return "TUNSETSTEERINGEBPF"
	}
	return "TUNSETFILTEREBPF"
}

func (k bpfKind) req() uint {
	if k == bpfSteering {
		return unix.TUNSETSTEERINGEBPF
	}
	return unix.TUNSETFILTEREBPF
}

// SetFilterProgram attaches the eBPF program behind progFD as the device's
// filter (TUNSETFILTEREBPF), replacing the one attached before, if any.
//
// What the kernel does with it (drivers/net/tun.c, tun_net_xmit): the filter
// runs on every packet the host sends into the device, that is every packet
// a queue would read, before it is queued; it never sees packets userspace
// writes. For a TUN device the program sees the bare IP packet from its first
// byte (skb->data is the IP header; the PI and virtio-net headers are added
// later, when a queue reads the packet); for a TAP device it sees the
// Ethernet frame. Its return value is a length: 0 drops the packet (and
// counts it in the device's tx_dropped), a value smaller than the packet
// truncates it to that many bytes, and anything at least the packet length
// delivers it whole. The filter belongs to the device, not to a queue: one
// filter applies to every queue, for every process holding the device, and
// it stays attached until replaced, detached, or the device is destroyed.
//
// The kernel takes its own reference to the program, so progFD may be closed
// once this returns. It must be a BPF_PROG_TYPE_SOCKET_FILTER program;
// anything else fails with an error wrapping unix.EINVAL, a closed fd with
// unix.EBADF, and a kernel without the ioctl with ErrBPFNotSupported. As in
// the kernel's interface, progFD -1 detaches whatever filter is attached,
// whoever attached it, and succeeds when there is none (see
// ClearFilterProgram for a detach that reports that). The ioctl itself needs
// no capability beyond holding a queue fd; loading the program is what needs
// privilege (see package tunbpf).
//
// Safe to call from any goroutine; it is serialised with the Device's other
// control operations.
func (d *Device) SetFilterProgram(progFD int) error { return d.setBPF(bpfFilter, progFD) }

// ClearFilterProgram detaches the filter that this Device attached with
// SetFilterProgram (TUNSETFILTEREBPF with fd -1), so every packet is
// delivered whole again.
//
// If this Device has no filter attached, ClearFilterProgram returns an
// *OpError wrapping ErrNoProgram without calling the kernel: the kernel
// would accept the detach silently and cannot report what is attached.
// Because the record is this Device's own, a filter attached by another
// process or through another Device for the same interface is not seen
// here; SetFilterProgram(-1) detaches it unconditionally. A closed Device
// gives os.ErrClosed. Safe to call from any goroutine.
func (d *Device) ClearFilterProgram() error { return d.clearBPF(bpfFilter) }

// SetSteeringProgram attaches the eBPF program behind progFD as the device's
// queue-selection program (TUNSETSTEERINGEBPF), replacing the one attached
// before, if any. It applies to multi-queue devices only: a device opened
// without Config.MultiQueue gives an error wrapping ErrNotMultiQueue before
// any ioctl (the kernel would accept the program but never run it, since
// such a device has one queue).
//
// What the kernel does with it (tun_select_queue, tun_ebpf_select_queue):
// for every packet the host sends into the device, while more than one queue
// is attached, the program runs on the packet (as the filter sees it, see
// SetFilterProgram) and the packet goes to queue number
// uint16(return value) % (number of attached queues): the kernel keeps only
// the low 16 bits of the return value before taking the remainder. The
// numbering is the kernel's order of the attached queues, which is the order
// they attached until a queue detaches or closes: the kernel then moves the
// last queue into the freed slot, and a reattached queue (Queue.Attach)
// takes the last slot. Detached queues are not counted. While a steering program is attached it replaces the kernel's
// own flow-based queue selection entirely. The filter, if any, runs after
// steering, on the chosen queue's behalf.
//
// Program type, ownership, errors and privileges are as for
// SetFilterProgram, including progFD -1 to detach whatever is attached.
// Safe to call from any goroutine.
func (d *Device) SetSteeringProgram(progFD int) error { return d.setBPF(bpfSteering, progFD) }

// ClearSteeringProgram detaches the steering program that this Device
// attached with SetSteeringProgram (TUNSETSTEERINGEBPF with fd -1); the
// kernel then goes back to its own flow-based queue selection. Like
// ClearFilterProgram it returns an error wrapping ErrNoProgram, without
// calling the kernel, when this Device has no steering program attached.
// Safe to call from any goroutine.
func (d *Device) ClearSteeringProgram() error { return d.clearBPF(bpfSteering) }

func (d *Device) setBPF(kind bpfKind, progFD int) error {
	op := kind.op()
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: op, Name: d.name, Err: os.ErrClosed}
	}
	if kind == bpfSteering && d.flags&FlagMultiQueue == 0 {
		return &OpError{Op: op, Name: d.name, Err: fmt.Errorf("%w: a steering program picks among several queues", ErrNotMultiQueue)}
	}
	if err := unix.IoctlSetPointerInt(fd, kind.req(), progFD); err != nil {
		return &OpError{Op: op, Name: d.name, Err: explainSetBPF(err, progFD, func() error {
			// A fd that cannot be open: a kernel that knows the ioctl
			// answers EBADF and changes nothing, one that does not
			// answers EINVAL like for any unknown ioctl.
			return unix.IoctlSetPointerInt(fd, kind.req(), -2)
		})}
	}
	d.bpfAttached[kind] = progFD != -1
	return nil
}

func (d *Device) clearBPF(kind bpfKind) error {
	op := kind.op() + " detach"
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: op, Name: d.name, Err: os.ErrClosed}
	}
	if !d.bpfAttached[kind] {
		return &OpError{Op: op, Name: d.name, Err: ErrNoProgram}
	}
	if err := unix.IoctlSetPointerInt(fd, kind.req(), -1); err != nil {
		return &OpError{Op: op, Name: d.name, Err: err}
	}
	d.bpfAttached[kind] = false
	return nil
}

// explainSetBPF adds the likely reason to the errno of a failed
// TUNSET*EBPF. EINVAL means either a wrong program (not a BPF program, or
// not a socket filter) or a kernel that does not know the ioctl; probe tells
// them apart without side effects.
func explainSetBPF(err error, progFD int, probe func() error) error {
	switch err {
	case unix.EBADF:
		return fmt.Errorf("%w (program fd %d is not an open file descriptor)", err, progFD)
	case unix.EOPNOTSUPP:
		return fmt.Errorf("%w: %w (the kernel was built without BPF support)", ErrBPFNotSupported, err)
	case unix.EINVAL:
		if perr := probe(); perr == unix.EINVAL || perr == unix.ENOTTY {
			return fmt.Errorf("%w: %w (the kernel does not know the ioctl)", ErrBPFNotSupported, err)
		}
		return fmt.Errorf("%w (fd %d is not a BPF program of type socket filter, the only type TUN/TAP devices accept)", err, progFD)
	case unix.EBADFD:
		return fmt.Errorf("%w (the queue fd is not attached to a device)", err)
	}
	return err
}
