//go:build linux

package tun

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tundra-go/tundra/internal/fdutil"
	"golang.org/x/sys/unix"
)

// cloneDevice is the clone device the package opens when the caller names
// none (Config.CloneDevice).
const cloneDevice = DefaultCloneDevice

// Device is one TUN/TAP interface and the queue fds this process holds for
// it. Open and Adopt return it; it is never built by hand.
//
// All methods are safe to call from any goroutine. Control operations
// (AddQueue, SetPersist, SetOwner, SetGroup, Close, and Queue.Attach, Detach
// and Close) are serialised by a mutex, so none of them can use an fd that a
// concurrent Close is releasing. Reads and writes are not serialised (see
// Queue).
type Device struct {
	mu      sync.Mutex
	name    string   // refreshed by AddQueue, which must follow renames
	flags   Flags    // what TUNGETIFF reported, NO_PI corrected (see PacketInfo)
	piKnown bool     // whether flags' NO_PI bit is certain
	first   *Queue   // the queue Open or Adopt produced; Fd reports it
	queues  []*Queue // the queues not yet closed, in the order they were made
	clone   string   // the clone device AddQueue opens ("" for the default)

	// bpfAttached records the eBPF programs (by bpfKind) this Device
	// attached: the kernel cannot report it (see ErrNoProgram).
	bpfAttached [2]bool

	// sockFilter keeps the classic BPF program of SetSocketFilter alive:
	// the kernel holds its address (settings_linux.go).
	sockFilter []byte
}

// Queue is one fd attached to a Device. A single-queue device has exactly
// one; a multi-queue device can have several, and the kernel spreads the
// packets it sends into the device over the attached ones.
//
// Read and Write are lock-free and allocation-free; they may run
// concurrently with each other and with any other method, from any
// goroutine, except that Close (of the queue or of its Device) must not race
// with a Read or Write on the same queue: the fd number could be reused by an
// unrelated open between the moment Read loads it and the read(2), so stop
// the readers and writers before closing.
type Queue struct {
	dev  *Device
	name string       // the device name when the queue was made, for errors
	fd   atomic.Int32 // -1 once closed
	// hdr is the framing every packet carries in front (the PI header when
	// it is known to be on, the virtio-net header's 10 bytes with
	// VnetHdr): Read and Write refuse a buffer with no byte beyond it.
	hdr int

	// Read and Write return these instead of allocating a fresh *OpError
	// each time: EAGAIN is the normal result of polling a non-blocking fd.
	errReadAgain, errWriteAgain, errReadClosed, errWriteClosed *OpError
}

