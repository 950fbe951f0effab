package vnet

import (
	"bytes"
	"encoding/binary"
)

// Offloads says which super-packets a device accepts: what TUNSETOFFLOAD
// enabled on it.
type Offloads struct {
	TCP4 bool // TUN_F_TSO4: TCP over IPv4
	TCP6 bool // TUN_F_TSO6: TCP over IPv6
	// UDP is TUN_F_USO4|TUN_F_USO6 (Linux 6.2 and later; the kernel takes
	// them only together): UDP segmentation, IPv4 and IPv6. Without it
	// UDP is never coalesced.
	UDP bool
}

// DefaultMaxParts is the default Config.MaxParts: loop.MaxSendParts, the
// most slices the loop's PacketFD.Send takes for one writev.
const DefaultMaxParts = 129

// MaxSegments is the default Config.MaxSegments, the most packets an Item
// carries: the kernel's UDP GRO stops at 64 (UDP_GRO_CNT_MAX) and older
// kernels take at most 64 UDP segments from a TUN write
// (UDP_MAX_SEGMENTS). Newer ones take 128 (Linux 6.11 raised
// UDP_MAX_SEGMENTS); a caller that checked may ask for up to
// MaxSegmentsLimit.
const MaxSegments = 64

// MaxSegmentsLimit bounds Config.MaxSegments.
const MaxSegmentsLimit = 128

// Config configures a Coalescer.
type Config struct {
	// Offloads are the super-packets the device accepts; a zero value
	// coalesces nothing (every packet becomes its own Item).
	Offloads Offloads
	// MaxParts bounds len(Item.Vec), the slices of one writev: an Item
	// carries at most MaxParts-1 packets (one slice for the virtio-net
	// header and rewritten headers, one per packet payload), and never
	// more than MaxSegments. 0 means DefaultMaxParts; a single packet
	// takes two slices, so 1 counts as 2.
	MaxParts int
	// MaxSegments bounds the packets of one Item; 0 means MaxSegments (64).
	// Values above MaxSegmentsLimit count as MaxSegmentsLimit.
	MaxSegments int
	// TrustChecksums skips verifying each packet's TCP or UDP checksum
	// before merging it. The kernel's GRO verifies them, and a super-packet
	// goes up the stack marked as checksummed, so a corrupt segment merged
	// unverified is delivered instead of dropped. Set it only when the
	// packets come from a source that cannot corrupt them (they were just
	// authenticated, or built by this process).
	TrustChecksums bool
}

// Item is one write to the device: a super-packet made of several input
// packets, or a single packet.
//
// Vec is the write itself, ready for one writev: Vec[0] holds the encoded
// virtio-net header (Header), followed, for a super-packet, by the IP and
// transport headers of the first packet rewritten for the whole; the other
// slices are the payloads of the packets, in order, pointing into the
// caller's buffers (no payload is copied). For a single packet Vec is
// {header, the whole packet}. len(Vec) <= Config.MaxParts.
type Item struct {
	Header Header   // the virtio-net header, also encoded at the start of Vec[0]
	Vec    [][]byte // the writev: virtio-net header first, then the packet
	// Index lists the input packets the Item carries, in order, as indexes
	// into the slice given to Coalesce. To fall back to one write per
	// packet (a device that refuses the super-packet), write each
	// pkts[Index[k]][offset:] with a zero virtio-net header: Coalesce left
	// the input buffers untouched.
	Index []int
	Len   int // the IP packet's length: the bytes of Vec after the virtio-net header
}

// Coalescer merges the packets of a batch into super-packets following the
// rules of the kernel's GRO (tcp_gro_receive, udp_gro_receive_segment,
// inet_gro_receive, ipv6_gro_receive), so that the kernel's segmentation
// of each super-packet gives back the packets it was made of.
//
// A Coalescer is reusable and allocates only while it grows to the largest
// batch it has seen; in a steady state Coalesce makes no allocation. It is
// not safe for concurrent use: keep one per goroutine.
type Coalescer struct {
	cfg     Config
	maxSegs int32

	items   []Item
	st      []itemState
	info    []pktInfo
	members []int
	parts   [][]byte
	scratch [][scratchLen]byte

	slots []flowSlot
	mask  uint32
	gen   uint32
}

