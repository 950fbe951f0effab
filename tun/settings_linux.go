//go:build linux

package tun

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The rest of the tun driver's ioctls (drivers/net/tun.c, __tun_chr_ioctl).
// They act on the device (struct tun_struct), not on the queue they are
// issued through, so they are Device methods and use any open queue. Two
// exceptions: TUNGETSNDBUF reads the queue's own socket (Queue.SendBuffer),
// and TUNSETIFINDEX is a property of a fresh fd before TUNSETIFF
// (Config.Index, applied by Open). None needs CAP_NET_ADMIN: holding an
// attached queue is the permission, checked when the queue attached.

// SetSendBuffer limits how many bytes of packets written into the device
// may be in flight at once, per queue (TUNSETSNDBUF). It sets the send
// buffer (sk_sndbuf) of the socket behind each queue attached now and
// remembers the value in the device.
//
// What it limits: a write allocates its packet against the queue's
// socket (sock_alloc_send_pskb in tun_get_user), and the packet's memory
// stays charged to that socket until the kernel frees the packet. Most
// packets are freed, or released from the socket, within the write itself
// (the IP layer orphans every packet it receives), so the limit only bites
// when written packets are held downstream: a TAP frame bridged to a port
// whose queueing discipline holds it, for example. Once the charged bytes
// reach the limit, a write on a non-blocking queue (the package's default)
// fails with an error wrapping unix.EAGAIN, a blocking one waits, and the
// fd stops polling writable until the charge falls below half the limit.
// The first write always goes through, however large.
//
// The kernel's quirks, as of Linux 6.18: the value reaches only the queues
// attached when it is set; a queue attached later (AddQueue, or Open of the
// same name) starts unlimited, and a detached queue keeps what it had (read
// it back with Queue.SendBuffer). Any value other than SendBufferUnlimited
// also turns off the TAP fast path that builds small packets in place
// (tun_can_build_skb), so writes are slightly more expensive.
// SetSendBuffer(SendBufferUnlimited) restores the default.
//
// bytes must be in [1, SendBufferUnlimited]; anything else fails with
// unix.EINVAL before any ioctl. Safe from any goroutine.
func (d *Device) SetSendBuffer(bytes int) error {
	if bytes <= 0 || bytes > SendBufferUnlimited {
		return &OpError{Op: "TUNSETSNDBUF", Name: d.Name(), Err: fmt.Errorf("%w (send buffer %d bytes, want 1 to %d)", unix.EINVAL, bytes, SendBufferUnlimited)}
	}
	return d.ioctlPtrInt("TUNSETSNDBUF", unix.TUNSETSNDBUF, bytes)
}

// SendBuffer reports the send buffer of this queue's socket in bytes
// (TUNGETSNDBUF): SendBufferUnlimited unless Device.SetSendBuffer set
// another value while the queue was attached. Safe from any goroutine.
func (q *Queue) SendBuffer() (int, error) {
	d := q.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := q.fd.Load()
	if fd < 0 {
		return 0, &OpError{Op: "TUNGETSNDBUF", Name: q.name, Err: os.ErrClosed}
	}
	v, err := unix.IoctlGetUint32(int(fd), unix.TUNGETSNDBUF)
	if err != nil {
		return 0, &OpError{Op: "TUNGETSNDBUF", Name: q.name, Err: err}
	}
	return int(int32(v)), nil
}