// Open creates the TUN or TAP interface cfg describes, or attaches to the
// existing one of that name, and returns it with one queue.
//
// It opens /dev/net/tun with O_RDWR|O_CLOEXEC|O_NONBLOCK, binds it with
// TUNSETIFF and reads the result back with TUNGETIFF (the kernel fills in
// "%d" patterns and empty names). The device is created in, or looked up in,
// the network namespace of the calling OS thread. On any error no fd is left
// open, and the error is an *OpError naming the failed step, e.g.
// "TUNSETIFF" wrapping unix.EBUSY for an Exclusive name that exists.
//
// Creating a device needs CAP_NET_ADMIN. Attaching to an existing one needs
// CAP_NET_ADMIN or the device's owner uid and group (SetOwner, SetGroup),
// and opening /dev/net/tun needs whatever its file mode asks for.
//
// Open is safe to call from any goroutine.
func Open(cfg Config) (*Device, error) {
	if cfg.Name != "" {
		if err := ValidateName(cfg.Name); err != nil {
			return nil, err
		}
	}
	if err := checkIndex(cfg); err != nil {
		return nil, err
	}
	req := FlagTUN
	if cfg.TAP {
		req = FlagTAP
	}
	if !cfg.PacketInfo {
		req |= FlagNoPI
	}
	if cfg.MultiQueue {
		req |= FlagMultiQueue
	}
	if cfg.VnetHdr {
		req |= FlagVnetHdr
	}

	fd, err := openClone(cfg.CloneDevice)
	if err != nil {
		return nil, err
	}
	// TUNSETIFINDEX must come before TUNSETIFF, and applies only when
	// TUNSETIFF creates the device: Index makes the open exclusive below.
	if cfg.Index != 0 {
		if err := setIfindex(fd, cfg); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}

	// The kernel applies the requested framing bits (NO_PI, VNET_HDR, ...)
	// when it creates a device and when a queue attaches to a device with no
	// other queue, but a queue joining a multi-queue device that already has
	// queues inherits that device's framing and the request is ignored.
	// TUNGETIFF cannot tell us which happened for NO_PI (see PacketInfo), so
	// for a named multi-queue open we first try IFF_TUN_EXCL: if that
	// succeeds we know we created the device. An empty name or a "%d"
	// pattern always creates one.
	exclusive := cfg.Exclusive || cfg.Index != 0
	created := exclusive || cfg.Name == "" || strings.Contains(cfg.Name, "%")
	switch {
	case exclusive:
		err = setIFF(fd, cfg.Name, req|FlagTunExcl)
	case cfg.MultiQueue && !created:
		err = setIFF(fd, cfg.Name, req|FlagTunExcl)
		if err == nil {
			created = true
		} else if err == unix.EBUSY {
			err = setIFF(fd, cfg.Name, req) // it exists: join it
		}
	default:
		err = setIFF(fd, cfg.Name, req)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "TUNSETIFF", Name: cfg.Name, Err: explainSetIFF(explainIndexBusy(err, cfg), cfg.Exclusive)}
	}

	name, got, err := getIFF(fd)
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "TUNGETIFF", Name: cfg.Name, Err: err}
	}
	if cfg.MultiQueue && !created && got&FlagVnetHdr != req&FlagVnetHdr {
		unix.Close(fd)
		return nil, &OpError{Op: "TUNSETIFF", Name: name, Err: fmt.Errorf("%w (asked VnetHdr=%t, device has %t)",
			ErrFramingMismatch, cfg.VnetHdr, got&FlagVnetHdr != 0)}
	}

	// TUNGETIFF sets bit 0x1000 (IFF_NOFILTER) whenever no socket filter is
	// attached, which hides the real IFF_NO_PI: replace it with what we
	// asked for, which is what the kernel applied whenever it applied the
	// request at all. A single-queue attach always applies it.
	flags := got&^(FlagNoFilter|FlagDetachQueue) | req&FlagNoPI
	d := newDevice(name, flags, created || !cfg.MultiQueue, fd)
	d.clone = cfg.CloneDevice
	return d, nil
}

// Adopt takes over fd, a TUN/TAP descriptor some other code opened and bound
// with TUNSETIFF (for example one passed over a Unix socket), and returns a
// Device for it with one queue.
//
// Adopt checks fd with TUNGETIFF and learns the interface name and flags
// from it. It then takes a close-on-exec duplicate numbered 3 or above (so
// that it never lands on a closed stdin, stdout or stderr, where a stray
// print would inject a packet), puts it in non-blocking mode, and closes fd.
// O_NONBLOCK belongs to the open file description, which the duplicate
// shares with fd and with any other copy of it (in this or another process):
// those copies become non-blocking too.
//
// On any error fd is left exactly as it was: still open, same flags. The
// error is an *OpError; a /dev/net/tun fd that was never bound with
// TUNSETIFF gives unix.EBADFD, any other kind of file gives unix.ENOTTY (or
// unix.EINVAL), and a closed fd gives unix.EBADF.
//
// The kernel does not report whether the device carries the PI header (see
// Device.PacketInfo). Adopt is safe to call from any goroutine, but the
// caller must not use or close fd concurrently.
func Adopt(fd int) (*Device, error) {
	name, got, err := Inspect(fd)
	if err != nil {
		return nil, err
	}
	nfd, err := fdutil.Take(fd, true)
	if err != nil {
		return nil, takeError(name, err)
	}
	// Nothing can fail from here on. Linux releases the descriptor even when
	// close reports an error, so there is nothing to undo either way.
	unix.Close(fd)
	return adopted(name, got, []int{nfd}), nil
}

