package tundra

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/vnet"
	"golang.org/x/sys/unix"
)

// ReadyFunc is a queue's readiness callback (Tundra's
// {:"$socket", dev, :select, handle}). It runs on the owning loop's thread,
// once per arming: an I/O call that returns ErrWouldBlock arms it.
type ReadyFunc func(q *Queue, ev loop.Events)

// Queue is one file descriptor of a device. Attached to a loop, it is
// owned by that loop: its I/O methods are loop-only and return ErrNotOwner
// anywhere else, a check that costs no system call. Buffers given to the
// I/O methods are the caller's again when the call returns.
type Queue struct {
	dev     *Device
	fd      int
	framer  loop.Framer  // nil without a per-packet header
	closeFD func() error // releases the descriptor
	vn      vnetState    // the offload path, when the device has offloads

	p atomic.Pointer[loop.PacketFD] // nil until attached
	// codec is the virtio-net codec of a queue with offloads, made at the
	// first Attach; its state is the attached PacketFD's (loop-only).
	codec *vnet.Codec
	// keepFD makes the PacketFD's close leave the descriptor open: an
	// Attach rolled back (detach) leaves the queue unattached, not closed.
	keepFD atomic.Bool

	// mu orders Attach and Close; it is never held while waiting for a
	// loop, so a loop callback can always take it.
	mu     sync.Mutex
	closed bool
}

// Device is the device the queue belongs to.
func (q *Queue) Device() *Device { return q.dev }

// Fd is the queue's file descriptor. The queue keeps ownership.
func (q *Queue) Fd() int { return q.fd }

// HeaderLen is the per-packet header this queue carries (the PI header,
// or the virtio-net header of a device with offloads); RecvBatch and
// SendBatch need at least this much headroom.
func (q *Queue) HeaderLen() int {
	if q.offloads() {
		return vnet.HeaderLen
	}
	if q.framer == nil {
		return 0
	}
	return q.framer.HeaderLen()
}

// Attach gives the queue to loop l: see Device.Attach. It fails if the
// queue is closed or already attached (use Handoff to move it). Safe from
// any goroutine.
func (q *Queue) Attach(l *loop.Loop, onReady ReadyFunc) error {
	if onReady == nil {
		return &Error{Op: "attach", Name: q.dev.name, Arg: "onReady", Err: invalid{errorString("nil callback")}}
	}
	q.mu.Lock()
	framer := q.framer
	if q.offloads() {
		// The offload path is the loop's, through the virtio-net codec.
		if q.codec == nil {
			q.codec = vnet.NewCodec(q.vn.co)
		}
		framer = q.codec
	}
	q.mu.Unlock()
	p, err := loop.NewPacketFD(q.fd, loop.PacketConfig{
		Framer:  framer,
		OnReady: q.adapt(onReady),
		Close:   q.closePacket,
	})
	if err != nil {
		return &Error{Op: "attach", Name: q.dev.name, Err: err}
	}
	// Publish the PacketFD before attaching: the first callback can run
	// before Attach returns, and its I/O goes through q.p.
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return &Error{Op: "attach", Name: q.dev.name, Err: loop.ErrClosed}
	case q.p.Load() != nil:
		q.mu.Unlock()
		return &Error{Op: "attach", Name: q.dev.name, Err: errorString("already attached to a loop (use Handoff)")}
	}
	q.p.Store(p)
	q.mu.Unlock()
	if err := p.Attach(l); err != nil {
		// Unattached again, unless a Close meanwhile took p with it.
		q.mu.Lock()
		if !q.closed {
			q.p.Store(nil)
		}
		q.mu.Unlock()
		return &Error{Op: "attach", Name: q.dev.name, Err: err}
	}
	return nil
}

// adapt turns a ReadyFunc into the loop's callback, once per attach.
func (q *Queue) adapt(onReady ReadyFunc) loop.ReadyFunc {
	return func(_ *loop.PacketFD, ev loop.Events) { onReady(q, ev) }
}

// offloads reports whether the queue reads and writes the virtio-net
// header (the device was created with offloads the kernel agreed to).
func (q *Queue) offloads() bool { return q.vn.co != nil }

