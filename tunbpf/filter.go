package tunbpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// ErrInvalidFilter is wrapped by the error Filter.Spec and Filter.Program
// return for a Filter that cannot be turned into a program (an invalid
// prefix, an unknown Family, a SnapLen too large).
var ErrInvalidFilter = errors.New("invalid filter")

// Family restricts a Filter to one IP version.
type Family uint8

const (
	// AnyFamily lets IPv4 and IPv6 packets through (the zero value).
	AnyFamily Family = iota
	// IPv4Only drops every packet but IPv4.
	IPv4Only
	// IPv6Only drops every packet but IPv6.
	IPv6Only
)

// String returns "any", "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case AnyFamily:
		return "any"
	case IPv4Only:
		return "IPv4"
	case IPv6Only:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// Filter describes a ready-made filter program for a TUN device. The zero
// Filter passes every packet whole. A packet passes when it meets every rule
// that is set:
//
//   - Family: the packet is of that IP version.
//   - Protocols: its transport protocol (IPv4 protocol field, or the IPv6
//     next header after any extension headers) is one of them.
//   - DropPrefixes: its destination address is in none of them.
//   - AllowPrefixes: its destination address is in one of them. Prefixes
//     match only packets of their own family, so with only IPv4 prefixes
//     here every IPv6 packet is dropped.
//   - DropPorts and AllowPorts apply to TCP and UDP only: a TCP or UDP
//     packet passes when its destination port is in none of DropPorts and,
//     if AllowPorts is set, in AllowPorts. Other protocols (ICMP, for one)
//     are not affected by port rules; use Protocols to restrict them.
//
// Packets that pass are then truncated to SnapLen bytes when SnapLen is not
// zero and the packet is longer (counting from the IP header: this is the
// length a queue reads, without the PI or virtio-net header).
//
// Parsing decisions, made once for all rules:
//
//   - IPv4 options are honoured: the transport header is found from the IHL
//     field.
//   - IPv6 extension headers (hop-by-hop, routing, destination options,
//     fragment, authentication) are skipped, up to 8 of them; a packet with
//     more counts as malformed.
//   - Fragments: every fragment carries the protocol, so Protocols and the
//     prefix rules apply to all of them. Only the first fragment carries the
//     ports, so port rules apply to unfragmented packets and first
//     fragments, and non-first fragments pass them (a datagram whose first
//     fragment was dropped cannot be reassembled by the reader anyway, and
//     dropping the rest would break allowed fragmented traffic).
//   - Malformed packets are dropped by any Filter with at least one rule
//     besides SnapLen: a version nibble that is neither 4 nor 6, an IPv4
//     header shorter than 20 bytes or than its IHL, an IPv6 packet shorter
//     than its 40-byte header, extension headers or a TCP/UDP header cut off
//     before what a rule needs to read. A Filter with no rule but SnapLen
//     passes (and truncates) everything.
//
// Filter is a plain value: copy it freely and use it from any goroutine.
// The slices are read, never modified or retained, by Spec and Program.
type Filter struct {
	// Family, if not AnyFamily, drops packets of the other IP version.
	Family Family

	// Protocols, if not empty, lists the transport protocols let through
	// (IANA protocol numbers: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
	Protocols []uint8

	// AllowPrefixes, if not empty, lets through only packets whose
	// destination is in one of these prefixes (IPv4 or IPv6).
	AllowPrefixes []netip.Prefix

	// DropPrefixes drops packets whose destination is in one of these
	// prefixes. It is checked before AllowPrefixes.
	DropPrefixes []netip.Prefix

	// AllowPorts, if not empty, lets through only TCP and UDP packets
	// whose destination port is in the list.
	AllowPorts []uint16

	// DropPorts drops TCP and UDP packets whose destination port is in
	// the list.
	DropPorts []uint16

	// SnapLen, if not zero, truncates packets that pass to this many
	// bytes. It must not exceed math.MaxInt32.
	SnapLen uint32
}

// maxExtHeaders is how many IPv6 extension headers the programs skip.
const maxExtHeaders = 8