// AdoptQueues takes over descriptors of one device (for example the queues
// a broker created and passed over), each a TUN/TAP fd of the same
// interface, and returns a Device with one queue per fd, in order.
//
// Unlike Adopt it takes the descriptors themselves, with no duplicate:
// they are meant to be fresh ones this process received and nobody else
// holds, so a copy would only cost system calls. Each is checked once
// (TUNGETIFF), made close-on-exec and non-blocking (O_NONBLOCK is shared
// with every copy of the open file), and from then on belongs to the
// Device: the caller must forget the numbers. A descriptor numbered 0, 1 or
// 2 is the exception: it is replaced by a duplicate numbered 3 or above and
// closed.
//
// On error the caller still owns every descriptor, all open, though they
// may have been made close-on-exec and non-blocking; errors are *OpError,
// as Adopt's. Safe from any goroutine; the caller must not use the
// descriptors concurrently.
func AdoptQueues(fds []int) (*Device, error) {
	if len(fds) == 0 {
		return nil, &OpError{Op: "adopt queues", Err: fmt.Errorf("%w: no descriptors", unix.EINVAL)}
	}
	name, got, err := Inspect(fds[0])
	if err != nil {
		return nil, err
	}
	for i, fd := range fds[1:] {
		other, _, err := Inspect(fd)
		if err != nil {
			return nil, err
		}
		if other != name {
			return nil, &OpError{Op: "adopt queues", Name: name, Err: fmt.Errorf("%w: descriptor %d belongs to %s", unix.EINVAL, i+1, other)}
		}
	}
	taken := make([]int, 0, len(fds))
	for _, fd := range fds {
		nfd, err := fdutil.Take(fd, false)
		if err != nil {
			for i, t := range taken {
				if t != fds[i] {
					unix.Close(t)
				}
			}
			return nil, takeError(name, err)
		}
		taken = append(taken, nfd)
	}
	for i, t := range taken {
		if t != fds[i] {
			unix.Close(fds[i]) // replaced by a duplicate above stderr
		}
	}
	return adopted(name, got, taken), nil
}

// adopted builds the Device for descriptors of one device whose TUNGETIFF
// flags are got.
func adopted(name string, got Flags, fds []int) *Device {
	// Bit 0x1000 means IFF_NO_PI or "no socket filter" (IFF_NOFILTER). Only
	// when it is clear do we know something: a filter is attached and the
	// device keeps the PI header.
	piKnown := got&FlagNoFilter == 0
	d := newDevice(name, got&^FlagDetachQueue, piKnown, fds[0])
	for _, fd := range fds[1:] {
		d.queues = append(d.queues, newQueue(d, fd, name))
	}
	return d
}

// takeError wraps fdutil's error in the package's.
func takeError(name string, err error) error {
	var fe *fdutil.Error
	if errors.As(err, &fe) {
		return &OpError{Op: fe.Op, Name: name, Err: fe.Err}
	}
	return &OpError{Op: "adopt", Name: name, Err: err}
}

// Inspect reports the interface name and IFF_* flags of fd (TUNGETIFF)
// without taking it over or changing it, so a caller can look the device
// up before deciding to Adopt it. Errors are as Adopt's. The flags carry
// the IFF_NOFILTER alias described under Device.PacketInfo. Safe from any
// goroutine.
func Inspect(fd int) (name string, flags Flags, err error) {
	name, flags, err = getIFF(fd)
	if err != nil {
		return "", 0, &OpError{Op: "TUNGETIFF", Err: explainAdopt(err)}
	}
	if flags&(FlagTUN|FlagTAP) == 0 {
		return "", 0, &OpError{Op: "TUNGETIFF", Name: name, Err: fmt.Errorf("kernel reported flags %v, neither TUN nor TAP", flags)}
	}
	return name, flags, nil
}