// SetTxFilter installs f as the TAP device's destination-MAC allow-list
// (TUNSETTXFILTER; see TxFilter for what passes), replacing the previous
// one. The zero TxFilter removes the filter, as ClearTxFilter does.
//
// The filter belongs to the device: it applies to every queue, for every
// process holding one, until replaced or the device is destroyed. It sees
// only the frames the host sends into the device (what queues read), never
// what they write. A TUN device has no MAC addresses: the kernel refuses
// with unix.EINVAL. An invalid f (an address that is not 6 bytes, a unicast
// address after the first TxFilterExact, more than 65535 addresses,
// AllMulti without addresses) fails with unix.EINVAL before any ioctl.
// Safe from any goroutine.
func (d *Device) SetTxFilter(f TxFilter) error {
	b, err := f.marshal()
	if err != nil {
		return &OpError{Op: "TUNSETTXFILTER", Name: d.Name(), Err: fmt.Errorf("%w: %w", unix.EINVAL, err)}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: "TUNSETTXFILTER", Name: d.name, Err: os.ErrClosed}
	}
	// The kernel reads the 4-byte header and then count*6 bytes after it
	// from the same pointer; it returns the number of exact entries.
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNSETTXFILTER), uintptr(unsafe.Pointer(&b[0]))); errno != 0 {
		return &OpError{Op: "TUNSETTXFILTER", Name: d.name, Err: d.explainTAPOnly(errno, "TX filters, which match Ethernet destination addresses")}
	}
	return nil
}

// ClearTxFilter removes the TAP device's TX filter, so every frame reaches
// the queues again. It succeeds when no filter is set. Safe from any
// goroutine.
func (d *Device) ClearTxFilter() error { return d.SetTxFilter(TxFilter{}) }

// SetSocketFilter attaches prog, a classic BPF program, as the TAP device's
// socket filter (TUNATTACHFILTER, struct sock_fprog), replacing the one
// attached before, if any.
//
// What the kernel does with it (tun_net_xmit): for every frame the host
// sends into the device, after the TX filter and before the eBPF filter
// (SetFilterProgram), the program runs on the Ethernet frame, from its
// first byte. Its return value is a length: 0 drops the frame (counted in
// tx_dropped), anything smaller than the frame truncates it. Tools print
// programs in this form: `tcpdump -dd -y EN10MB 'not icmp'`.
//
// The kernel attaches it to the socket of every queue attached now, and
// keeps the program's address to attach it again to a queue that attaches
// later. On Linux 6.18 that re-attach is broken: tun_attach returns success
// as soon as the filter is on the new queue, without attaching the queue.
// AddQueue and Queue.Attach work around it while this Device has a filter
// (they lift the filter around the attach and then attach it to every
// queue, the new one included; frames sent in that instant pass
// unfiltered). Open of the same name is not covered: with PacketInfo it
// fails (TUNGETIFF: EBADFD), without it the joining queue simply has no
// filter, because IFF_NO_PI is also the bit that tells the kernel to skip
// it (IFF_NOFILTER). Because the kernel re-reads the program from the
// memory of the process that attached it, the Device keeps its copy until
// ClearSocketFilter or the next SetSocketFilter: clear the filter before
// closing a persistent device that others will attach to.
//
// Only TAP devices take socket filters: on TUN the kernel answers
// unix.EINVAL, as it does for a program that fails its checker. An empty
// program or one longer than 4096 instructions fails with unix.EINVAL
// before any ioctl. Safe from any goroutine.
func (d *Device) SetSocketFilter(prog []BPFInstruction) error {
	b, err := marshalBPF(prog)
	if err != nil {
		return &OpError{Op: "TUNATTACHFILTER", Name: d.Name(), Err: fmt.Errorf("%w: %w", unix.EINVAL, err)}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: "TUNATTACHFILTER", Name: d.name, Err: os.ErrClosed}
	}
	fp := sockFprog(b)
	if err := ioctlPtr(fd, unix.TUNATTACHFILTER, unsafe.Pointer(&fp)); err != nil {
		if err == unix.EINVAL && d.flags&FlagTAP != 0 {
			return &OpError{Op: "TUNATTACHFILTER", Name: d.name, Err: fmt.Errorf("%w (the kernel's checker refused the %d-instruction program)", err, len(prog))}
		}
		return &OpError{Op: "TUNATTACHFILTER", Name: d.name, Err: d.explainTAPOnly(err, "socket filters, which see Ethernet frames")}
	}
	d.sockFilter = b // the kernel holds its address (see above)
	return nil
}

