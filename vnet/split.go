package vnet

import (
	"encoding/binary"
	"math/bits"
)

// Split turns pkt, a packet read from a TUN device together with its
// virtio-net header h (already decoded, pkt starting after it), into the
// plain IP packets it carries, each with complete checksums: segment i is
// written to out[i][offset:offset+sizes[i]]. It returns the number of
// segments.
//
// A single packet (GSONone) is copied to out[0]; with FlagNeedsCsum its
// checksum is completed over the bytes from CsumStart, as the kernel would
// (a result of 0 is written as 0xffff, which verifies the same).
//
// A super-packet (GSOTCPv4, GSOTCPv6, GSOUDPL4) is cut into segments of
// h.GSOSize payload bytes, the last possibly shorter, each with a copy of the
// IP and transport headers, following the kernel's own segmentation
// (tcp_gso_segment, __udp_gso_segment, inet_gso_segment, ipv6_gso_segment):
//   - IPv4: total length per segment, identification incremented by one per
//     segment from the super-packet's, header checksum recomputed; options
//     are copied into every segment.
//   - IPv6: payload length per segment; hop-by-hop and destination options
//     headers are copied into every segment.
//   - TCP: sequence number advanced by the payload before the segment; FIN
//     and PSH only on the last segment, CWR only on the first; checksum
//     computed in full.
//   - UDP: length per segment; checksum computed in full (0 sent as 0xffff).
//
// Split never trusts the lengths it is given: it parses the IP and
// transport headers itself and validates h against them first (see
// Inspect), and it checks every destination before it writes anything, so
// on error out and sizes are untouched. If the super-packet has more
// segments than len(out) (or len(sizes)) the error wraps ErrNoRoom and its
// Need field holds the number of buffers needed; a buffer too short for its
// segment also gives ErrNoRoom, with Need the length it must have. GSOUDP
// (UFO, IP fragmentation, which kernels since 4.14 no longer produce) and
// unknown types give ErrUnsupported.
//
// pkt may be exactly out[0][offset:offset+len(pkt)] — the super-packet read
// in place into the first buffer —, in which case the first segment stays
// where it is and only its headers change; otherwise pkt must not overlap
// any of out. Split keeps no reference to any slice. Safe for concurrent
// use on distinct buffers.
func Split(pkt []byte, h Header, out [][]byte, sizes []int, offset int) (int, error) {
	lay, err := inspect("split", pkt, h)
	if err != nil {
		return 0, err
	}
	if offset < 0 {
		return 0, errorf("split", ErrMalformed, "negative offset "+itoa(offset))
	}
	n := lay.Segments
	if len(out) < n || len(sizes) < n {
		return 0, &Error{Op: "split", Err: ErrNoRoom, Need: n,
			Reason: "the " + itoa(len(pkt)) + "-byte packet carries " + itoa(n) + " segments; have " + itoa(len(out)) + " buffers and " + itoa(len(sizes)) + " sizes"}
	}
	if !h.IsGSO() {
		return splitSingle(pkt, h, out[0], sizes, offset)
	}
	if err := checkRoom(pkt, lay, 0, out[:n], offset); err != nil {
		return 0, err
	}
	s := newSplitter(pkt, lay, n, len(pkt)-lay.HeaderLen)
	// The segments after the first copy their headers from pkt, so they
	// go first; the first segment may be pkt itself and is rewritten last.
	for i := 1; i < n; i++ {
		sizes[i] = s.segment(out[i][offset:], i, false)
	}
	first := out[0][offset:]
	sizes[0] = s.segment(first, 0, samePlace(first, pkt))
	return n, nil
}