// Features asks the kernel which IFF_* flags TUNSETIFF understands
// (TUNGETFEATURES), for example to check for FlagMultiQueue before relying on
// it. It opens and closes /dev/net/tun, so it needs read-write access to it
// but no capability. Safe to call from any goroutine.
func Features() (Flags, error) {
	fd, err := unix.Open(cloneDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &OpError{Op: "open " + cloneDevice, Err: err}
	}
	defer unix.Close(fd)
	v, err := unix.IoctlGetUint32(fd, unix.TUNGETFEATURES)
	if err != nil {
		return 0, &OpError{Op: "TUNGETFEATURES", Err: err}
	}
	// The answer is an unsigned int but describes ifr_flags, a short.
	return Flags(v & 0xffff), nil
}

func newDevice(name string, flags Flags, piKnown bool, fd int) *Device {
	d := &Device{name: name, flags: flags, piKnown: piKnown}
	d.first = newQueue(d, fd, name)
	d.queues = []*Queue{d.first}
	return d
}

func newQueue(d *Device, fd int, name string) *Queue {
	q := &Queue{
		dev:            d,
		name:           name,
		errReadAgain:   &OpError{Op: "read", Name: name, Err: unix.EAGAIN},
		errWriteAgain:  &OpError{Op: "write", Name: name, Err: unix.EAGAIN},
		errReadClosed:  &OpError{Op: "read", Name: name, Err: os.ErrClosed},
		errWriteClosed: &OpError{Op: "write", Name: name, Err: os.ErrClosed},
	}
	if d.piKnown && d.flags&FlagNoPI == 0 {
		q.hdr += PIHeaderLen
	}
	if d.flags&FlagVnetHdr != 0 {
		q.hdr += vnetHeaderLen
	}
	q.fd.Store(int32(fd))
	return q
}

// vnetHeaderLen is the kernel's default struct virtio_net_hdr, the one a
// device with IFF_VNET_HDR carries unless TUNSETVNETHDRSZ asks for more
// (this package never does).
const vnetHeaderLen = 10

// errNoRoom refuses a Read or Write buffer with no byte of packet beyond
// the queue's framing header: read(2) of 0 bytes returns 0 without taking
// a packet, and a write of nothing sends none.
func (q *Queue) errNoRoom(op string, size int) error {
	return &OpError{Op: op, Name: q.name, Err: fmt.Errorf("%w: buffer 0 holds %d bytes, none beyond the %d-byte header", unix.EINVAL, size, q.hdr)}
}

// Name returns the interface name the kernel reported, e.g. "tun0" for a
// "tun%d" pattern. A rename with ip link is noticed only by AddQueue.
func (d *Device) Name() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name
}

// Flags returns the device's IFF_* flags as TUNGETIFF reported them after
// setup, with FlagPersist kept up to date by SetPersist. Per-queue bits
// (FlagDetachQueue) are left out, and so is the FlagNoFilter alias: the
// FlagNoPI bit is the one described under PacketInfo.
func (d *Device) Flags() Flags {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flags
}

// PacketInfo reports whether packets on this device carry the 4-byte PI
// header (on), and whether that is certain (known).
//
// The kernel has no way to ask: TUNGETIFF reports IFF_NOFILTER, which has the
// same value as IFF_NO_PI, whenever no socket filter is attached. So known is
// true when Open created the device, or attached as its only queue (the
// kernel then applies the requested framing), or when an adopted fd shows a
// filter attached. It is false for a multi-queue device that Open joined
// while it had other queues (on is then what Config asked for) and for most
// adopted fds (on is then false, the common IFF_NO_PI case): the caller must
// know the framing from whoever created the device. Use Config.Exclusive to
// be sure Open creates it.
func (d *Device) PacketInfo() (on, known bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flags&FlagNoPI == 0, d.piKnown
}

