package nl

// LinkStats holds a link's traffic counters as the kernel reports them in
// IFLA_STATS64 (struct rtnl_link_stats64). The counters are cumulative,
// normally since the device was created (a few drivers restart theirs when
// the hardware is reset), and 64 bits wide, so they do not wrap in
// practice; a rate is the difference of two snapshots.
//
// What each counter means in detail is up to the driver, and many drivers
// leave the detailed error counters at zero. Older kernels send a shorter
// struct: counters a kernel does not know about are zero here too.
type LinkStats struct {
	RxPackets uint64 // rx_packets: packets received
	TxPackets uint64 // tx_packets: packets transmitted
	RxBytes   uint64 // rx_bytes: bytes received
	TxBytes   uint64 // tx_bytes: bytes transmitted
	// RxErrors (rx_errors) counts received packets that were bad; the
	// Rx*Errors counters below break some of them down.
	RxErrors uint64
	// TxErrors (tx_errors) counts packets that failed to go out; the
	// Tx*Errors counters below break some of them down.
	TxErrors uint64
	// RxDropped (rx_dropped) counts good packets dropped on receive, for
	// example for want of memory or because the stack did not take them.
	RxDropped uint64
	// TxDropped (tx_dropped) counts packets dropped on the way out
	// without an error on the link, for example by a full queue.
	TxDropped  uint64
	Multicast  uint64 // multicast: multicast packets received
	Collisions uint64 // collisions: collisions on a shared medium

	RxLengthErrors uint64 // rx_length_errors: packets of a bad length
	RxOverErrors   uint64 // rx_over_errors: receive ring overflows
	RxCRCErrors    uint64 // rx_crc_errors: packets with a bad checksum
	RxFrameErrors  uint64 // rx_frame_errors: frame alignment errors
	RxFIFOErrors   uint64 // rx_fifo_errors: receive FIFO overruns
	RxMissedErrors uint64 // rx_missed_errors: packets the hardware missed

	TxAbortedErrors   uint64 // tx_aborted_errors: sends given up, e.g. after many collisions
	TxCarrierErrors   uint64 // tx_carrier_errors: carrier lost while sending
	TxFIFOErrors      uint64 // tx_fifo_errors: transmit FIFO underruns
	TxHeartbeatErrors uint64 // tx_heartbeat_errors: failed heartbeat (SQE) tests
	TxWindowErrors    uint64 // tx_window_errors: late collisions

	RxCompressed uint64 // rx_compressed: compressed packets received (CSLIP, PPP)
	TxCompressed uint64 // tx_compressed: compressed packets transmitted

	// RxNoHandler (rx_nohandler, Linux 4.6 and later) counts packets
	// dropped because no protocol wanted them, e.g. on an inactive bond
	// slave.
	RxNoHandler uint64
	// RxOtherhostDropped (rx_otherhost_dropped, Linux 5.19 and later)
	// counts packets dropped because they were addressed to another
	// host's MAC address.
	RxOtherhostDropped uint64
}

// minLinkStats64 is the shortest IFLA_STATS64 payload accepted: the four
// packet and byte counters, which every kernel with the attribute sends.
// Anything shorter is not a truncated-but-usable struct, it is garbage.
const minLinkStats64 = 4 * 8

// fields lists the counters in the order of struct rtnl_link_stats64, the
// one place where the wire layout is written down.
func (s *LinkStats) fields() []*uint64 {
	return []*uint64{
		&s.RxPackets, &s.TxPackets, &s.RxBytes, &s.TxBytes,
		&s.RxErrors, &s.TxErrors, &s.RxDropped, &s.TxDropped,
		&s.Multicast, &s.Collisions,
		&s.RxLengthErrors, &s.RxOverErrors, &s.RxCRCErrors,
		&s.RxFrameErrors, &s.RxFIFOErrors, &s.RxMissedErrors,
		&s.TxAbortedErrors, &s.TxCarrierErrors, &s.TxFIFOErrors,
		&s.TxHeartbeatErrors, &s.TxWindowErrors,
		&s.RxCompressed, &s.TxCompressed,
		&s.RxNoHandler, &s.RxOtherhostDropped,
	}
}

// parseLinkStats64 decodes the value of IFLA_STATS64. The struct has grown
// at its end over the years (rx_nohandler, rx_otherhost_dropped) and may
// grow again, so the length is not fixed: a shorter value from an older
// kernel fills the counters it has and leaves the rest zero, and counters
// beyond those LinkStats knows are ignored. The value must still be whole
// u64 counters and hold at least the first four, else it is malformed.
// The attribute need not be 8-byte aligned in the message (the kernel pads
// with IFLA_PAD only where the architecture needs it); it is read bytewise.
func parseLinkStats64(a attr) (*LinkStats, error) {
	n := len(a.Data)
	if n%8 != 0 || n < minLinkStats64 {
		return nil, malformed("attribute %d: %d bytes, want a multiple of 8 and at least %d for rtnl_link_stats64", a.kind(), n, minLinkStats64)
	}
	s := new(LinkStats)
	for i, p := range s.fields() {
		if 8*i >= n {
			break
		}
		*p = nativeEndian.Uint64(a.Data[8*i:])
	}
	return s, nil
}