// closePacket is the PacketFD's Close: it closes the descriptor, unless an
// Attach is being rolled back.
func (q *Queue) closePacket() error {
	if q.keepFD.Load() {
		return nil
	}
	return q.closeFD()
}

// detach undoes an Attach that a multi-queue Attach must roll back: the
// descriptor leaves the loop without being closed.
func (q *Queue) detach() {
	q.mu.Lock()
	p := q.p.Swap(nil)
	if p != nil {
		q.keepFD.Store(true)
	}
	q.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.Close() // closes the PacketFD, not the descriptor (keepFD)
	q.keepFD.Store(false)
}

// Loop is the owning loop, or nil when unattached (or while handed off).
func (q *Queue) Loop() *loop.Loop {
	if p := q.p.Load(); p != nil {
		return p.Loop()
	}
	return nil
}

// Recv reads one packet into b and returns its length, without the PI
// header if the device has one. b should hold the MTU: the kernel
// truncates a longer packet. An empty b is refused (ErrInvalidArgument,
// nothing read or counted): a read of 0 bytes takes no packet. With no
// packet waiting (or this round's budget spent) it returns ErrWouldBlock
// and arms the readiness callback. Loop-only.
func (q *Queue) Recv(b []byte) (int, error) {
	if q.offloads() {
		return 0, errRecvOffloads
	}
	p := q.p.Load()
	if p == nil {
		return 0, errNotAttached
	}
	n, err := p.Recv(b)
	if loopRefused(err) && len(b) == 0 {
		return 0, q.noRoom("recv", 0, 0, 0)
	}
	return n, err
}

// RecvBatch reads up to len(bufs) packets, packet i into bufs[i][offset:]
// with its length in sizes[i]; offset must leave room for HeaderLen bytes,
// where the header lands. Fewer than len(bufs) packets with a nil error
// means the queue ran dry or the round's budget was spent, and the
// callback is armed either way. It never returns packets and an error
// together. A buffer with no byte after offset is refused before anything
// is read, with an error wrapping ErrInvalidArgument that names its index.
//
// With offloads each buffer must hold offset+MaxPacket: a super-packet is
// read whole into one and split into the ones after it. One with more
// segments than the buffers left is kept and handed out over the next
// calls (the callback runs again), never dropped. Loop-only.
func (q *Queue) RecvBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	p := q.p.Load()
	if p == nil {
		return 0, errNotAttached
	}
	n, err := p.RecvBatch(bufs, sizes, offset)
	if loopRefused(err) {
		// The loop refused an argument before reading anything; said here
		// in this package's terms. Looked for only on this path, so that
		// the packet path pays nothing for it.
		if rerr := q.refusedRecv(bufs, sizes, offset); rerr != nil {
			return 0, rerr
		}
	}
	return n, err
}

// refusedRecv names the RecvBatch argument the loop refused, or returns
// nil if none is at fault (the kernel's EINVAL).
func (q *Queue) refusedRecv(bufs [][]byte, sizes []int, offset int) error {
	if hl := q.HeaderLen(); offset < hl {
		return &Error{Op: "recv", Name: q.dev.name, Arg: "offset", Err: invalid{fmt.Errorf("%d leaves no room for the %d-byte header", offset, hl)}}
	}
	if len(sizes) < len(bufs) {
		return &Error{Op: "recv", Name: q.dev.name, Arg: "sizes", Err: invalid{fmt.Errorf("%d sizes for %d buffers", len(sizes), len(bufs))}}
	}
	for i, b := range bufs {
		if len(b) <= offset {
			return q.noRoom("recv", i, len(b), offset)
		}
		if q.offloads() && len(b) < offset+MaxPacket {
			return &Error{Op: "recv", Name: q.dev.name, Arg: "bufs", Err: invalid{fmt.Errorf("buffer %d holds %d bytes: a queue with offloads needs offset+%d (%d) in each", i, len(b), MaxPacket, offset+MaxPacket)}}
		}
	}
	return nil
}