// scratchLen holds the virtio-net header and the largest header of a
// mergeable packet: IPv6 (40) and TCP with options (60).
const scratchLen = HeaderLen + 40 + 60

// NewCoalescer returns a Coalescer for a device with the given
// configuration.
func NewCoalescer(cfg Config) *Coalescer {
	if cfg.MaxParts <= 0 {
		cfg.MaxParts = DefaultMaxParts
	}
	cfg.MaxParts = max(cfg.MaxParts, 2)
	if cfg.MaxSegments <= 0 {
		cfg.MaxSegments = MaxSegments
	}
	cfg.MaxSegments = min(cfg.MaxSegments, MaxSegmentsLimit)
	return &Coalescer{cfg: cfg, maxSegs: int32(min(cfg.MaxParts-1, cfg.MaxSegments))}
}

// Config returns the configuration the Coalescer uses (with defaults
// applied).
func (c *Coalescer) Config() Config { return c.cfg }

// Coalesce groups the packets pkts[i][offset:] into Items and returns them
// in the order of their first packets. Packets of one flow are only ever
// appended to that flow's latest Item, so no flow's packets are reordered;
// packets of different flows may be.
//
// Rules, those of the kernel's GRO, for a TCP segment to join its flow's
// latest Item: same addresses, ports and IP version; IPv4 with no options
// (IHL 5), not a fragment, a valid header checksum, the same TOS, TTL and DF
// and an identification either incremented by one per segment or, with DF,
// the same in every segment; IPv6 with no extension header and the same
// traffic class, flow label and hop limit; the same TCP header length and
// option bytes (timestamps included), acknowledgment number, window and
// urgent pointer; the same flags except that PSH or FIN may end the Item
// and CWR may only be on the first segment (which then sets GSOECN); a
// sequence number right after the previous segment's data; a payload above
// 0 and at most the first segment's, a shorter one ending the Item; no
// SYN, RST or URG anywhere, no PSH or FIN on the first; a valid checksum
// (unless Config.TrustChecksums). UDP datagrams: the same IP rules, a UDP
// length matching the packet, a non-zero checksum, and the same payload
// size rule. Every Item stays within 65535 IP bytes and Config.MaxParts-1
// packets; UDP is coalesced only with Offloads.UDP, TCP only with TCP4 or
// TCP6 for its IP version.
//
// Where this is stricter than the kernel: the urgent pointer must match too
// (a re-segmented packet gets the first one's), IPv6 packets with extension
// headers are never merged (the kernel merges identical ones), and a packet
// whose flow it cannot name for sure (a later fragment) ends every open
// Item. Where the outcome differs from the input: an IPv4 flow with a fixed
// identification (merged, with DF, as the kernel's GRO does) comes out of
// the kernel's segmentation with incrementing identifications, because the
// virtio-net header has no bit for SKB_GSO_TCP_FIXEDID; RFC 6864 gives the
// field no meaning in such atomic datagrams.
//
// A super-packet goes out as the first packet's headers with the IP length
// (and the IPv4 header checksum, and the UDP length) covering the whole,
// TCP flags or'ed with the last segment's PSH and FIN, and the transport
// checksum field holding the pseudo-header sum, described by a header with
// FlagNeedsCsum, CsumStart at the transport header, CsumOffset 16 (TCP) or 6
// (UDP), GSOSize the first segment's payload, HdrLen the headers' length.
// A packet that joins nothing goes out untouched behind a zero header
// (GSONone, no flags: the kernel checks it as usual).
//
// Coalesce does not modify the input buffers. The Items and their slices
// (Vec, Index) belong to the Coalescer and stay valid until the next call;
// Vec points into the input buffers, which must not change until the
// writes are done. Coalesce fails, with no Items, only if offset is
// negative or longer than a buffer.
func (c *Coalescer) Coalesce(pkts [][]byte, offset int) ([]Item, error) {
	if offset < 0 {
		return nil, errorf("coalesce", ErrMalformed, "negative offset "+itoa(offset))
	}
	for i, p := range pkts {
		if len(p) < offset {
			return nil, errorf("coalesce", ErrTruncated, "buffer "+itoa(i)+" holds "+itoa(len(p))+" bytes, shorter than the offset "+itoa(offset))
		}
	}
	c.grow(len(pkts))
	c.items = c.items[:0]
	c.st = c.st[:0]
	c.nextGen()

	for i, b := range pkts {
		p := b[offset:]
		inf := &c.info[i]
		c.classify(p, inf)
		switch inf.kind {
		case kindNone:
			inf.item = c.newItem(i, p, inf, false)
		case kindWildcard:
			c.nextGen()
			inf.item = c.newItem(i, p, inf, false)
		default:
			slot := c.lookup(inf)
			if k := slot.item; k >= 0 && c.st[k].open && inf.kind == kindMerge && c.merge(pkts, offset, int(k), p, inf) {
				inf.item = k
				continue
			}
			k := c.newItem(i, p, inf, inf.kind == kindMerge && opens(p, inf))
			inf.item = k
			slot.item = k
		}
	}
	c.layout(pkts, offset)
	return c.items, nil
}