// SplitFrom is Split for a caller with fewer buffers than segments: it
// writes segments first, first+1, ... of pkt, as many as out and sizes
// hold, segment first+j to out[j], and returns how many it wrote and how
// many pkt carries in all. The caller keeps pkt and calls again with first
// advanced until every segment is out. pkt is never written and must not
// overlap out. The checks and errors are Split's, before any write; a
// first outside the packet's segments is ErrMalformed, and no buffers at
// all is ErrNoRoom.
func SplitFrom(pkt []byte, h Header, first int, out [][]byte, sizes []int, offset int) (written, total int, err error) {
	lay, err := inspect("split", pkt, h)
	if err != nil {
		return 0, 0, err
	}
	total = lay.Segments
	if offset < 0 {
		return 0, total, errorf("split", ErrMalformed, "negative offset "+itoa(offset))
	}
	if first < 0 || first >= total {
		return 0, total, errorf("split", ErrMalformed, "segment "+itoa(first)+" of a packet of "+itoa(total))
	}
	k := min(total-first, len(out), len(sizes))
	if k == 0 {
		return 0, total, &Error{Op: "split", Err: ErrNoRoom, Need: 1, Reason: "no buffers"}
	}
	if !h.IsGSO() {
		k, err := splitSingle(pkt, h, out[0], sizes, offset)
		return k, total, err
	}
	if err := checkRoom(pkt, lay, first, out[:k], offset); err != nil {
		return 0, total, err
	}
	s := newSplitter(pkt, lay, total, len(pkt)-lay.HeaderLen)
	for j := range k {
		sizes[j] = s.segment(out[j][offset:], first+j, false)
	}
	return k, total, nil
}

// splitSingle is Split of a packet that is not a super-packet: copied to
// out0 unless it is there already, its checksum completed if it asks.
func splitSingle(pkt []byte, h Header, out0 []byte, sizes []int, offset int) (int, error) {
	if len(out0) < offset+len(pkt) {
		return 0, shortBuffer(0, len(out0), offset+len(pkt))
	}
	dst := out0[offset : offset+len(pkt)]
	if !samePlace(dst, pkt) {
		copy(dst, pkt)
	}
	if h.Flags&FlagNeedsCsum != 0 {
		completeChecksum(dst, int(h.CsumStart), int(h.CsumOffset))
	}
	sizes[0] = len(pkt)
	return 1, nil
}

// checkRoom checks that out[j] holds segment first+j at offset, for every
// j, before anything is written.
func checkRoom(pkt []byte, lay Layout, first int, out [][]byte, offset int) error {
	hl, gso := lay.HeaderLen, lay.SegmentSize
	payload := len(pkt) - hl
	for j := range out {
		if need := offset + hl + segPayload(payload, gso, first+j); len(out[j]) < need {
			return shortBuffer(j, len(out[j]), need)
		}
	}
	return nil
}

func shortBuffer(i, have, need int) error {
	return &Error{Op: "split", Err: ErrNoRoom, Need: need,
		Reason: "buffer " + itoa(i) + " holds " + itoa(have) + " bytes, its segment needs " + itoa(need) + " (offset included)"}
}

// segPayload is the payload length of segment i.
func segPayload(payload, gso, i int) int {
	return max(0, min(gso, payload-i*gso))
}

// samePlace reports whether a and b start at the same byte.
func samePlace(a, b []byte) bool {
	return len(a) > 0 && len(b) > 0 && &a[0] == &b[0]
}

// A splitter writes the segments of one super-packet. The header checksums
// of every segment are derived arithmetically from sums taken once over the
// super-packet's headers, minus the fields that change, plus their new
// values: reading back headers just written with narrow stores would stall
// on store forwarding, and this is the per-segment hot path.
type splitter struct {
	pkt        []byte
	lay        Layout
	n, payload int
	src, dst   []byte // addresses, read from pkt (never modified before the last segment)
	id         uint16
	seq        uint32
	word12     uint16 // TCP data offset and flags
	ipBase     uint64 // IPv4 header sum without length, identification, checksum
	l4Base     uint64 // transport header sum without checksum, and seq and flags (TCP) or length (UDP)
	fullPseudo uint16
}