// ClearSocketFilter detaches the classic BPF socket filter from every
// attached queue of the TAP device (TUNDETACHFILTER), so frames reach the
// queues unfiltered again. The kernel accepts it when no filter is
// attached; on a TUN device it answers unix.EINVAL. Safe from any
// goroutine.
func (d *Device) ClearSocketFilter() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: "TUNDETACHFILTER", Name: d.name, Err: os.ErrClosed}
	}
	// The kernel copies a struct sock_fprog for this request number too
	// but ignores it.
	var fp unix.SockFprog
	if err := ioctlPtr(fd, unix.TUNDETACHFILTER, unsafe.Pointer(&fp)); err != nil {
		return &OpError{Op: "TUNDETACHFILTER", Name: d.name, Err: d.explainTAPOnly(err, "socket filters")}
	}
	d.sockFilter = nil
	return nil
}

// sockFprog is struct sock_fprog { unsigned short len; struct sock_filter
// *filter; } for the instructions marshalBPF encoded in b.
func sockFprog(b []byte) unix.SockFprog {
	return unix.SockFprog{Len: uint16(len(b) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&b[0]))}
}

// SetCarrier turns the device's carrier on or off (TUNSETCARRIER), as a
// cable being plugged in or pulled out would. Without carrier the link
// shows NO-CARRIER with operstate DOWN even when it is administratively
// up; addresses and routes stay, and the kernel marks the routes through it
// linkdown. Packets the host would send into the device are dropped.
//
// The kernel turns the carrier on by itself whenever TUNSETIFF attaches a
// queue (Open, AddQueue), and off when the last queue closes. Turning it
// on fails with unix.EPERM while no queue is attached (all detached). Safe
// from any goroutine.
func (d *Device) SetCarrier(on bool) error {
	v := 0
	if on {
		v = 1
	}
	err := d.ioctlPtrInt("TUNSETCARRIER", unix.TUNSETCARRIER, v)
	if oe, ok := err.(*OpError); ok && oe.Err == unix.EPERM && on {
		oe.Err = fmt.Errorf("%w (no queue is attached: carrier needs a reader)", unix.EPERM)
	}
	return err
}

// SetVnetHdrSize sets how many bytes the virtio-net header takes in front
// of every packet read or written (TUNSETVNETHDRSZ). The kernel fills in
// the first VnetHdrSizeMin (10) bytes, struct virtio_net_hdr; on a read it
// zeroes the rest (Linux 6.18; older kernels left those bytes of the
// buffer as they were), on a write it ignores them. 12 is the size of
// struct virtio_net_hdr_mrg_rxbuf, the usual other choice. The size is the
// device's, for every queue; it matters only with Config.VnetHdr, so a
// device without it is refused with unix.EINVAL.
//
// n below VnetHdrSizeMin is refused with unix.EINVAL, as the kernel would
// (checked here first so the error can say why); so is n above MaxInt32.
// Safe from any goroutine.
func (d *Device) SetVnetHdrSize(n int) error {
	if n < VnetHdrSizeMin || n > math.MaxInt32 {
		return &OpError{Op: "TUNSETVNETHDRSZ", Name: d.Name(), Err: fmt.Errorf("%w (virtio-net header size %d, want %d to %d)", unix.EINVAL, n, VnetHdrSizeMin, math.MaxInt32)}
	}
	if d.Flags()&FlagVnetHdr == 0 {
		return &OpError{Op: "TUNSETVNETHDRSZ", Name: d.Name(), Err: fmt.Errorf("%w: the device has no virtio-net header (Config.VnetHdr)", unix.EINVAL)}
	}
	return d.ioctlPtrInt("TUNSETVNETHDRSZ", unix.TUNSETVNETHDRSZ, n)
}