// grow sizes the per-call storage for a batch of n packets. It allocates
// only when n is larger than any batch before.
func (c *Coalescer) grow(n int) {
	if cap(c.info) < n {
		c.info = make([]pktInfo, n)
		c.items = make([]Item, 0, n)
		c.st = make([]itemState, 0, n)
		c.members = make([]int, n)
		c.parts = make([][]byte, 2*n)
		c.scratch = make([][scratchLen]byte, n)
	}
	c.info = c.info[:n]
	if size := tableSize(n); len(c.slots) < size {
		c.slots = make([]flowSlot, size)
		c.mask = uint32(size - 1)
		c.gen = 0
	}
}

// tableSize keeps the flow table at most half full: a power of two at least
// twice the batch.
func tableSize(n int) int {
	size := 64
	for size < 2*n {
		size *= 2
	}
	return size
}

// nextGen empties the flow table in O(1): slots of an older generation
// count as free.
func (c *Coalescer) nextGen() {
	c.gen++
	if c.gen == 0 { // wrapped: old slots could look current
		clear(c.slots)
		c.gen = 1
	}
}

type pktKind uint8

const (
	kindNone     pktKind = iota // not a TCP/UDP flow this package can name: always alone
	kindWildcard                // a TCP/UDP fragment without ports: could belong to any flow
	kindFlow                    // a named flow, but this packet cannot be merged
	kindMerge                   // a named flow, and this packet may be merged
)

type pktInfo struct {
	kind    pktKind
	version uint8
	proto   uint8
	l4      uint8 // IP header length, for kindMerge
	hl      uint8 // IP and transport header length, for kindMerge
	payload int32 // for kindMerge
	hash    uint32
	item    int32
	key     flowKey
}

// flowKey names a flow: addresses, ports, protocol and IP version.
type flowKey [5]uint64

type flowSlot struct {
	gen  uint32
	hash uint32
	item int32
	key  flowKey
}

type itemState struct {
	first   int32 // index of the first packet
	count   int32
	total   int32 // IP bytes of the super-packet
	gso     int32 // payload of the first packet
	nextSeq uint32
	flags   uint8 // PSH and FIN of the last segment
	idMode  uint8 // IPv4 identification: 0 undecided, idIncrement, idFixed
	open    bool  // further packets of the flow may join
	checked bool  // the first packet's checksum was verified
	version uint8
	proto   uint8
	l4, hl  uint8
}

const (
	idIncrement = 1
	idFixed     = 2
)

// newItem starts an Item with packet i (bytes p); an open Item may take
// more packets of its flow.
func (c *Coalescer) newItem(i int, p []byte, inf *pktInfo, open bool) int32 {
	k := int32(len(c.st))
	c.st = c.st[:k+1]
	st := &c.st[k]
	st.first, st.count, st.open = int32(i), 1, open && c.maxSegs > 1
	if st.open {
		st.flags, st.idMode, st.checked = 0, 0, false
		st.total = int32(len(p))
		st.gso = int32(inf.payload)
		st.version, st.proto, st.l4, st.hl = inf.version, inf.proto, inf.l4, inf.hl
		if inf.proto == protoTCP {
			st.nextSeq = binary.BigEndian.Uint32(p[inf.l4+4:]) + uint32(inf.payload)
		}
	}
	return k
}