// Fd returns the fd of the device's first queue (the one Open or Adopt made),
// or -1 once that queue or the device is closed. The Device keeps ownership:
// do not close it, and do not change its flags.
func (d *Device) Fd() int { return d.first.Fd() }

// Queues returns the queues not yet closed, in the order they were made, so
// the first queue comes first while it is open. The slice is a copy; the
// queues are shared.
func (d *Device) Queues() []*Queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.queues)
}

// AddQueue attaches one more queue to a multi-queue device: it opens
// /dev/net/tun again and binds it to the same name with the same flags.
// A device opened without Config.MultiQueue gives an error wrapping
// ErrNotMultiQueue, since the kernel allows it only one queue.
//
// TUNSETIFF looks the name up in the calling thread's network namespace, and
// would create a brand-new device there if the name were free, so AddQueue
// must be called from a thread in the device's namespace; it checks that
// (with TUNGETDEVNETNS, when the kernel lets it) and fails instead of
// creating a stray device. It also re-reads the name first, so it follows a
// rename. A new queue never changes the device's framing: the kernel keeps
// the flags of a multi-queue device that already has a queue.
func (d *Device) AddQueue() (*Queue, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ref := d.anyFDLocked()
	if ref < 0 {
		return nil, &OpError{Op: "AddQueue", Name: d.name, Err: os.ErrClosed}
	}
	if d.flags&FlagMultiQueue == 0 {
		return nil, &OpError{Op: "AddQueue", Name: d.name, Err: ErrNotMultiQueue}
	}
	name, _, err := getIFF(ref)
	if err != nil {
		return nil, &OpError{Op: "TUNGETIFF", Name: d.name, Err: err}
	}
	d.name = name

	// Keep the namespace check, the open and TUNSETIFF on one thread:
	// namespaces are per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := checkSameNetns(ref); err != nil {
		return nil, &OpError{Op: "AddQueue", Name: name, Err: err}
	}
	fd, err := openClone(d.clone)
	if err != nil {
		return nil, err
	}
	// The NO_PI bit is also IFF_NOFILTER here: for an attach the kernel reads
	// it as "do not give this queue the device's socket filter". The device
	// has queues, so the kernel ignores the framing bits either way.
	req := d.flags & (FlagTUN | FlagTAP | FlagNoPI | FlagVnetHdr | FlagMultiQueue)
	if err := d.attachQueueLocked(ref, fd, func() error { return setIFF(fd, name, req) }); err != nil {
		unix.Close(fd)
		return nil, asOpError("TUNSETIFF", name, explainSetIFF(err, false))
	}
	q := newQueue(d, fd, name)
	d.queues = append(d.queues, q)
	return q, nil
}

