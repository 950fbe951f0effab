package vnet

import "errors"

// maxRead is the largest read from a TUN device with the virtio-net
// header, after the header: a super-packet of up to 64 KiB.
const maxRead = 65535

// Codec is the virtio-net header as an event loop's codec (the shape of
// loop.Codec, which this package does not import): each read from the
// device is a packet or a super-packet, split into the plain packets it
// carries (Split); packets written together are merged by the kernel's GRO
// rules into super-packets (a Coalescer); a packet read or written as it
// is (pass-through) is counted as the segments it carries.
//
// A super-packet with more segments than the buffers of the read that
// brought it is kept, copied, and handed out by Kept over the next calls.
//
// A Codec belongs to one descriptor and is used on one thread at a time
// (the owning loop's): it holds the kept super-packet, the last
// Coalesce's writes and the last header counted.
type Codec struct {
	co    *Coalescer
	items []Item
	// pending is the kept super-packet with its header; pendingNext is its
	// first segment not yet handed out.
	pending     []byte
	pendingLen  int
	pendingNext int
	// last and lastErr are the header of the last read or write counted
	// (Count), for a reader passing super-packets through.
	last    Header
	lastErr error
}

// NewCodec returns a Codec that merges writes with co; nil takes a
// Coalescer of the zero Config, which merges nothing.
func NewCodec(co *Coalescer) *Codec {
	if co == nil {
		co = NewCoalescer(Config{})
	}
	return &Codec{co: co}
}

// HeaderLen is the virtio-net header's length.
func (c *Codec) HeaderLen() int { return HeaderLen }

// PutHeader writes the header of a single packet sent as it is: all zero
// (no offload asked), so the kernel checks it as any packet.
func (c *Codec) PutHeader(hdr, _ []byte) error {
	clear(hdr)
	return nil
}

// Room is what each receive buffer must hold after its offset: a read is
// a super-packet of up to 64 KiB, read whole into one buffer.
func (c *Codec) Room() int { return maxRead }

// Decode splits the read of n bytes (header included) that sits in
// bufs[0][offset-HeaderLen:] into the packets it carries, the first in
// place, the others in the buffers after it. A super-packet with more
// segments than bufs is kept, and its first segments are handed out at
// once (more is then true). An error (a header that lies about its packet)
// drops the read.
func (c *Codec) Decode(bufs [][]byte, sizes []int, offset, n int) (k, bytes int, more bool, err error) {
	raw := bufs[0][offset-HeaderLen : offset-HeaderLen+n]
	h, err := DecodeHeader(raw)
	if err != nil {
		return 0, 0, false, err
	}
	k, err = Split(raw[HeaderLen:], h, bufs, sizes, offset)
	if errors.Is(err, ErrNoRoom) {
		// More segments than buffers (each holds any segment: Room):
		// keep the super-packet and hand it out over as many calls as it
		// takes, this one first.
		if cap(c.pending) < len(raw) {
			c.pending = make([]byte, HeaderLen+maxRead)
		}
		c.pendingLen = copy(c.pending[:cap(c.pending)], raw)
		c.pendingNext = 0
		return c.Kept(bufs, sizes, offset)
	}
	if err != nil {
		return 0, 0, false, err
	}
	for _, size := range sizes[:k] {
		bytes += size
	}
	return k, bytes, false, nil
}

// Kept hands out the kept super-packet's next segments, as many as bufs
// hold, and says whether some remain. An error drops it.
func (c *Codec) Kept(bufs [][]byte, sizes []int, offset int) (k, bytes int, more bool, err error) {
	if c.pendingLen == 0 {
		return 0, 0, false, nil
	}
	raw := c.pending[:c.pendingLen]
	h, err := DecodeHeader(raw)
	if err != nil {
		c.pendingLen, c.pendingNext = 0, 0
		return 0, 0, false, err
	}
	k, total, err := SplitFrom(raw[HeaderLen:], h, c.pendingNext, bufs, sizes, offset)
	if err != nil {
		c.pendingLen, c.pendingNext = 0, 0
		return 0, 0, false, err
	}
	c.pendingNext += k
	if c.pendingNext >= total {
		c.pendingLen, c.pendingNext = 0, 0
	}
	for _, size := range sizes[:k] {
		bytes += size
	}
	return k, bytes, c.pendingLen > 0, nil
}

// Count is what a packet read or written as it is (hdr its header, first
// its first part, total its length) carries: a super-packet of n segments
// is n packets, each with its own copy of the headers. The header is kept
// for Last.
func (c *Codec) Count(hdr, first []byte, total int) (packets, bytes int) {
	c.last, c.lastErr = DecodeHeader(hdr)
	if c.lastErr != nil || !c.last.IsGSO() {
		return 1, total
	}
	l, err := Inspect(first, c.last)
	if err != nil {
		return 1, total
	}
	return l.Segments, total + (l.Segments-1)*l.HeaderLen
}

// Last is the decoded header of the last packet read or written as it is,
// or why it could not be decoded.
func (c *Codec) Last() (Header, error) { return c.last, c.lastErr }

// Encode merges the packets bufs[i][offset:] into writes (Coalescer.
// Coalesce) and returns how many.
func (c *Codec) Encode(bufs [][]byte, offset int) (int, error) {
	items, err := c.co.Coalesce(bufs, offset)
	c.items = items
	return len(items), err
}

// Write is write j of the last Encode: its writev, header first, and the
// indexes of the packets it carries.
func (c *Codec) Write(j int) (vec [][]byte, packets []int) {
	return c.items[j].Vec, c.items[j].Index
}
