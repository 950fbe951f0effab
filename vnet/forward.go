package vnet

// PrepareForward is the passthrough path, for a consumer that carries
// super-packets from one offload-capable device to another (a forwarder
// between two TUN devices with IFF_VNET_HDR) without splitting or
// re-merging them. Given a packet read with its virtio-net header h, it
// checks the packet as Split would (see Inspect) and that the destination,
// whose offloads are to, accepts its GSO type, and returns the header to
// write in front of the unchanged packet.
//
// The returned header is h with HdrLen set to the real length of the IP and
// transport headers of a super-packet (the kernel fills hdr_len with a
// linearity hint, which the next device need not share); everything else,
// the checksum fields and FlagNeedsCsum included, is passed through: the
// destination completes the checksums or segments as the source asked. A
// single packet (GSONone) always passes, whatever the offloads.
//
// A super-packet the destination has not enabled gives an error wrapping
// ErrNotNegotiated: split it (Split) and write the segments instead. A
// malformed one gives the error Split would. pkt is only read.
func PrepareForward(pkt []byte, h Header, to Offloads) (Header, error) {
	lay, err := inspect("forward", pkt, h)
	if err != nil {
		return Header{}, err
	}
	if !h.IsGSO() {
		return h, nil
	}
	var ok bool
	var name string
	switch h.GSOType &^ GSOECN {
	case GSOTCPv4:
		ok, name = to.TCP4, "TCP over IPv4 (TUN_F_TSO4)"
	case GSOTCPv6:
		ok, name = to.TCP6, "TCP over IPv6 (TUN_F_TSO6)"
	case GSOUDPL4:
		ok, name = to.UDP, "UDP segmentation (TUN_F_USO4|TUN_F_USO6)"
		// virtio_net_hdr_to_skb refuses USO without a checksum to finish.
		if h.Flags&FlagNeedsCsum == 0 {
			return Header{}, errorf("forward", ErrMalformed, "UDP-L4 super-packet without NEEDS_CSUM")
		}
	}
	if !ok {
		return Header{}, errorf("forward", ErrNotNegotiated, "the destination does not take "+name+" super-packets; split this one")
	}
	h.HdrLen = uint16(lay.HeaderLen)
	return h, nil
}