// SetPersist sets or clears IFF_PERSIST (TUNSETPERSIST). A persistent device
// outlives its last queue fd and can be reattached later with Open; clearing
// persistence on a device with no queue left does not remove it (use
// rtnetlink for that), but closing its last queue then does. Any holder of
// an attached queue may call it: the kernel checked permission when the queue
// attached.
func (d *Device) SetPersist(on bool) error {
	v := 0
	if on {
		v = 1
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.ioctlIntLocked("TUNSETPERSIST", unix.TUNSETPERSIST, v); err != nil {
		return err
	}
	if on {
		d.flags |= FlagPersist
	} else {
		d.flags &^= FlagPersist
	}
	return nil
}

// SetOwner sets the uid that may attach to the device without CAP_NET_ADMIN
// (TUNSETOWNER). When both an owner and a group are set, the kernel requires
// both to match. uid is taken in the caller's user namespace.
//
// The spelling SetOwner(-1) is meant to clear the owner, but the kernel
// refuses it with EINVAL (it rejects the invalid uid -1, 0xFFFFFFFF): once
// set, an owner can only be replaced, not cleared. Values outside
// [-1, 0xFFFFFFFF] fail with EINVAL without reaching the kernel, which would
// otherwise silently truncate them to 32 bits.
func (d *Device) SetOwner(uid int) error {
	return d.setID("TUNSETOWNER", unix.TUNSETOWNER, uid, "owner")
}

// SetGroup sets the gid whose members may attach to the device without
// CAP_NET_ADMIN (TUNSETGROUP). It behaves like SetOwner, including the
// kernel's refusal of -1.
func (d *Device) SetGroup(gid int) error {
	return d.setID("TUNSETGROUP", unix.TUNSETGROUP, gid, "group")
}

func (d *Device) setID(op string, req uint, id int, what string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id < -1 || int64(id) > math.MaxUint32 {
		return &OpError{Op: op, Name: d.name, Err: fmt.Errorf("%w (%s %d does not fit a 32-bit id)", unix.EINVAL, what, id)}
	}
	err := d.ioctlIntLocked(op, req, id)
	if oe, ok := err.(*OpError); ok && oe.Err == unix.EINVAL && (id == -1 || int64(id) == math.MaxUint32) {
		oe.Err = fmt.Errorf("%w (the kernel refuses -1: once set, the %s cannot be cleared)", unix.EINVAL, what)
	}
	return err
}

func (d *Device) ioctlIntLocked(op string, req uint, v int) error {
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: op, Name: d.name, Err: os.ErrClosed}
	}
	if err := unix.IoctlSetInt(fd, req, v); err != nil {
		return &OpError{Op: op, Name: d.name, Err: err}
	}
	return nil
}

// anyFDLocked returns the fd of some open queue, or -1. The ioctls it serves
// act on the device, so any of its queues will do, detached ones included.
func (d *Device) anyFDLocked() int {
	for _, q := range d.queues {
		if fd := q.fd.Load(); fd >= 0 {
			return int(fd)
		}
	}
	return -1
}

// Close closes every queue fd the Device holds. A device that is not
// persistent then disappears from the system, unless another process still
// holds a queue of it. Close is idempotent: later calls return nil. It must
// not race with Read or Write on the queues (see Queue).
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, q := range d.queues {
		if err := q.closeLocked(); err != nil {
			errs = append(errs, err)
		}
	}
	d.queues = nil
	return errors.Join(errs...)
}

// Fd returns the queue's fd, or -1 once it is closed. The Queue keeps
// ownership: do not close it, and do not change its flags.
func (q *Queue) Fd() int { return int(q.fd.Load()) }

// Attach re-enables a detached queue (TUNSETQUEUE with IFF_ATTACH_QUEUE) so
// the kernel sends it packets again. A queue that is not detached gives an
// error wrapping unix.EINVAL.
func (q *Queue) Attach() error { return q.setQueue(true) }

// Detach disables the queue (TUNSETQUEUE with IFF_DETACH_QUEUE): the fd stays
// open, the kernel stops steering packets to it and drops what it had
// queued. Only multi-queue devices can detach queues, and each queue once:
// otherwise the error wraps unix.EINVAL. Detaching every queue is allowed;
// the device then stays, without carrier, and drops what it would send.
func (q *Queue) Detach() error { return q.setQueue(false) }