// lookup returns the flow's slot, claiming a free one (item -1) for a new
// flow. The table is never more than half full, so a free slot exists.
func (c *Coalescer) lookup(inf *pktInfo) *flowSlot {
	for i := inf.hash & c.mask; ; i = (i + 1) & c.mask {
		s := &c.slots[i]
		if s.gen != c.gen {
			*s = flowSlot{gen: c.gen, hash: inf.hash, item: -1, key: inf.key}
			return s
		}
		if s.hash == inf.hash && s.key == inf.key {
			return s
		}
	}
}

// classify sorts packet p and, for a flow, fills its key; for a mergeable
// packet also its header lengths and payload.
func (c *Coalescer) classify(p []byte, inf *pktInfo) {
	*inf = pktInfo{kind: kindNone, item: -1}
	if len(p) == 0 {
		return
	}
	var l4 int
	var proto uint8
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return
		}
		ihl := int(p[0]&0x0f) * 4
		proto = p[9]
		// A packet the device cannot take merged belongs to no open Item:
		// leave it alone without a lookup.
		if ihl < 20 || len(p) < ihl || !c.mergeable(4, proto) {
			return
		}
		frag := binary.BigEndian.Uint16(p[6:])
		if frag&0x1fff != 0 { // a later fragment: no ports
			inf.kind = kindWildcard
			return
		}
		if len(p) < ihl+4 {
			return
		}
		l4 = ihl
		inf.version = 4
		inf.key[0] = uint64(binary.LittleEndian.Uint32(p[12:])) | uint64(binary.LittleEndian.Uint32(p[16:]))<<32
		inf.kind = kindFlow
		if ihl == 20 && frag&0xbfff == 0 && int(binary.BigEndian.Uint16(p[2:])) == len(p) && Checksum(p[:20], 0) == 0xffff {
			inf.kind = kindMerge
		}
	case 6:
		if len(p) < 40 {
			return
		}
		next, off := p[6], 40
		plain := true
	walk:
		for {
			switch next {
			case protoTCP, protoUDP:
				break walk
			case 0, 43, 60, 44, 51: // hop-by-hop, routing, destination options, fragment, AH
				if off+8 > len(p) {
					return
				}
				if next == 44 {
					if binary.BigEndian.Uint16(p[off+2:])&0xfff8 != 0 { // a later fragment
						if c.mergeable(6, p[off]) {
							inf.kind = kindWildcard
						}
						return
					}
					next, off = p[off], off+8
				} else if next == 51 {
					next, off = p[off], off+(int(p[off+1])+2)*4
				} else {
					next, off = p[off], off+(int(p[off+1])+1)*8
				}
				plain = false
			default:
				return
			}
		}
		if len(p) < off+4 || !c.mergeable(6, next) {
			return
		}
		l4, proto = off, next
		inf.version = 6
		inf.key[0] = binary.LittleEndian.Uint64(p[8:])
		inf.key[1] = binary.LittleEndian.Uint64(p[16:])
		inf.key[2] = binary.LittleEndian.Uint64(p[24:])
		inf.key[3] = binary.LittleEndian.Uint64(p[32:])
		inf.kind = kindFlow
		if plain && int(binary.BigEndian.Uint16(p[4:])) == len(p)-40 {
			inf.kind = kindMerge
		}
	default:
		return
	}
	inf.proto = proto
	inf.key[4] = uint64(binary.LittleEndian.Uint32(p[l4:])) | uint64(proto)<<32 | uint64(inf.version)<<40
	inf.hash = hashKey(&inf.key)
	if inf.kind != kindMerge {
		return
	}

	// Transport header, and whether the device takes this kind.
	var hl int
	if proto == protoTCP {
		if len(p) < l4+20 {
			inf.kind = kindFlow
			return
		}
		hl = l4 + int(p[l4+12]>>4)*4
		if hl < l4+20 || hl > len(p) {
			inf.kind = kindFlow
			return
		}
	} else {
		hl = l4 + 8
		if len(p) < hl || int(binary.BigEndian.Uint16(p[l4+4:])) != len(p)-l4 ||
			binary.BigEndian.Uint16(p[l4+6:]) == 0 { // GRO wants a checksum, for symmetry with GSO
			inf.kind = kindFlow
			return
		}
	}
	if len(p) == hl {
		inf.kind = kindFlow // no payload: nothing to merge
		return
	}
	inf.l4, inf.hl, inf.payload = uint8(l4), uint8(hl), int32(len(p)-hl)
}