// Registers the programs keep their state in. LD_ABS and LD_IND need the
// context in R6, return their result in R0 and clobber R1-R5; R6-R9 survive.
const (
	regCtx   = asm.R6
	regFrag  = asm.R7 // 1 for a non-first fragment (filter); protocol (steering)
	regL4Off = asm.R8 // offset of the transport header from the IP header
	regProto = asm.R9 // transport protocol (filter); running hash (steering)
)

// offsetLen is the offset of the len field in struct __sk_buff, which
// socket filters may read: the packet length the filter decides on.
const offsetLen = 0

const (
	protoTCP = 6
	protoUDP = 17
)

// ipv6ExtHeaders are the IPv6 next-header values the programs skip:
// hop-by-hop options, routing, fragment, authentication, destination
// options.
var ipv6ExtHeaders = []int32{0, 43, 44, 51, 60}

// builder collects instructions and hands out unique labels.
type builder struct {
	insns   asm.Instructions
	n       int
	pending string // a label for the next instruction emitted
}

// emit appends instructions, giving the first one the pending label.
func (b *builder) emit(insns ...asm.Instruction) {
	for _, ins := range insns {
		if b.pending != "" {
			ins = ins.WithSymbol(b.pending)
			b.pending = ""
		}
		b.insns = append(b.insns, ins)
	}
}

// label returns a fresh label name.
func (b *builder) label(what string) string {
	b.n++
	return fmt.Sprintf("%s_%d", what, b.n)
}

// mark puts label l on the next instruction emitted. cilium/ebpf keeps one
// label per instruction, so when two labels fall on the same place the
// first one gets a "ja +0" of its own.
func (b *builder) mark(l string) {
	if b.pending != "" {
		b.insns = append(b.insns, asm.Ja.Label(l).WithSymbol(b.pending))
	}
	b.pending = l
}

func (f Filter) hasRules() bool {
	return f.Family != AnyFamily || len(f.Protocols) > 0 || len(f.AllowPrefixes) > 0 ||
		len(f.DropPrefixes) > 0 || len(f.AllowPorts) > 0 || len(f.DropPorts) > 0
}

func (f Filter) hasPortRules() bool { return len(f.AllowPorts) > 0 || len(f.DropPorts) > 0 }

func (f Filter) validate() error {
	if f.Family > IPv6Only {
		return fmt.Errorf("%w: unknown Family %d", ErrInvalidFilter, uint8(f.Family))
	}
	if f.SnapLen > math.MaxInt32 {
		return fmt.Errorf("%w: SnapLen %d exceeds %d", ErrInvalidFilter, f.SnapLen, math.MaxInt32)
	}
	for _, list := range [][]netip.Prefix{f.AllowPrefixes, f.DropPrefixes} {
		for _, p := range list {
			if !p.IsValid() {
				return fmt.Errorf("%w: invalid prefix %v", ErrInvalidFilter, p)
			}
		}
	}
	return nil
}

// Spec assembles the filter program. The result is a fresh
// *ebpf.ProgramSpec of type ebpf.SocketFilter, ready for ebpf.NewProgram;
// Program does both steps. Each protocol and port costs one instruction
// and each prefix up to nine, so filters with thousands of rules may
// exceed the 4096 instructions an unprivileged loader is allowed.
func (f Filter) Spec() (*ebpf.ProgramSpec, error) {
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("tunbpf: Filter.Spec: %w", err)
	}
	b := &builder{}
	if f.dropsAll(false) && f.dropsAll(true) {
		// No IP packet can pass; nothing else would either.
		b.emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
		return f.spec(b), nil
	}
	b.emit(asm.Mov.Reg(regCtx, asm.R1))
	if f.hasRules() {
		f.emitRules(b)
	}
	// Accept: the packet's length, or SnapLen when that is shorter.
	b.mark("accept")
	b.emit(asm.LoadMem(asm.R0, regCtx, offsetLen, asm.Word))
	if f.SnapLen != 0 {
		b.emit(
			asm.LoadImm(asm.R1, int64(f.SnapLen), asm.DWord),
			asm.JLE.Reg(asm.R0, asm.R1, "exit"),
			asm.Mov.Reg(asm.R0, asm.R1),
		)
	}
	b.mark("exit")
	b.emit(asm.Return())
	if f.hasRules() {
		b.mark("drop")
		b.emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
	}
	return f.spec(b), nil
}