func (q *Queue) setQueue(attach bool) error {
	op, flag := "TUNSETQUEUE detach", FlagDetachQueue
	if attach {
		op, flag = "TUNSETQUEUE attach", FlagAttachQueue
	}
	d := q.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := q.fd.Load()
	if fd < 0 {
		return &OpError{Op: op, Name: q.name, Err: os.ErrClosed}
	}
	ifr, err := unix.NewIfreq("") // TUNSETQUEUE reads only ifr_flags
	if err != nil {
		return &OpError{Op: op, Name: q.name, Err: err}
	}
	ifr.SetUint16(uint16(flag))
	setq := func() error { return unix.IoctlIfreq(int(fd), unix.TUNSETQUEUE, ifr) }
	if attach {
		err = d.attachQueueLocked(d.anyFDLocked(), int(fd), setq)
	} else {
		err = setq()
	}
	if err != nil {
		if err == unix.EINVAL {
			switch {
			case d.flags&FlagMultiQueue == 0:
				err = fmt.Errorf("%w (device is not multi-queue)", err)
			case attach:
				err = fmt.Errorf("%w (queue is not detached)", err)
			default:
				err = fmt.Errorf("%w (queue is already detached)", err)
			}
		}
		return asOpError(op, q.name, err)
	}
	return nil
}

// Close closes the queue's fd and removes it from its Device's Queues. The
// device disappears with its last queue unless it is persistent. Close is
// idempotent and must not race with Read or Write on this queue.
func (q *Queue) Close() error {
	d := q.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := slices.Index(d.queues, q); i >= 0 {
		d.queues = slices.Delete(d.queues, i, i+1)
	}
	return q.closeLocked()
}

func (q *Queue) closeLocked() error {
	fd := q.fd.Swap(-1)
	if fd < 0 {
		return nil
	}
	if err := unix.Close(int(fd)); err != nil {
		return &OpError{Op: "close", Name: q.name, Err: err}
	}
	return nil
}

// Read reads one packet into b with a single non-blocking read(2) on the raw
// fd and returns its length. With Config.PacketInfo the packet starts with
// the PI header; if b is too short the kernel truncates the packet (and flags
// it in the PI header, when there is one) and the rest is lost, so use a
// buffer of at least the MTU plus headers. A b with no byte beyond the
// headers (an empty one, or just the PI or virtio-net header when the
// device is known to have it) is refused with an error wrapping
// unix.EINVAL, nothing read: a read(2) of 0 bytes takes no packet.
//
// When no packet is waiting it returns an *OpError wrapping unix.EAGAIN
// (errors.Is(err, unix.EAGAIN) is true); wait for the fd to become readable
// and try again. Read does not allocate, and b is not retained. Safe to call
// concurrently with other methods, except Close (see Queue).
func (q *Queue) Read(b []byte) (int, error) {
	fd := q.fd.Load()
	if fd < 0 {
		return 0, q.errReadClosed
	}
	if len(b) <= q.hdr {
		return 0, q.errNoRoom("read", len(b))
	}
	n, err := unix.Read(int(fd), b)
	if err != nil {
		if err == unix.EAGAIN {
			return 0, q.errReadAgain
		}
		return 0, &OpError{Op: "read", Name: q.name, Err: err}
	}
	return n, nil
}

// Write sends one packet, b, into the kernel as if it had arrived on the
// interface, with a single non-blocking write(2). With Config.PacketInfo b
// must start with the PI header (see PIHeaderFor). The kernel rejects a
// malformed packet (for example a TUN packet whose version nibble is neither
// 4 nor 6, without the PI header) with an error wrapping unix.EINVAL; an
// empty packet (b empty, or the known headers alone) is refused the same
// way before the kernel sees it. Write
// does not allocate on success or EAGAIN, and b is not retained. Safe to call
// concurrently with other methods, except Close (see Queue).
func (q *Queue) Write(b []byte) (int, error) {
	fd := q.fd.Load()
	if fd < 0 {
		return 0, q.errWriteClosed
	}
	if len(b) <= q.hdr {
		return 0, q.errNoRoom("write", len(b))
	}
	n, err := unix.Write(int(fd), b)
	if err != nil {
		if err == unix.EAGAIN {
			return 0, q.errWriteAgain
		}
		return 0, &OpError{Op: "write", Name: q.name, Err: err}
	}
	return n, nil
}

