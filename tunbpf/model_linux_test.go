package tunbpf

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// This file holds a plain-Go statement of what the programs are meant to
// do, written from the documentation of Filter and FlowSteering rather
// than from the instructions, and builders for test packets. The tests run
// the kernel's verdict against it on crafted and random packets.

// modelLoadFails stands for an LD_ABS/LD_IND load past the end of the
// packet, which ends a socket filter with 0.
type modelLoadFails struct{}

// modelFilter returns what the filter program should return for pkt.
func modelFilter(f Filter, pkt []byte) (ret uint32) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(modelLoadFails); !ok {
				panic(r)
			}
			ret = 0
		}
	}()
	accept := uint32(len(pkt))
	if f.SnapLen != 0 && accept > f.SnapLen {
		accept = f.SnapLen
	}
	rules := f.Family != AnyFamily || len(f.Protocols) > 0 || len(f.AllowPrefixes) > 0 ||
		len(f.DropPrefixes) > 0 || len(f.AllowPorts) > 0 || len(f.DropPorts) > 0
	if !rules {
		return accept
	}
	portRules := len(f.AllowPorts) > 0 || len(f.DropPorts) > 0
	ld := loader(pkt)

	var (
		dst      netip.Addr
		proto    uint8
		l4       int
		nonFirst bool
	)
	switch ld.b(0) >> 4 {
	case 4:
		if f.Family == IPv6Only {
			return 0
		}
		l4 = int(pkt[0]&0x0f) * 4
		if l4 < 20 || l4 > len(pkt) {
			return 0
		}
		proto = pkt[9]
		nonFirst = binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0
		dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	case 6:
		if f.Family == IPv4Only || len(pkt) < 40 {
			return 0
		}
		proto, l4 = pkt[6], 40
		if len(f.Protocols) > 0 || portRules {
			var ok bool
			proto, l4, nonFirst, ok = walkExtHeaders(ld, proto, l4)
			if !ok {
				return 0 // too many extension headers
			}
		}
		dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	default:
		return 0
	}

	for _, p := range f.DropPrefixes {
		if p.Contains(dst) {
			return 0
		}
	}
	if len(f.AllowPrefixes) > 0 && !slices.ContainsFunc(f.AllowPrefixes, func(p netip.Prefix) bool { return p.Contains(dst) }) {
		return 0
	}
	if len(f.Protocols) > 0 && !slices.Contains(f.Protocols, proto) {
		return 0
	}
	if portRules && (proto == 6 || proto == 17) && !nonFirst {
		port := ld.h(l4 + 2)
		if slices.Contains(f.DropPorts, port) {
			return 0
		}
		if len(f.AllowPorts) > 0 && !slices.Contains(f.AllowPorts, port) {
			return 0
		}
	}
	return accept
}

// walkExtHeaders skips IPv6 extension headers as documented, returning the
// transport protocol, its offset, whether a fragment header said this is
// not the first fragment, and false when more than 8 headers remain.
func walkExtHeaders(ld loader, nh uint8, off int) (uint8, int, bool, bool) {
	nonFirst := false
	for range 8 {
		switch nh {
		case 0, 43, 60:
			nh, off = ld.b(off), off+(int(ld.b(off+1))+1)*8
		case 51:
			nh, off = ld.b(off), off+(int(ld.b(off+1))+2)*4
		case 44:
			if ld.h(off+2)&0xfff8 != 0 {
				nonFirst = true
			}
			nh, off = ld.b(off), off+8
		default:
			return nh, off, nonFirst, true
		}
	}
	switch nh {
	case 0, 43, 44, 51, 60:
		return nh, off, nonFirst, false
	}
	return nh, off, nonFirst, true
}