func (f Filter) spec(b *builder) *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{
		Name:         "tundra_filter",
		Type:         ebpf.SocketFilter,
		Instructions: b.insns,
	}
}

// prefixes returns the prefixes of list of one family, masked.
func prefixes(list []netip.Prefix, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range list {
		if p.Addr().Is6() == v6 {
			out = append(out, p.Masked())
		}
	}
	return out
}

// dropsAll reports whether the rules drop every packet of one family
// without looking at it: the other Family, a DropPrefixes entry of length
// 0, or AllowPrefixes set but without a prefix of this family. The code for
// such a family is a single jump, which keeps the program free of
// unreachable instructions (the verifier refuses those).
func (f Filter) dropsAll(v6 bool) bool {
	if f.Family == IPv4Only && v6 || f.Family == IPv6Only && !v6 {
		return true
	}
	for _, p := range prefixes(f.DropPrefixes, v6) {
		if p.Bits() == 0 {
			return true
		}
	}
	return len(f.AllowPrefixes) > 0 && len(prefixes(f.AllowPrefixes, v6)) == 0
}

// allowsAll reports whether AllowPrefixes lets every address of one family
// through: it is empty, or holds a prefix of length 0 of that family.
func (f Filter) allowsAll(v6 bool) bool {
	if len(f.AllowPrefixes) == 0 {
		return true
	}
	for _, p := range prefixes(f.AllowPrefixes, v6) {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// checksPrefixes reports whether packets of one family need their
// destination address compared.
func (f Filter) checksPrefixes(v6 bool) bool {
	return len(prefixes(f.DropPrefixes, v6)) > 0 || !f.allowsAll(v6)
}

// Program assembles the filter and loads it into the kernel. The caller
// owns the result and closes it when done (it may do so right after
// AttachFilter). Loading needs the privileges described in the package
// documentation; a verifier rejection is returned as an error wrapping
// *ebpf.VerifierError.
func (f Filter) Program() (*ebpf.Program, error) {
	spec, err := f.Spec()
	if err != nil {
		return nil, err
	}
	return load("Filter.Program", spec)
}

// emitRules emits the parsing and rule checks; packets that fail a rule
// jump to "drop", the rest fall through to "accept".
func (f Filter) emitRules(b *builder) {
	// Version nibble. An empty packet fails the load and drops.
	b.emit(
		asm.LoadAbs(0, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.RSh.Imm(asm.R1, 4),
		asm.JEq.Imm(asm.R1, 4, "v4"),
		asm.JEq.Imm(asm.R1, 6, "v6"),
		asm.Ja.Label("drop"),
	)
	f.emitIPv4(b)
	f.emitIPv6(b)
	f.emitTransport(b)
}

func (f Filter) emitIPv4(b *builder) {
	if f.dropsAll(false) {
		b.mark("v4")
		b.emit(asm.Ja.Label("drop"))
		return
	}
	// R0 still holds the first byte: the header length is its low nibble
	// times four, at least 20, and the packet must hold it.
	b.mark("v4")
	b.emit(
		asm.Mov.Imm(regFrag, 0),
		asm.Mov.Reg(regL4Off, asm.R0),
		asm.And.Imm(regL4Off, 0x0f),
		asm.LSh.Imm(regL4Off, 2),
		asm.JLT.Imm(regL4Off, 20, "drop"),
		asm.LoadMem(asm.R1, regCtx, offsetLen, asm.Word),
		asm.JGT.Reg(regL4Off, asm.R1, "drop"),
		asm.LoadAbs(9, asm.Byte),
		asm.Mov.Reg(regProto, asm.R0),
	)
	if f.hasPortRules() {
		// Fragment offset (low 13 bits of bytes 6-7) not zero: no ports.
		skip := b.label("v4_first")
		b.emit(
			asm.LoadAbs(6, asm.Half),
			asm.And.Imm(asm.R0, 0x1fff),
			asm.JEq.Imm(asm.R0, 0, skip),
			asm.Mov.Imm(regFrag, 1),
		)
		b.mark(skip)
	}
	if f.checksPrefixes(false) {
		b.emit(
			asm.LoadAbs(16, asm.Word),
			asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word),
		)
		f.emitPrefixes(b, false)
	}
	b.emit(asm.Ja.Label("transport"))
}

func (f Filter) emitIPv6(b *builder) {
	if f.dropsAll(true) {
		b.mark("v6")
		b.emit(asm.Ja.Label("drop"))
		return
	}
	b.mark("v6")
	b.emit(
		asm.Mov.Imm(regFrag, 0),
		asm.Mov.Imm(regL4Off, 40),
		asm.LoadMem(asm.R1, regCtx, offsetLen, asm.Word),
		asm.JGT.Reg(regL4Off, asm.R1, "drop"),
		asm.LoadAbs(6, asm.Byte),
		asm.Mov.Reg(regProto, asm.R0),
	)
	if len(f.Protocols) > 0 || f.hasPortRules() {
		emitExtHeaderWalk(b, "drop", func(b *builder, isFirst string) {
			// Fragment header: offset in the upper 13 bits of bytes 2-3.
			b.emit(
				asm.LoadInd(asm.R0, regL4Off, 2, asm.Half),
				asm.And.Imm(asm.R0, 0xfff8),
				asm.JEq.Imm(asm.R0, 0, isFirst),
				asm.Mov.Imm(regFrag, 1),
			)
		})
	}
	if f.checksPrefixes(true) {
		// The destination address, as four host-order words on the stack.
		for i := int32(0); i < 4; i++ {
			b.emit(
				asm.LoadAbs(24+4*i, asm.Word),
				asm.StoreMem(asm.RFP, int16(-16+4*i), asm.R0, asm.Word),
			)
		}
		f.emitPrefixes(b, true)
	}
	b.emit(asm.Ja.Label("transport"))
}

// emitExtHeaderWalk skips IPv6 extension headers: regProto holds the next
// header and regL4Off the offset of the header it describes. onFragment
// emits the code run on a fragment header (regL4Off at its start), which
// must fall through or jump to the label it is given; the walk then goes on
// past the 8-byte header. With more than maxExtHeaders the packet goes to
// tooMany; otherwise the code after the walk runs with regProto the
// transport protocol and regL4Off its offset.
func emitExtHeaderWalk(b *builder, tooMany string, onFragment func(b *builder, next string)) {
	for range maxExtHeaders {
		generic, ah, frag, next := b.label("ext_generic"), b.label("ext_ah"), b.label("ext_frag"), b.label("ext_next")
		done := b.label("ext_done")
		b.emit(
			asm.JEq.Imm(regProto, 0, generic),
			asm.JEq.Imm(regProto, 43, generic),
			asm.JEq.Imm(regProto, 60, generic),
			asm.JEq.Imm(regProto, 44, frag),
			asm.JEq.Imm(regProto, 51, ah),
			asm.Ja.Label("walked"),
		)
		// Hop-by-hop, routing, destination options: length in 8-byte
		// units, not counting the first 8 bytes.
		b.mark(generic)
		b.emit(
			asm.LoadInd(asm.R0, regL4Off, 0, asm.Byte),
			asm.Mov.Reg(regProto, asm.R0),
			asm.LoadInd(asm.R0, regL4Off, 1, asm.Byte),
			asm.Add.Imm(asm.R0, 1),
			asm.LSh.Imm(asm.R0, 3),
			asm.Add.Reg(regL4Off, asm.R0),
			asm.Ja.Label(next),
		)
		// Authentication header: length in 4-byte units, minus 2.
		b.mark(ah)
		b.emit(
			asm.LoadInd(asm.R0, regL4Off, 0, asm.Byte),
			asm.Mov.Reg(regProto, asm.R0),
			asm.LoadInd(asm.R0, regL4Off, 1, asm.Byte),
			asm.Add.Imm(asm.R0, 2),
			asm.LSh.Imm(asm.R0, 2),
			asm.Add.Reg(regL4Off, asm.R0),
			asm.Ja.Label(next),
		)
		// Fragment header: 8 bytes.
		b.mark(frag)
		onFragment(b, done)
		b.mark(done)
		b.emit(
			asm.LoadInd(asm.R0, regL4Off, 0, asm.Byte),
			asm.Mov.Reg(regProto, asm.R0),
			asm.Add.Imm(regL4Off, 8),
		)
		b.mark(next)
	}
	// Still an extension header after maxExtHeaders of them.
	for _, nh := range ipv6ExtHeaders {
		b.emit(asm.JEq.Imm(regProto, nh, tooMany))
	}
	b.mark("walked")
}

// emitPrefixes checks the destination address, stored on the stack as one
// (IPv4, at fp-4) or four (IPv6, at fp-16) host-order words, against the
// prefixes of that family: a DropPrefixes match jumps to "drop", and with
// AllowPrefixes set an address in none of them does too.
func (f Filter) emitPrefixes(b *builder, v6 bool) {
	for _, p := range prefixes(f.DropPrefixes, v6) {
		emitPrefixMatch(b, p, "drop") // no /0 here: see dropsAll
	}
	if f.allowsAll(v6) {
		return
	}
	allowed := b.label("allowed")
	for _, p := range prefixes(f.AllowPrefixes, v6) {
		emitPrefixMatch(b, p, allowed) // no /0 here: see allowsAll
	}
	b.emit(asm.Ja.Label("drop"))
	b.mark(allowed)
}

// emitPrefixMatch jumps to target when the stored address is in p, and
// falls through otherwise.
func emitPrefixMatch(b *builder, p netip.Prefix, target string) {
	addr := p.Addr().AsSlice()
	base := int16(-4)
	if len(addr) == 16 {
		base = -16
	}
	miss := b.label("miss")
	bits := p.Bits()
	for i := 0; bits > 0; i++ {
		n := min(bits, 32)
		bits -= n
		mask := uint32(math.MaxUint32) << (32 - n)
		want := binary.BigEndian.Uint32(addr[4*i:]) & mask
		b.emit(asm.LoadMem(asm.R1, asm.RFP, base+int16(4*i), asm.Word))
		if n < 32 {
			b.emit(asm.LoadImm(asm.R2, int64(mask), asm.DWord), asm.And.Reg(asm.R1, asm.R2))
		}
		b.emit(
			asm.LoadImm(asm.R2, int64(want), asm.DWord),
			asm.JNE.Reg(asm.R1, asm.R2, miss),
		)
	}
	b.emit(asm.Ja.Label(target))
	b.mark(miss)
}

// emitTransport checks the protocol and the ports, then falls through to
// "accept".
func (f Filter) emitTransport(b *builder) {
	b.mark("transport")
	if len(f.Protocols) > 0 {
		ok := b.label("proto_ok")
		for _, p := range dedup(f.Protocols) {
			b.emit(asm.JEq.Imm(regProto, int32(p), ok))
		}
		b.emit(asm.Ja.Label("drop"))
		b.mark(ok)
	}
	if !f.hasPortRules() {
		b.emit(asm.Ja.Label("accept"))
		return
	}
	ports := b.label("ports")
	b.emit(
		asm.JEq.Imm(regProto, protoTCP, ports),
		asm.JEq.Imm(regProto, protoUDP, ports),
		asm.Ja.Label("accept"),
	)
	b.mark(ports)
	// Non-first fragments have no ports. A header cut off before the
	// destination port ends the program with 0 (drop).
	b.emit(
		asm.JNE.Imm(regFrag, 0, "accept"),
		asm.LoadInd(asm.R0, regL4Off, 2, asm.Half),
	)
	for _, p := range dedup(f.DropPorts) {
		b.emit(asm.JEq.Imm(asm.R0, int32(p), "drop"))
	}
	if len(f.AllowPorts) == 0 {
		b.emit(asm.Ja.Label("accept"))
		return
	}
	for _, p := range dedup(f.AllowPorts) {
		b.emit(asm.JEq.Imm(asm.R0, int32(p), "accept"))
	}
	b.emit(asm.Ja.Label("drop"))
}

func dedup[T uint8 | uint16](in []T) []T {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
