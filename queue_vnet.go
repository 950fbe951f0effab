package tundra

import (
	"errors"
	"fmt"

	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/vnet"
)

// MaxPacket is the largest packet a queue with offloads hands over: a TCP
// or UDP super-packet of up to 64 KiB. RecvBatch on such a queue needs
// every buffer to hold offset+MaxPacket bytes.
const MaxPacket = 65535

// vnetState is the per-queue state of the offload path. It is touched only
// on the owning loop's thread.
type vnetState struct {
	co *vnet.Coalescer
	// pending is a super-packet already read from the kernel that did not
	// fit the buffers of the call that read it; the calls after it split
	// it first, from segment pendingNext on, as many segments as their
	// buffers hold. pending[:vnet.HeaderLen] is its virtio-net header.
	pending     []byte
	pendingLen  int
	pendingNext int
	// parts and zero build Send's writev without allocating; hdr holds
	// RecvGSO's and SendGSO's header, which on the stack would escape to
	// the heap through the iovec, once per packet.
	parts [][]byte
	zero  [vnet.HeaderLen]byte
	hdr   [vnet.HeaderLen]byte
	// deferred is an error met after packets were already read in the same
	// call: it is returned by the next call, so that packets and an error
	// never come back together.
	deferred error
}

// recvVnet is RecvBatch for a queue with the virtio-net header: each read
// brings one packet or super-packet, which Split turns into MTU-sized
// packets in the caller's buffers (the first in place).
func (q *Queue) recvVnet(bufs [][]byte, sizes []int, offset int) (int, error) {
	p := q.p.Load()
	if p == nil {
		return 0, errNotAttached
	}
	// q.vn is loop-only: check before touching it, not at the first read.
	if err := p.CheckOwner(); err != nil {
		return 0, err
	}
	if offset < vnet.HeaderLen {
		return 0, &Error{Op: "recv", Name: q.dev.name, Arg: "offset", Err: invalid{fmt.Errorf("%d leaves no room for the %d-byte virtio-net header", offset, vnet.HeaderLen)}}
	}
	if len(sizes) < len(bufs) {
		return 0, &Error{Op: "recv", Name: q.dev.name, Arg: "sizes", Err: invalid{fmt.Errorf("%d sizes for %d buffers", len(sizes), len(bufs))}}
	}
	// Every buffer up front: a super-packet is split into the buffers
	// after the one it was read into, and any of them may be its first.
	for i, b := range bufs {
		if len(b) < offset+MaxPacket {
			return 0, &Error{Op: "recv", Name: q.dev.name, Arg: "bufs", Err: invalid{fmt.Errorf("buffer %d holds %d bytes: a queue with offloads needs offset+%d (%d) in each", i, len(b), MaxPacket, offset+MaxPacket)}}
		}
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	if err := q.vn.deferred; err != nil {
		q.vn.deferred = nil
		return 0, err
	}
	n := 0
	if q.vn.pendingLen > 0 {
		k, err := q.splitPending(bufs, sizes, offset)
		if err != nil {
			return 0, err
		}
		n = k
	}
	// stop ends a call that read packets but must leave something (a
	// super-packet kept for later, an error) to the next one: the callback
	// is made to run again, since the descriptor was not drained.
	stop := func(err error) (int, error) {
		if n == 0 {
			return 0, err
		}
		q.vn.deferred = err
		p.Notify(loop.Readable)
		return n, nil
	}
	for n < len(bufs) {
		b := bufs[n]
		got, err := p.Recv(b[offset-vnet.HeaderLen:])
		if err != nil {
			if errors.Is(err, ErrWouldBlock) {
				if n > 0 {
					return n, nil // drained: armed
				}
				return 0, err
			}
			return stop(err)
		}
		h, err := vnet.DecodeHeader(b[offset-vnet.HeaderLen : offset])
		if err != nil {
			return stop(q.refused(err))
		}
		pkt := b[offset : offset-vnet.HeaderLen+got]
		k, err := vnet.Split(pkt, h, bufs[n:], sizes[n:], offset)
		if errors.Is(err, vnet.ErrNoRoom) {
			// Too many segments for the buffers left (every buffer holds
			// any segment: checked above): keep the super-packet, and hand
			// it out over as many calls as it takes, this one first if it
			// has read nothing else.
			q.stash(b[offset-vnet.HeaderLen : offset-vnet.HeaderLen+got])
			if n == 0 {
				return q.splitPending(bufs, sizes, offset)
			}
			p.Notify(loop.Readable)
			return n, nil
		}
		if err != nil {
			// The kernel handed a packet Split refuses (a header that lies):
			// it is dropped, and said so.
			return stop(q.refused(err))
		}
		bytes := 0
		for _, size := range sizes[n : n+k] {
			bytes += size
		}
		p.Account(k-1, bytes-got, 0, 0) // Recv counted one packet of got bytes
		n += k
	}
	return n, nil
}

// refused reports a packet from the kernel that the offload code would not
// take; it is dropped.
func (q *Queue) refused(err error) error {
	return &Error{Op: "recv", Name: q.dev.name, Err: fmt.Errorf("dropped a packet with a malformed virtio-net header: %w", err)}
}

func (q *Queue) stash(b []byte) {
	if cap(q.vn.pending) < len(b) {
		q.vn.pending = make([]byte, vnet.HeaderLen+MaxPacket)
	}
	q.vn.pendingLen = copy(q.vn.pending, b)
	q.vn.pendingNext = 0
}

// splitPending hands out the kept super-packet's next segments, as many as
// bufs hold; while some remain, the callback is made to run again.
func (q *Queue) splitPending(bufs [][]byte, sizes []int, offset int) (int, error) {
	raw := q.vn.pending[:q.vn.pendingLen]
	drop := func(err error) (int, error) {
		q.vn.pendingLen, q.vn.pendingNext = 0, 0
		return 0, q.refused(err)
	}
	h, err := vnet.DecodeHeader(raw)
	if err != nil {
		return drop(err)
	}
	first := q.vn.pendingNext
	k, total, err := vnet.SplitFrom(raw[vnet.HeaderLen:], h, first, bufs, sizes, offset)
	if err != nil {
		return drop(err)
	}
	q.vn.pendingNext += k
	p := q.p.Load()
	if q.vn.pendingNext >= total {
		q.vn.pendingLen, q.vn.pendingNext = 0, 0
	} else if p != nil {
		p.Notify(loop.Readable)
	}
	if p != nil {
		bytes := 0
		for _, size := range sizes[:k] {
			bytes += size
		}
		if first == 0 {
			p.Account(k-1, bytes-len(raw), 0, 0) // counted when read, as one packet of len(raw) bytes
		} else {
			p.Account(k, bytes, 0, 0)
		}
	}
	return k, nil
}

// sendVnet is SendBatch for a queue with the virtio-net header: packets of
// one flow are merged into super-packets by the kernel's GRO rules and
// each written with one writev, payloads in place.
func (q *Queue) sendVnet(bufs [][]byte, offset int) (int, error) {
	p := q.p.Load()
	if p == nil {
		return 0, errNotAttached
	}
	if err := p.CheckOwner(); err != nil {
		return 0, err // the Coalescer's scratch state is loop-only
	}
	// An empty packet would go out as a bare virtio-net header: the ones
	// before it are sent, and it is refused, so that with the error
	// bufs[sent] is the one at fault, as for every SendBatch.
	bad := len(bufs)
	for i, b := range bufs {
		if len(b) <= offset {
			bad = i
			break
		}
	}
	if bad == 0 {
		return 0, q.noRoom("send", 0, len(bufs[0]), offset)
	}
	all := bufs
	bufs = bufs[:bad]
	items, err := q.vn.co.Coalesce(bufs, offset)
	if err != nil {
		return 0, &Error{Op: "send", Name: q.dev.name, Err: err}
	}
	sent := 0
	for _, it := range items {
		err := p.Send(it.Vec...)
		if err == nil {
			// Send counted one packet of the writev's bytes; the packets
			// are len(Index), each with its own headers.
			bytes, counted := 0, 0
			for _, i := range it.Index {
				bytes += len(bufs[i]) - offset
			}
			for _, v := range it.Vec {
				counted += len(v)
			}
			p.Account(0, 0, len(it.Index)-1, bytes-counted)
			sent += len(it.Index)
			continue
		}
		if len(it.Index) == 1 || errors.Is(err, ErrWouldBlock) {
			return sent, err
		}
		// The kernel refused the super-packet: write its packets one by
		// one, each behind a zero header (Coalesce left them untouched).
		var zero [vnet.HeaderLen]byte
		for _, i := range it.Index {
			if err := p.Send(zero[:], bufs[i][offset:]); err != nil {
				return sent, err
			}
			sent++
		}
	}
	if bad < len(all) {
		return sent, q.noRoom("send", bad, len(all[bad]), offset)
	}
	return sent, nil
}

// RecvGSO reads one packet as the kernel hands it, super-packet and all,
// with its virtio-net header, for a forwarder between two devices with
// offloads that moves super-packets without splitting them (see SendGSO).
// b must hold MaxPacket bytes. Loop-only.
func (q *Queue) RecvGSO(b []byte) (int, vnet.Header, error) {
	p := q.p.Load()
	if p == nil {
		return 0, vnet.Header{}, errNotAttached
	}
	if q.vn.co == nil {
		return 0, vnet.Header{}, errNoOffloads
	}
	hdr := q.vn.hdr[:]
	n, err := p.RecvParts(hdr, b)
	if loopRefused(err) && len(b) == 0 {
		return 0, vnet.Header{}, q.noRoom("recv", 0, 0, 0)
	}
	if err != nil {
		return 0, vnet.Header{}, err
	}
	h, err := vnet.DecodeHeader(hdr)
	if err != nil {
		return 0, vnet.Header{}, q.refused(err)
	}
	if h.IsGSO() {
		if l, err := vnet.Inspect(b[:n], h); err == nil {
			// Each segment repeats the headers.
			p.Account(l.Segments-1, (l.Segments-1)*l.HeaderLen, 0, 0)
		}
	}
	return n, h, nil
}

// SendGSO writes a packet with its virtio-net header as it is: a
// super-packet from RecvGSO of another device goes out whole, the kernel
// splitting it only if it must. The header is checked against the packet
// and against this device's offloads first (vnet.PrepareForward), so a
// device that cannot take it gets an error, not a corrupt packet.
// Loop-only.
func (q *Queue) SendGSO(h vnet.Header, pkt []byte) error {
	p := q.p.Load()
	if p == nil {
		return errNotAttached
	}
	if q.vn.co == nil {
		return errNoOffloads
	}
	// q.vn.hdr is loop-only, like RecvGSO's use of it.
	if err := p.CheckOwner(); err != nil {
		return err
	}
	if len(pkt) == 0 {
		return q.emptyPacket(1)
	}
	out, err := vnet.PrepareForward(pkt, h, q.dev.offloads)
	if err != nil {
		return &Error{Op: "send", Name: q.dev.name, Err: err}
	}
	hdr := q.vn.hdr[:]
	out.Encode(hdr)
	if err := p.Send(hdr, pkt); err != nil {
		return err
	}
	if out.IsGSO() {
		if l, err := vnet.Inspect(pkt, out); err == nil {
			p.Account(0, 0, l.Segments-1, (l.Segments-1)*l.HeaderLen-vnet.HeaderLen)
		}
	} else {
		p.Account(0, 0, 0, -vnet.HeaderLen)
	}
	return nil
}

var errRecvOffloads error = &Error{Op: "recv", Err: errors.New("a device with offloads reads super-packets: use RecvBatch, which splits them, or RecvGSO")}

var errNoOffloads error = &Error{Op: "io", Err: errors.New("the device was created without offloads (Offloads option)")}