// modelHash returns what the steering program should return for pkt.
func modelHash(seed uint32, pkt []byte) (ret uint32) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(modelLoadFails); !ok {
				panic(r)
			}
			ret = 0
		}
	}()
	ld := loader(pkt)
	mix := func(h, w uint32) uint32 { return bits.RotateLeft32((h^w)*mixMul, 13) }
	h := seed
	var proto uint8
	var l4 int
	fragment := false
	switch ld.b(0) >> 4 {
	case 4:
		l4 = int(pkt[0]&0x0f) * 4
		h = mix(h, ld.w(12))
		h = mix(h, ld.w(16))
		proto = ld.b(9)
		h = mix(h, uint32(proto))
		fragment = ld.h(6)&0x3fff != 0
	case 6:
		for off := 8; off < 40; off += 4 {
			h = mix(h, ld.w(off))
		}
		proto, l4, fragment = ld.b(6), 40, false
		for range 8 {
			switch proto {
			case 0, 43, 60:
				proto, l4 = ld.b(l4), l4+(int(ld.b(l4+1))+1)*8
				continue
			case 51:
				proto, l4 = ld.b(l4), l4+(int(ld.b(l4+1))+2)*4
				continue
			case 44:
				fragment = true
				proto, l4 = ld.b(l4), l4+8
				continue
			}
			break
		}
		h = mix(h, uint32(proto))
	default:
		return 0
	}
	if !fragment && (proto == 6 || proto == 17) {
		h = mix(h, ld.w(l4))
	}
	h ^= h >> 16
	h *= fmixMul1
	h ^= h >> 13
	h *= fmixMul2
	h ^= h >> 16
	return h
}

// loader reads big-endian fields the way LD_ABS/LD_IND do, panicking with
// modelLoadFails past the end.
type loader []byte

func (l loader) need(off, n int) {
	if off < 0 || off+n > len(l) {
		panic(modelLoadFails{})
	}
}
func (l loader) b(off int) uint8  { l.need(off, 1); return l[off] }
func (l loader) h(off int) uint16 { l.need(off, 2); return binary.BigEndian.Uint16(l[off:]) }
func (l loader) w(off int) uint32 { l.need(off, 4); return binary.BigEndian.Uint32(l[off:]) }

// Packet builders. Checksums are left zero: the programs never read them.

// ipv4 builds an IPv4 header with the given options (a multiple of 4
// bytes) in front of payload. fragOff is in 8-byte units.
func ipv4(src, dst string, proto uint8, opts []byte, fragOff uint16, more bool, payload []byte) []byte {
	ihl := 20 + len(opts)
	p := make([]byte, ihl+len(payload))
	p[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	frag := fragOff & 0x1fff
	if more {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], frag)
	p[8] = 64
	p[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	copy(p[20:], opts)
	copy(p[ihl:], payload)
	return p
}

// ext is one IPv6 extension header: its type and its body after the
// next-header byte (and length byte, filled in here).
type ext struct {
	typ  uint8
	body []byte // for 0/43/60: 6+8k bytes; for 44: 6 bytes; for 51: 10+4k bytes
}

// ipv6 builds an IPv6 packet with the extension headers exts between the
// fixed header and payload, whose protocol is proto.
func ipv6(src, dst string, proto uint8, exts []ext, payload []byte) []byte {
	var chain []byte
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].typ
		}
		h := append([]byte{next, 0}, e.body...)
		switch e.typ {
		case 44:
			h[1] = 0
		case 51:
			h[1] = byte(len(h)/4 - 2)
		default:
			h[1] = byte(len(h)/8 - 1)
		}
		chain = append(chain, h...)
	}
	first := proto
	if len(exts) > 0 {
		first = exts[0].typ
	}
	p := make([]byte, 40, 40+len(chain)+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(chain)+len(payload)))
	p[6] = first
	p[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	p = append(p, chain...)
	return append(p, payload...)
}

// fragHdr returns the body of an IPv6 fragment header: offset in 8-byte
// units, more-fragments flag, identification.
func fragHdr(off uint16, more bool, id uint32) []byte {
	b := make([]byte, 6)
	v := off << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b, v)
	binary.BigEndian.PutUint32(b[2:], id)
	return b
}

// udp and tcp build transport headers (with payload for udp).
func udp(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u, sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	return u
}

func tcp(sport, dport uint16) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t, sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	t[12] = 5 << 4
	t[13] = 0x02 // SYN
	return t
}

func icmpEcho() []byte { return []byte{8, 0, 0, 0, 0, 1, 0, 1} }
