package loop

// Framer adds the per-packet header that some descriptors carry in front
// of each packet: the Linux TUN packet-information header, macOS utun's
// address-family header. The loop never interprets it; it reserves room for
// it and strips it on receive. A Framer is the simplest codec: one read is
// one packet, one packet is one write (see Codec for more).
type Framer interface {
	// HeaderLen is the header's fixed length in bytes.
	HeaderLen() int
	// PutHeader writes the header for packet into hdr (HeaderLen bytes).
	// packet holds at least the packet's first byte. It is called on the
	// loop's thread and must not keep either slice.
	PutHeader(hdr, packet []byte) error
}

// Codec is a Framer whose reads may carry several packets and whose
// writes may carry several: the virtio-net header of a TUN device with
// offloads, where one read is a super-packet to split and packets of one
// flow are merged into one write. A PacketFD whose PacketConfig.Framer is
// also a Codec drives it:
//
//   - RecvBatch reads into a buffer and has Decode lay the read out as
//     packets over that buffer and the ones after it. What does not fit is
//     the Codec's to keep: the PacketFD hands it out first on the next
//     call (Kept), and has the readiness callback run again meanwhile,
//     since the descriptor's own readiness says nothing about it.
//   - SendBatch has Encode group the packets into writes and writes each
//     with one writev; a write of several packets the kernel refuses is
//     sent again packet by packet, each behind PutHeader's header.
//   - Recv and Send move one read or write as it is (pass-through) with
//     its header; Count says how many packets it carried.
//
// The PacketFD counts what the Codec reports (loop.Stats counts packets,
// not reads) and calls it only on the owning loop's thread, so a Codec's
// state needs no lock; it belongs to one PacketFD. Its methods use only
// built-in types, so a package can provide one without importing loop.
type Codec interface {
	Framer
	// Room is the bytes after offset that every RecvBatch buffer must
	// hold: the largest read, since a read is never split across buffers.
	Room() int
	// Decode lays out one read of n bytes (the header included), which
	// sits in bufs[0][offset-HeaderLen():], as packets: packet i at
	// bufs[i][offset:], its length in sizes[i]. It returns how many
	// packets it laid out and their bytes, and whether it kept some that
	// did not fit for Kept. An error drops the read.
	Decode(bufs [][]byte, sizes []int, offset, n int) (k, bytes int, more bool, err error)
	// Kept lays out the packets Decode kept, as many as bufs hold, and
	// says whether some are still kept. An error drops them.
	Kept(bufs [][]byte, sizes []int, offset int) (k, bytes int, more bool, err error)
	// Count is what one read or write moved as it is (Recv, Send)
	// amounts to: hdr is its header, first its first part (the whole
	// packet on receive), total its length without the header.
	Count(hdr, first []byte, total int) (packets, bytes int)
	// Encode groups the packets bufs[i][offset:] into writes and returns
	// how many; they stay valid until the next Encode.
	Encode(bufs [][]byte, offset int) (writes int, err error)
	// Write is write j of the last Encode: the writev's parts, header
	// first, and the indexes in bufs of the packets it carries.
	Write(j int) (vec [][]byte, packets []int)
}
