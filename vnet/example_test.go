package vnet_test

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/tundra-go/tundra/vnet"
)

// superPacket returns what a TUN device with TSO (TUN_F_TSO4) hands its
// reader for a 3000-byte TCP send: the virtio-net header, then one IPv4
// packet carrying the whole payload, its TCP checksum left to the
// receiver (FlagNeedsCsum: the field holds only the pseudo-header sum).
func superPacket() []byte {
	const payload = 3000
	b := make([]byte, vnet.HeaderLen+20+20+payload)
	vnet.Header{
		Flags:      vnet.FlagNeedsCsum,
		GSOType:    vnet.GSOTCPv4,
		HdrLen:     40,
		GSOSize:    1000, // the MSS: every segment but the last
		CsumStart:  20,
		CsumOffset: 16,
	}.Encode(b)
	ip := b[vnet.HeaderLen:]
	copy(ip, []byte{0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[10:], ^vnet.Checksum(ip[:20], 0))
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)  // source port
	binary.BigEndian.PutUint16(tcp[2:], 80)     // destination port
	binary.BigEndian.PutUint32(tcp[4:], 1000)   // sequence number
	binary.BigEndian.PutUint32(tcp[8:], 1)      // acknowledgement
	tcp[12], tcp[13] = 5<<4, 0x18               // 20-byte header; ACK|PSH
	binary.BigEndian.PutUint16(tcp[14:], 65535) // window
	binary.BigEndian.PutUint16(tcp[16:], vnet.PseudoHeaderChecksum(6, ip[12:16], ip[16:20], len(tcp)))
	for i := range tcp[20:] {
		tcp[20+i] = byte(i)
	}
	return b
}

// A super-packet read from a device with offloads is split into the
// packets it stands for, checksums completed; the packets coalesce back
// into one write the kernel takes.
func Example() {
	raw := superPacket()
	h, err := vnet.DecodeHeader(raw)
	if err != nil {
		panic(err)
	}
	pkt := raw[vnet.HeaderLen:]

	// Read path: one buffer per segment, each with headroom for a
	// virtio-net header before offset (what a device write needs).
	const offset = vnet.HeaderLen
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, offset+1500)
	}
	sizes := make([]int, len(bufs))
	n, err := vnet.Split(pkt, h, bufs, sizes, offset)
	if err != nil {
		panic(err)
	}
	for i := range n {
		p := bufs[i][offset : offset+sizes[i]]
		fmt.Printf("packet %d: %d bytes, seq %d, flags %#02x, TCP checksum ok %t\n", i, len(p),
			binary.BigEndian.Uint32(p[24:]), p[33], vnet.Checksum(p[20:], vnet.PseudoHeaderChecksum(6, p[12:16], p[16:20], len(p)-20)) == 0xffff)
	}

	// Write path: the packets of one flow merge into one writev. Coalesce
	// takes each bufs[i][offset:] whole as a packet: cut the buffers to
	// their packets first.
	for i := range n {
		bufs[i] = bufs[i][:offset+sizes[i]]
	}
	co := vnet.NewCoalescer(vnet.Config{Offloads: vnet.Offloads{TCP4: true}})
	items, err := co.Coalesce(bufs[:n], offset)
	if err != nil {
		panic(err)
	}
	for _, it := range items {
		fmt.Printf("write: %d packets in %d slices, GSO type %d, GSO size %d, %d bytes\n",
			it.Packets(), len(it.Vec), it.Header.GSOType, it.Header.GSOSize, it.Len)
		// The writev's bytes are the super-packet the device handed out.
		fmt.Println("same as read:", bytes.Equal(bytes.Join(it.Vec, nil), raw))
	}
	// Output:
	// packet 0: 1040 bytes, seq 1000, flags 0x10, TCP checksum ok true
	// packet 1: 1040 bytes, seq 2000, flags 0x10, TCP checksum ok true
	// packet 2: 1040 bytes, seq 3000, flags 0x18, TCP checksum ok true
	// write: 3 packets in 4 slices, GSO type 1, GSO size 1000, 3040 bytes
	// same as read: true
}