// Send writes one packet made of parts with a single writev and no copy;
// the PI header, if the device has one, goes in its own iovec, chosen from
// the packet's IP version (with offloads: a zero virtio-net header, so the
// kernel checks it as any packet). A packet of no byte is refused (an
// error wrapping ErrInvalidArgument). ErrWouldBlock arms Writable.
// Loop-only.
func (q *Queue) Send(parts ...[]byte) error {
	p := q.p.Load()
	if p == nil {
		return errNotAttached
	}
	err := p.Send(parts...)
	if loopRefused(err) && empty(parts) {
		return q.emptyPacket(len(parts)) // the loop's refusal, in this package's terms
	}
	return err
}

// SendBatch writes each bufs[i][offset:] as one packet, writing the header
// (if any) in place in the headroom before offset. It returns the number
// of packets written; with an error, bufs[n] is the packet that failed
// (ErrWouldBlock: retry later; another error: the kernel refused that
// packet, or it holds no byte after offset and wraps ErrInvalidArgument;
// skip it). With offloads, packets of one flow are merged into
// super-packets by the kernel's GRO rules and each written with one
// writev, payloads in place. Loop-only.
func (q *Queue) SendBatch(bufs [][]byte, offset int) (int, error) {
	p := q.p.Load()
	if p == nil {
		return 0, errNotAttached
	}
	n, err := p.SendBatch(bufs, offset)
	if loopRefused(err) && n < len(bufs) && len(bufs[n]) <= offset {
		return n, q.noRoom("send", n, len(bufs[n]), offset)
	}
	return n, err
}

// Cancel disarms the readiness callback for ev. The queue stays open and
// usable (Tundra's cancel/2 closed the device: not here). Loop-only.
func (q *Queue) Cancel(ev loop.Events) error {
	p := q.p.Load()
	if p == nil {
		return errNotAttached
	}
	return p.Cancel(ev)
}

// Notify arms the readiness callback for ev and has the loop check the
// queue in its next round. Loop-only.
func (q *Queue) Notify(ev loop.Events) error {
	p := q.p.Load()
	if p == nil {
		return errNotAttached
	}
	return p.Notify(ev)
}

// Handoff gives the queue to another loop, whose thread runs onReady from
// then on (Tundra's controlling_process/2). No packet is lost: they wait in
// the kernel's queue, and Readable is armed on the new loop. Nothing is
// delivered to the old owner afterwards. Loop-only (on the current owner).
func (q *Queue) Handoff(to *loop.Loop, onReady ReadyFunc) error {
	p := q.p.Load()
	if p == nil {
		return errNotAttached
	}
	if onReady == nil {
		return &Error{Op: "handoff", Name: q.dev.name, Arg: "onReady", Err: invalid{errorString("nil callback")}}
	}
	return p.Handoff(to, q.adapt(onReady))
}

// Close closes the queue, on its loop if attached. Idempotent; safe from
// any goroutine, and from the owning loop's callbacks.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	p := q.p.Load()
	q.mu.Unlock()
	if p != nil {
		return p.Close() // closes the descriptor, now or when an Attach in flight lands
	}
	return q.closeFD()
}

// noRoom refuses buffer i, which holds no byte of packet after offset:
// reading into it would take no packet, writing it would send none.
func (q *Queue) noRoom(op string, i, size, offset int) error {
	return &Error{Op: op, Name: q.dev.name, Arg: "bufs", Err: invalid{fmt.Errorf("buffer %d holds %d bytes, none after offset %d", i, size, offset)}}
}

// emptyPacket refuses a Send of no byte.
func (q *Queue) emptyPacket(parts int) error {
	return &Error{Op: "send", Name: q.dev.name, Arg: "parts", Err: invalid{fmt.Errorf("empty packet (%d parts, no byte)", parts)}}
}

// loopRefused reports whether err is the loop's refusal of an argument (or
// the kernel's EINVAL), the only errors that may be an empty buffer's:
// ownership and would-block errors come first and stay as they are.
func loopRefused(err error) bool {
	return err != nil && err != ErrWouldBlock && errors.Is(err, unix.EINVAL)
}

// empty reports whether parts hold no byte.
func empty(parts [][]byte) bool {
	for _, b := range parts {
		if len(b) > 0 {
			return false
		}
	}
	return true
}

type errorString string

func (e errorString) Error() string { return string(e) }