// openClone opens the clone device at path ("" for the default).
func openClone(path string) (int, error) {
	if path == "" {
		path = cloneDevice
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		switch err {
		case unix.ENOENT, unix.ENODEV, unix.ENXIO:
			if path == cloneDevice { // a path of the caller's is more likely wrong
				err = fmt.Errorf("%w (is the tun driver available? modprobe tun)", err)
			}
		case unix.EACCES, unix.EPERM:
			err = fmt.Errorf("%w (%s is not open to this user; it is often mode 0600)", err, path)
		}
		return -1, &OpError{Op: "open " + path, Err: err}
	}
	return fd, nil
}

func setIFF(fd int, name string, flags Flags) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(uint16(flags))
	return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
}

func getIFF(fd int) (string, Flags, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		return "", 0, err
	}
	return ifr.Name(), Flags(ifr.Uint16()), nil
}

// explainSetIFF adds the likely reason to the errnos TUNSETIFF uses for
// several conditions, keeping the errno wrapped for errors.Is.
func explainSetIFF(err error, exclusive bool) error {
	var why string
	switch err {
	case unix.EBUSY:
		why = "a single-queue device of this name already has a queue attached"
		if exclusive {
			why = "an interface of this name already exists and Exclusive is set"
		}
	case unix.EINVAL:
		why = "an interface of this name exists but is not a TUN/TAP device of the requested type and queue mode"
	case unix.EPERM:
		why = "creating needs CAP_NET_ADMIN; attaching needs CAP_NET_ADMIN or the device's owner uid and group"
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, why)
}

func explainAdopt(err error) error {
	var why string
	switch err {
	case unix.EBADFD:
		why = "a " + cloneDevice + " fd that was never bound to an interface with TUNSETIFF"
	case unix.ENOTTY, unix.EINVAL:
		why = "not a TUN/TAP fd"
	case unix.EBADF:
		why = "not an open fd"
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, why)
}

// checkSameNetns fails if the calling thread, which must be locked, is not
// in the network namespace of the device behind fd. It gives up silently
// (returns nil) when it cannot tell: TUNGETDEVNETNS needs Linux 5.2 and
// CAP_NET_ADMIN over the device's namespace.
func checkSameNetns(fd int) error {
	nsfd, err := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS)
	if err != nil {
		return nil
	}
	defer unix.Close(nsfd)
	var dev, self unix.Stat_t
	if unix.Fstat(nsfd, &dev) != nil || unix.Stat("/proc/thread-self/ns/net", &self) != nil {
		return nil
	}
	if dev.Dev != self.Dev || dev.Ino != self.Ino {
		return errors.New("the calling thread is in another network namespace than the device; " +
			"TUNSETIFF would look the name up there, so call AddQueue from the device's namespace")
	}
	return nil
}

// SetOffload tells the kernel which offloads the reader of this device
// takes on (TUNSETOFFLOAD); the device must have the virtio-net header
// (Config.VnetHdr). Every TSO or USO flag needs OffloadCsum. A kernel
// that does not know a flag refuses the whole set with EINVAL (USO4 and
// USO6 before Linux 6.2): retry without it. Offloads are per device, for
// every queue. Safe from any goroutine.
func (d *Device) SetOffload(o Offload) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flags&FlagVnetHdr == 0 {
		return &OpError{Op: "TUNSETOFFLOAD", Name: d.name, Err: fmt.Errorf("%w: offloads need the virtio-net header (Config.VnetHdr)", unix.EINVAL)}
	}
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: "TUNSETOFFLOAD", Name: d.name, Err: os.ErrClosed}
	}
	// The vnet package encodes the header little-endian, as virtio 1.0
	// does; a big-endian host must say so to the kernel first, or refuse.
	if err := prepareVnetOrder(fd, d.name); err != nil {
		return err
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(o)); err != nil {
		return &OpError{Op: "TUNSETOFFLOAD " + o.String(), Name: d.name, Err: err}
	}
	return nil
}