// mergeable reports whether the device takes super-packets of this IP
// version and transport protocol.
func (c *Coalescer) mergeable(version, proto uint8) bool {
	switch proto {
	case protoTCP:
		return version == 4 && c.cfg.Offloads.TCP4 || version == 6 && c.cfg.Offloads.TCP6
	case protoUDP:
		return c.cfg.Offloads.UDP
	}
	return false
}

func hashKey(k *flowKey) uint32 {
	// Independent multiplies by odd constants, then a fold: good enough
	// spreading for a table at most half full, and short dependency chains.
	h := k[0]*0x9e3779b97f4a7c15 ^ k[1]*0xc2b2ae3d27d4eb4f ^ k[2]*0x165667b19e3779f9 ^
		k[3]*0xd6e8feb86659fd93 ^ k[4]*0xff51afd7ed558ccd
	return uint32(h>>32) ^ uint32(h)
}

// opens reports whether a mergeable packet may start an Item others join.
// The kernel flushes a segment with PSH, FIN, URG, RST or SYN at once.
func opens(p []byte, inf *pktInfo) bool {
	if inf.proto == protoTCP {
		return p[inf.l4+13]&(tcpFIN|tcpSYN|tcpRST|tcpPSH|tcpURG) == 0
	}
	return true
}

// merge appends packet p (info inf) to Item k if the GRO rules allow, and
// reports whether it did.
func (c *Coalescer) merge(pkts [][]byte, offset, k int, p []byte, inf *pktInfo) bool {
	st := &c.st[k]
	if inf.proto != st.proto || inf.version != st.version || inf.hl != st.hl ||
		inf.payload > st.gso || st.count >= c.maxSegs || st.total+inf.payload > maxIPLen {
		return false
	}
	f := pkts[st.first][offset:]
	var idMode uint8
	if st.version == 4 {
		// TOS, TTL, DF; identification incrementing, or fixed with DF.
		if p[1] != f[1] || p[8] != f[8] || (p[6]^f[6])&0x40 != 0 {
			return false
		}
		id, fid := binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(f[4:])
		switch idMode = st.idMode; {
		case idMode == idIncrement && id == fid+uint16(st.count):
		case idMode == idFixed && id == fid:
		case idMode == 0 && id == fid+1:
			idMode = idIncrement
		case idMode == 0 && id == fid && f[6]&0x40 != 0:
			idMode = idFixed
		default:
			return false
		}
	} else {
		// Version, traffic class, flow label; hop limit.
		if binary.BigEndian.Uint32(p) != binary.BigEndian.Uint32(f) || p[7] != f[7] {
			return false
		}
	}

	l4, hl := int(st.l4), int(st.hl)
	th, fh := p[l4:hl], f[l4:hl]
	if st.proto == protoTCP {
		if binary.BigEndian.Uint32(th[4:]) != st.nextSeq ||
			binary.BigEndian.Uint32(th[8:]) != binary.BigEndian.Uint32(fh[8:]) || // ack
			th[12] != fh[12] || // data offset, reserved bits
			th[13]&tcpCWR != 0 || (th[13]^fh[13])&^(tcpCWR|tcpPSH|tcpFIN) != 0 ||
			binary.BigEndian.Uint16(th[14:]) != binary.BigEndian.Uint16(fh[14:]) || // window
			binary.BigEndian.Uint16(th[18:]) != binary.BigEndian.Uint16(fh[18:]) || // urgent pointer
			!bytes.Equal(th[20:], fh[20:]) { // options
			return false
		}
	}
	// UDP: ports are the flow key, and classify let only datagrams with a
	// checksum and a consistent length through.

	if !c.cfg.TrustChecksums {
		if !st.checked {
			if !transportValid(f, st.version, st.proto, l4) {
				st.open = false
				return false
			}
			st.checked = true
		}
		if !transportValid(p, st.version, st.proto, l4) {
			return false
		}
	}

	st.idMode = idMode
	st.count++
	st.total += inf.payload
	if st.proto == protoTCP {
		st.nextSeq += uint32(inf.payload)
		if fl := th[13] & (tcpPSH | tcpFIN); fl != 0 {
			st.flags = fl
			st.open = false
		}
	}
	if inf.payload < st.gso || st.count >= c.maxSegs {
		st.open = false
	}
	return true
}

