package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrPrefixExhausted is wrapped by Run's error when a prefix of
// RewriteConfig has no address left for another peer.
var ErrPrefixExhausted = errors.New("no address left in the prefix")

// RewriteConfig says how Run moves a capture's addresses into a device's
// prefix (Options.Rewrite), so that the kernel takes the packets as its own
// traffic and its answers come back through the device.
//
// Each pair of addresses that talk to each other has an inside (the host
// that becomes the device's own address) and an outside (a peer, given its
// own address in the prefix: the first free host number, then the next).
// The same original address always gets the same peer address, and both
// directions of a conversation are rewritten consistently. The inside is
// Local when it names one of the two; otherwise it is guessed: a TCP SYN or
// an ICMP echo request comes from the outside, a SYN-ACK or an echo reply
// from the inside; failing those, the side of a TCP or UDP exchange on a
// port below 1024 is the inside, and failing that the first packet's
// destination is. Unspecified, loopback, multicast, broadcast and
// link-local addresses keep their value. Checksums are updated for the
// change (RFC 1624), so right ones stay right and wrong ones stay wrong;
// packets quoted by ICMP errors are not rewritten.
type RewriteConfig struct {
	// Prefixes holds, for each IP family to rewrite, the device's own
	// address with the length of its prefix, unmasked: 198.18.0.1/24,
	// fd00::1/64 (the form nl.Addr.Prefix has). Addresses of a family
	// without a prefix are left alone.
	Prefixes []netip.Prefix
	// Local lists addresses of the capture that stand for the host the
	// replay plays against: they become the device's own address. Without
	// it Run guesses, per pair of addresses (see above).
	Local []netip.Addr
}

// rewriter moves the addresses of replayed packets into the device's
// prefix, so that the kernel takes them as its own traffic and its answers
// come back through the device.
//
// Each pair of addresses that talk to each other has an inside (the host
// that becomes the device's own address) and an outside (a peer, given its
// own address in the prefix: the first free host number, then the next).
// The same original address always gets the same peer address, and both
// directions of a conversation are rewritten consistently. The inside is
// RewriteConfig.Local when it names one of the two; otherwise it is
// guessed: a TCP SYN or an ICMP echo request comes from the outside, a
// SYN-ACK or an echo reply from the inside; failing those, the side of a
// TCP or UDP exchange on a port below 1024 is the inside, and failing that
// the first packet's destination is. A firm clue (SYN, SYN-ACK, echo) seen
// after a guess made without one replaces the guess for later packets.
//
// Unspecified, loopback, multicast, broadcast and link-local addresses keep
// their value, so neighbour discovery and MLD stay what they were.
//
// Checksums are updated incrementally (RFC 1624) for the address change:
// IPv4 header, and TCP, UDP and ICMPv6 where the header is present. A
// checksum that was right stays right, even in a fragment; one that was
// wrong stays wrong by the same amount. Embedded packets quoted by ICMP
// errors are not rewritten.
//
// A rewriter is not safe for concurrent use.
type rewriter struct {
	own   [2]netip.Prefix // by family: [0] IPv4, [1] IPv6
	next  [2]netip.Addr   // last peer address handed out
	local map[netip.Addr]bool
	peers map[netip.Addr]netip.Addr
	pairs map[pairKey]*pairRole
	order []netip.Addr // originals in the order they were first mapped
	mapTo map[netip.Addr]netip.Addr
}

type pairKey struct{ a, b netip.Addr } // a.Less(b)

type pairRole struct {
	inside netip.Addr
	firm   bool
}

// newRewriter checks cfg and returns a rewriter.
func newRewriter(cfg RewriteConfig) (*rewriter, error) {
	rw := &rewriter{
		local: map[netip.Addr]bool{},
		peers: map[netip.Addr]netip.Addr{},
		pairs: map[pairKey]*pairRole{},
		mapTo: map[netip.Addr]netip.Addr{},
	}
	for _, p := range cfg.Prefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("replay: rewrite prefix %v is not valid", p)
		}
		a := p.Addr()
		if a.Is4In6() || a.Zone() != "" {
			return nil, fmt.Errorf("replay: rewrite prefix %v: use a plain IPv4 or IPv6 address", p)
		}
		f := family(a)
		if rw.own[f].IsValid() {
			return nil, fmt.Errorf("replay: two rewrite prefixes for one family: %v and %v", rw.own[f], p)
		}
		if !rewritable(a) {
			return nil, fmt.Errorf("replay: rewrite prefix %v: %v cannot be the device's address", p, a)
		}
		rw.own[f] = p
		rw.next[f] = p.Masked().Addr()
	}
	for _, a := range cfg.Local {
		rw.local[a] = true
	}
	return rw, nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// rewritable reports whether an address is a unicast address that may be