// VnetHdrSize reports the device's virtio-net header size in bytes
// (TUNGETVNETHDRSZ): VnetHdrSizeMin unless SetVnetHdrSize changed it. It
// is reported whether or not the device uses the header. Safe from any
// goroutine.
func (d *Device) VnetHdrSize() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return 0, &OpError{Op: "TUNGETVNETHDRSZ", Name: d.name, Err: os.ErrClosed}
	}
	v, err := unix.IoctlGetUint32(fd, unix.TUNGETVNETHDRSZ)
	if err != nil {
		return 0, &OpError{Op: "TUNGETVNETHDRSZ", Name: d.name, Err: err}
	}
	return int(int32(v)), nil
}

// SetLinkType sets the device's hardware type, the ARPHRD_* value that
// `ip link` shows as link/ether, link/none and so on (TUNSETLINK), and the
// address length that goes with it. It is meant for TAP devices that carry
// something other than Ethernet (for example unix.ARPHRD_IEEE80211_RADIOTAP
// for captured Wi-Fi frames); the kernel allows it on TUN devices too. The
// framing of the packets does not change: only what the rest of the system
// (packet sockets, tcpdump, neighbour tables) assumes about it.
//
// The kernel takes any value (ip prints an unknown one as [N]) and allows
// the change only while the link is administratively down: on an up link
// it fails with unix.EBUSY. Something that cares about the type (a
// bridge or bond the device is part of) may veto it. Safe from any
// goroutine.
func (d *Device) SetLinkType(arphrd uint16) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: "TUNSETLINK", Name: d.name, Err: os.ErrClosed}
	}
	// TUNSETLINK takes its argument by value, not through a pointer.
	if err := unix.IoctlSetInt(fd, unix.TUNSETLINK, int(arphrd)); err != nil {
		if err == unix.EBUSY {
			err = fmt.Errorf("%w (the link is up: the type can change only while it is down)", err)
		}
		return &OpError{Op: fmt.Sprintf("TUNSETLINK %d", arphrd), Name: d.name, Err: err}
	}
	return nil
}

// setIfindex asks, on a fresh /dev/net/tun fd that TUNSETIFF has not bound
// yet, that the device it creates get interface index index
// (TUNSETIFINDEX). The kernel stores it in the fd and uses it only when
// TUNSETIFF creates a device; after TUNSETIFF the ioctl fails with EPERM.
func setIfindex(fd int, cfg Config) error {
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETIFINDEX, cfg.Index); err != nil {
		return &OpError{Op: "TUNSETIFINDEX", Name: cfg.Name, Err: err}
	}
	return nil
}

// checkIndex validates Config.Index before any syscall.
func checkIndex(cfg Config) error {
	if cfg.Index < 0 || cfg.Index > math.MaxInt32 {
		return &OpError{Op: "TUNSETIFINDEX", Name: cfg.Name, Err: fmt.Errorf("%w (interface index %d, want 1 to %d, or 0 to let the kernel choose)", unix.EINVAL, cfg.Index, math.MaxInt32)}
	}
	return nil
}

// explainIndexBusy tells apart the two reasons TUNSETIFF gives EBUSY when
// Config.Index is set: the name exists (Open then refuses to attach,
// because the index could not apply) or the index is taken. It asks the
// kernel, through a socket opened in the calling thread's namespace, which
// interface holds the index.
func explainIndexBusy(err error, cfg Config) error {
	if err != unix.EBUSY || cfg.Index == 0 {
		return err
	}
	if holder, ok := ifaceByIndex(cfg.Index); ok {
		return fmt.Errorf("%w (interface index %d is taken by %s)", err, cfg.Index, holder)
	}
	if cfg.Name == "" || strings.Contains(cfg.Name, "%") {
		return fmt.Errorf("%w (interface index %d or the name is taken)", err, cfg.Index)
	}
	return fmt.Errorf("%w (an interface named %s already exists; Config.Index applies only when Open creates the device)", err, cfg.Name)
}