// transportValid verifies the TCP or UDP checksum of packet p, whose
// transport header starts at l4 and whose IP header is plain.
func transportValid(p []byte, version, proto uint8, l4 int) bool {
	var ph uint64
	if version == 4 {
		ph = pseudoSum(proto, p[12:16], p[16:20], len(p)-l4)
	} else {
		ph = pseudoSum(proto, p[8:24], p[24:40], len(p)-l4)
	}
	return fold(sum(p[l4:], ph)) == 0xffff
}

// layout fills the Items' Vec and Index slices and builds the headers.
func (c *Coalescer) layout(pkts [][]byte, offset int) {
	n := len(c.st)
	c.items = c.items[:n]
	// Each Item's members and parts are contiguous: prefix sums of the
	// counts, then a pass over the packets in order fills them.
	m, v := 0, 0
	for k := range n {
		cnt := int(c.st[k].count)
		it := &c.items[k]
		it.Index = c.members[m : m : m+cnt]
		it.Vec = c.parts[v : v+1 : v+1+cnt]
		m += cnt
		v += 1 + cnt
	}
	for i, b := range pkts {
		k := c.info[i].item
		it := &c.items[k]
		it.Index = append(it.Index, i)
		if c.st[k].count == 1 {
			it.Vec = append(it.Vec, b[offset:])
		} else {
			it.Vec = append(it.Vec, b[offset+int(c.st[k].hl):])
		}
	}
	for k := range n {
		st := &c.st[k]
		it := &c.items[k]
		s := c.scratch[k][:]
		if st.count == 1 {
			it.Header = Header{}
			it.Header.Encode(s)
			it.Vec[0] = s[:HeaderLen]
			it.Len = len(it.Vec[1])
			continue
		}
		hl, l4 := int(st.hl), int(st.l4)
		hd := s[HeaderLen : HeaderLen+hl]
		copy(hd, pkts[st.first][offset:offset+hl])
		var src, dst []byte
		if st.version == 4 {
			binary.BigEndian.PutUint16(hd[2:], uint16(st.total))
			hd[10], hd[11] = 0, 0
			binary.BigEndian.PutUint16(hd[10:], ^Checksum(hd[:20], 0))
			src, dst = hd[12:16], hd[16:20]
		} else {
			binary.BigEndian.PutUint16(hd[4:], uint16(st.total-40))
			src, dst = hd[8:24], hd[24:40]
		}
		h := Header{Flags: FlagNeedsCsum, HdrLen: uint16(hl), GSOSize: uint16(st.gso), CsumStart: uint16(l4)}
		l4len := int(st.total) - l4
		if st.proto == protoTCP {
			hd[l4+13] |= st.flags
			h.GSOType, h.CsumOffset = GSOTCPv4, csumOffTCP
			if st.version == 6 {
				h.GSOType = GSOTCPv6
			}
			if hd[l4+13]&tcpCWR != 0 {
				h.GSOType |= GSOECN
			}
		} else {
			binary.BigEndian.PutUint16(hd[l4+4:], uint16(l4len))
			h.GSOType, h.CsumOffset = GSOUDPL4, csumOffUDP
		}
		binary.BigEndian.PutUint16(hd[l4+int(h.CsumOffset):], PseudoHeaderChecksum(st.proto, src, dst, l4len))
		h.Encode(s)
		it.Header = h
		it.Vec[0] = s[:HeaderLen+hl]
		it.Len = int(st.total)
	}
}

// Packets returns how many input packets the Item carries.
func (it *Item) Packets() int { return len(it.Index) }