// moved into the device's prefix.
func rewritable(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	return a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// AddrMapping is one address Run moved into the device's prefix
// (Summary.Mappings).
type AddrMapping struct {
	Orig netip.Addr
	New  netip.Addr
}

// Mappings lists the addresses rewritten so far, in the order they were
// first seen. An original address that was the inside of one conversation
// and the outside of another appears once, with the last address it got.
func (rw *rewriter) Mappings() []AddrMapping {
	out := make([]AddrMapping, 0, len(rw.order))
	for _, a := range rw.order {
		out = append(out, AddrMapping{Orig: a, New: rw.mapTo[a]})
	}
	return out
}

// Rewrite moves the addresses of the IP packet p into the device's prefix,
// in place, and updates the checksums that cover them. It reports whether
// it changed anything. A packet that is not IPv4 or IPv6, or whose
// addresses are all kept, is left as it is.
func (rw *rewriter) Rewrite(p []byte) (bool, error) {
	ip, ok := parseIP(p)
	if !ok {
		return false, nil
	}
	f := family(ip.src)
	own := rw.own[f]
	if !own.IsValid() {
		return false, nil
	}
	rs, rd := rewritable(ip.src), rewritable(ip.dst)
	if !rs && !rd {
		return false, nil
	}
	var inside netip.Addr
	switch {
	case rs && rd:
		inside = rw.insideOf(&ip, p)
	case rd:
		// From an unspecified or link-local source: the destination is the
		// host on this link, unless Local says it is someone else.
		if !rw.localSet() || rw.local[ip.dst] {
			inside = ip.dst
		}
	case rs:
		if rw.local[ip.src] {
			inside = ip.src
		}
	}
	newSrc, newDst := ip.src, ip.dst
	var err error
	if rs {
		if newSrc, err = rw.mapAddr(ip.src, ip.src == inside); err != nil {
			return false, err
		}
	}
	if rd {
		if newDst, err = rw.mapAddr(ip.dst, ip.dst == inside); err != nil {
			return false, err
		}
	}
	if newSrc == ip.src && newDst == ip.dst {
		return false, nil
	}
	rw.apply(&ip, p, newSrc, newDst)
	return true, nil
}

func (rw *rewriter) localSet() bool { return len(rw.local) > 0 }

// mapAddr gives the new address of orig: the device's own if it is the
// inside, else its peer address.
func (rw *rewriter) mapAddr(orig netip.Addr, inside bool) (netip.Addr, error) {
	f := family(orig)
	var n netip.Addr
	if inside {
		n = rw.own[f].Addr()
	} else if pa, ok := rw.peers[orig]; ok {
		n = pa
	} else {
		var err error
		if n, err = rw.allocate(f); err != nil {
			return netip.Addr{}, fmt.Errorf("replay: rewriting %v: %w", orig, err)
		}
		rw.peers[orig] = n
	}
	if _, seen := rw.mapTo[orig]; !seen {
		rw.order = append(rw.order, orig)
	}
	rw.mapTo[orig] = n
	return n, nil
}

// allocate hands out the next host address of the family's prefix, never
// the device's own, the all-zeros host, or IPv4's broadcast.
func (rw *rewriter) allocate(f int) (netip.Addr, error) {
	pfx := rw.own[f]
	a := rw.next[f]
	for {
		a = a.Next()
		if !a.IsValid() || !pfx.Contains(a) {
			return netip.Addr{}, fmt.Errorf("%w %v", ErrPrefixExhausted, pfx)
		}
		if a == pfx.Addr() {
			continue
		}
		if f == 0 && pfx.Bits() < 31 && !pfx.Contains(a.Next()) {
			return netip.Addr{}, fmt.Errorf("%w %v", ErrPrefixExhausted, pfx) // the broadcast address
		}
		rw.next[f] = a
		return a, nil
	}
}

// insideOf decides which address of a two-unicast-address packet is the
// inside of its conversation.
func (rw *rewriter) insideOf(ip *ipInfo, p []byte) netip.Addr {
	if rw.local[ip.dst] {
		return ip.dst
	}
	if rw.local[ip.src] {
		return ip.src
	}
	key := pairKey{ip.src, ip.dst}
	if key.b.Less(key.a) {
		key.a, key.b = key.b, key.a
	}
	clue, firm := directionClue(ip, p)
	role := rw.pairs[key]
	switch {
	case role == nil:
		role = &pairRole{firm: firm}
		rw.pairs[key] = role
		if clue == clueSrcInside {
			role.inside = ip.src
		} else {
			role.inside = ip.dst
		}
	case !role.firm && firm:
		role.firm = true
		if clue == clueSrcInside {
			role.inside = ip.src
		} else {
			role.inside = ip.dst
		}
	}
	return role.inside
}

type clue int

const (
	clueNone clue = iota
	clueSrcOutside
	clueSrcInside
)

// directionClue looks for a sign of who started the conversation.
func directionClue(ip *ipInfo, p []byte) (c clue, firm bool) {
	l4 := ip.l4(p)
	switch ip.proto {
	case protoTCP:
		if len(l4) >= 14 {
			flags := l4[13]
			syn, ack := flags&0x02 != 0, flags&0x10 != 0
			switch {
			case syn && !ack:
				return clueSrcOutside, true
			case syn && ack:
				return clueSrcInside, true
			}
		}
		return portClue(l4)
	case protoUDP:
		return portClue(l4)
	case protoICMP:
		if len(l4) >= 1 && ip.version == 4 {
			switch l4[0] {
			case 8:
				return clueSrcOutside, true
			case 0:
				return clueSrcInside, true
			}
		}
	case protoICMPv6:
		if len(l4) >= 1 {
			switch l4[0] {
			case 128:
				return clueSrcOutside, true
			case 129:
				return clueSrcInside, true
			}
		}
	}
	return clueNone, false
}

// portClue: the side on a port below 1024 is the service, the inside.
func portClue(l4 []byte) (clue, bool) {
	if len(l4) < 4 {
		return clueNone, false
	}
	sp, dp := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	switch {
	case sp < 1024 && dp >= 1024:
		return clueSrcInside, false
	case dp < 1024 && sp >= 1024:
		return clueSrcOutside, false
	}
	return clueNone, false
}

// apply writes the new addresses and updates the checksums that cover
// them.
func (rw *rewriter) apply(ip *ipInfo, p []byte, src, dst netip.Addr) {
	var srcOff, dstOff, n int
	if ip.version == 4 {
		srcOff, dstOff, n = 12, 16, 4
	} else {
		srcOff, dstOff, n = 8, 24, 16
	}
	oldSrc := append([]byte(nil), p[srcOff:srcOff+n]...)
	oldDst := append([]byte(nil), p[dstOff:dstOff+n]...)
	newSrc, newDst := src.AsSlice(), dst.AsSlice()
	copy(p[srcOff:], newSrc)
	copy(p[dstOff:], newDst)

	if ip.version == 4 {
		cs := binary.BigEndian.Uint16(p[10:12])
		cs = adjustChecksum(cs, oldSrc, newSrc)
		cs = adjustChecksum(cs, oldDst, newDst)
		binary.BigEndian.PutUint16(p[10:12], cs)
	}
	if !usesPseudoHeader(ip.proto) || ip.l4off < 0 {
		return
	}
	at := ip.l4off + checksumOffset(ip.proto, ip.version)
	if at+2 > len(p) {
		return
	}
	cs := binary.BigEndian.Uint16(p[at : at+2])
	if ip.proto == protoUDP && ip.version == 4 && cs == 0 {
		return // no checksum
	}
	cs = adjustChecksum(cs, oldSrc, newSrc)
	if ip.pseudoDstOff == dstOff {
		cs = adjustChecksum(cs, oldDst, newDst)
	}
	if ip.proto == protoUDP && cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(p[at:at+2], cs)
}
