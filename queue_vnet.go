package tundra

import (
	"errors"
	"fmt"

	"github.com/tundra-go/tundra/vnet"
)

// MaxPacket is the largest packet a queue with offloads hands over: a TCP
// or UDP super-packet of up to 64 KiB. RecvBatch on such a queue needs
// every buffer to hold offset+MaxPacket bytes.
const MaxPacket = 65535

// vnetState is what a queue with offloads is configured with: the
// Coalescer its codec merges writes with (nil: no offloads). The offload
// path itself is the loop's, through vnet.Codec (see Queue.Attach).
type vnetState struct {
	co *vnet.Coalescer
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
	if !q.offloads() {
		return 0, vnet.Header{}, errNoOffloads
	}
	n, err := p.Recv(b) // the codec counts the segments and keeps the header
	if loopRefused(err) && len(b) == 0 {
		return 0, vnet.Header{}, q.noRoom("recv", 0, 0, 0)
	}
	if err != nil {
		return 0, vnet.Header{}, err
	}
	// The read succeeded, so this is the owning loop: the codec is ours.
	h, err := q.codec.Last()
	if err != nil {
		return 0, vnet.Header{}, &Error{Op: "recv", Name: q.dev.name, Err: fmt.Errorf("dropped a packet with a malformed virtio-net header: %w", err)}
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
	if !q.offloads() {
		return errNoOffloads
	}
	var hdr [vnet.HeaderLen]byte
	if len(pkt) == 0 {
		// The loop refuses it (or refuses a caller off the loop first).
		if err := p.SendHeader(hdr[:]); !loopRefused(err) {
			return err
		}
		return q.emptyPacket(1)
	}
	out, err := vnet.PrepareForward(pkt, h, q.dev.offloads)
	if err != nil {
		return &Error{Op: "send", Name: q.dev.name, Err: err}
	}
	out.Encode(hdr[:])
	return p.SendHeader(hdr[:], pkt) // copied; the codec counts the segments
}

var errRecvOffloads error = &Error{Op: "recv", Err: errors.New("a device with offloads reads super-packets: use RecvBatch, which splits them, or RecvGSO")}

var errNoOffloads error = &Error{Op: "io", Err: errors.New("the device was created without offloads (Offloads option)")}