// ifaceByIndex returns the name of the interface with the given index in
// the calling thread's network namespace (SIOCGIFNAME).
func ifaceByIndex(index int) (string, bool) {
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", false
	}
	ifr.SetUint32(uint32(index))
	if unix.IoctlIfreq(s, unix.SIOCGIFNAME, ifr) != nil {
		return "", false
	}
	return ifr.Name(), true
}

// ioctlPtrInt runs an ioctl that reads an int through a pointer on any open
// queue of the device.
func (d *Device) ioctlPtrInt(op string, req uint, v int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fd := d.anyFDLocked()
	if fd < 0 {
		return &OpError{Op: op, Name: d.name, Err: os.ErrClosed}
	}
	if err := unix.IoctlSetPointerInt(fd, req, v); err != nil {
		return &OpError{Op: op, Name: d.name, Err: err}
	}
	return nil
}

// explainTAPOnly adds the reason to the EINVAL the kernel gives for a TAP-only
// ioctl on a TUN device.
func (d *Device) explainTAPOnly(err error, what string) error {
	if errors.Is(err, unix.EINVAL) && d.flags&FlagTAP == 0 {
		return fmt.Errorf("%w (this is a TUN device; only TAP devices take %s)", err, what)
	}
	return err
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// attachQueueLocked runs attach, the ioctl that attaches the queue behind
// fd (TUNSETIFF for AddQueue, TUNSETQUEUE for Queue.Attach), around a bug in
// the kernel's tun_attach (present in Linux 6.18): when the device has a
// classic socket filter and the new queue does not ask to skip it, the
// kernel attaches the filter to the queue and then returns success without
// attaching the queue itself. TUNSETIFF then leaves an fd bound to nothing
// (EBADFD on every later call), TUNSETQUEUE a queue still detached. So while
// this Device has a filter, it is detached from the device around the
// attach and attached again to every queue afterwards (frames sent in that
// window are not filtered). In every case the queue is checked afterwards
// with TUNGETIFF, which catches the bug when another holder attached the
// filter. ref is any open queue of the device. The result is attach's error
// as is, or an *OpError.
func (d *Device) attachQueueLocked(ref, fd int, attach func() error) error {
	lifted := d.sockFilter != nil && ref >= 0
	if lifted {
		var none unix.SockFprog
		if err := ioctlPtr(ref, unix.TUNDETACHFILTER, unsafe.Pointer(&none)); err != nil {
			return &OpError{Op: "TUNDETACHFILTER", Name: d.name, Err: fmt.Errorf("lifting the socket filter to attach a queue: %w", err)}
		}
	}
	err := attach()
	if lifted {
		fp := sockFprog(d.sockFilter)
		if ferr := ioctlPtr(ref, unix.TUNATTACHFILTER, unsafe.Pointer(&fp)); ferr != nil && err == nil {
			d.sockFilter = nil
			return &OpError{Op: "TUNATTACHFILTER", Name: d.name, Err: fmt.Errorf("restoring the socket filter after attaching a queue: %w (the device is now unfiltered)", ferr)}
		}
	}
	if err != nil {
		return err
	}
	if _, flags, gerr := getIFF(fd); gerr != nil || flags&FlagDetachQueue != 0 {
		return &OpError{Op: "attach queue", Name: d.name, Err: fmt.Errorf("%w: the kernel reported success but did not attach the queue "+
			"(tun_attach gives up once it has re-attached a socket filter; another holder of the device attached one: "+
			"it must detach it with TUNDETACHFILTER first)", unix.EBADFD)}
	}
	return nil
}

// asOpError wraps err as an *OpError for op unless it is one already.
func asOpError(op, name string, err error) error {
	if oe, ok := err.(*OpError); ok {
		return oe
	}
	return &OpError{Op: op, Name: name, Err: err}
}