func newSplitter(pkt []byte, lay Layout, n, payload int) splitter {
	s := splitter{pkt: pkt, lay: lay, n: n, payload: payload}
	l4, hl := lay.TransportOffset, lay.HeaderLen
	if lay.IPVersion == 4 {
		s.src, s.dst = pkt[12:16], pkt[16:20]
		s.id = binary.BigEndian.Uint16(pkt[4:])
		s.ipBase = minus(uint64(Checksum(pkt[:l4], 0)), pkt[2:4], pkt[4:6], pkt[10:12])
	} else {
		s.src, s.dst = pkt[8:24], pkt[24:40]
	}
	th := pkt[l4:hl]
	if lay.Protocol == protoTCP {
		s.seq = binary.BigEndian.Uint32(th[4:])
		s.word12 = binary.BigEndian.Uint16(th[12:])
		s.l4Base = minus(uint64(Checksum(th, 0)), th[4:6], th[6:8], th[12:14], th[16:18])
	} else {
		s.l4Base = minus(uint64(Checksum(th, 0)), th[4:6], th[6:8])
	}
	s.fullPseudo = PseudoHeaderChecksum(lay.Protocol, s.src, s.dst, hl-l4+lay.SegmentSize)
	return s
}

// minus takes the big-endian 16-bit words w out of the one's-complement
// accumulator acc: adding 0xffff-w subtracts w modulo 0xffff.
func minus(acc uint64, w ...[]byte) uint64 {
	for _, b := range w {
		acc += uint64(^binary.BigEndian.Uint16(b))
	}
	return acc
}

// fold16 folds a big-endian-domain accumulator.
func fold16(acc uint64) uint16 { return fold(acc) }

// segment writes segment i into dst and returns its length. inPlace means
// dst is pkt: only the headers change.
func (s *splitter) segment(dst []byte, i int, inPlace bool) int {
	hl, gso, l4 := s.lay.HeaderLen, s.lay.SegmentSize, s.lay.TransportOffset
	pl := segPayload(s.payload, gso, i)
	seg := dst[:hl+pl]
	payload := s.pkt[hl+i*gso : hl+i*gso+pl]
	var psum uint64
	if inPlace {
		psum = sum(payload, 0)
	} else {
		copy(seg[:hl], s.pkt[:hl])
		psum = copySum(seg[hl:], payload)
	}
	ph := s.fullPseudo
	if pl != gso {
		ph = PseudoHeaderChecksum(s.lay.Protocol, s.src, s.dst, hl-l4+pl)
	}
	acc := uint64(ph) + uint64(bits.ReverseBytes16(fold(psum))) + s.l4Base

	if s.lay.IPVersion == 4 {
		id := s.id + uint16(i)
		binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
		binary.BigEndian.PutUint16(seg[4:], id)
		binary.BigEndian.PutUint16(seg[10:], ^fold16(s.ipBase+uint64(len(seg))+uint64(id)))
	} else {
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)-40))
	}

	th := seg[l4:hl]
	if s.lay.Protocol == protoTCP {
		seq := s.seq + uint32(i*gso)
		w12 := s.word12
		if i != s.n-1 {
			w12 &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			w12 &^= tcpCWR
		}
		binary.BigEndian.PutUint32(th[4:], seq)
		binary.BigEndian.PutUint16(th[12:], w12)
		acc += uint64(seq>>16) + uint64(seq&0xffff) + uint64(w12)
		binary.BigEndian.PutUint16(th[csumOffTCP:], ^fold16(acc))
	} else {
		ulen := uint16(len(seg) - l4)
		binary.BigEndian.PutUint16(th[4:], ulen)
		c := ^fold16(acc + uint64(ulen))
		if c == 0 {
			c = 0xffff // RFC 768: a computed 0 is sent as all ones
		}
		binary.BigEndian.PutUint16(th[csumOffUDP:], c)
	}
	return len(seg)
}

// completeChecksum finishes a FlagNeedsCsum checksum: the field at
// start+off holds the pseudo-header sum; the sum of everything from start
// (the field included) complemented goes into the field.
func completeChecksum(p []byte, start, off int) {
	c := ^Checksum(p[start:], 0)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(p[start+off:], c)
}
