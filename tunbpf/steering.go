package tunbpf

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// FlowSteering describes a ready-made steering program for a multi-queue
// TUN device: it hashes each packet's flow so that every packet of one flow
// goes to the same queue, and different flows spread over the queues.
//
// The flow of an IPv4 or IPv6 packet is its source and destination address,
// its transport protocol and, for TCP and UDP, its source and destination
// port. IPv6 extension headers are skipped as Filter does (up to 8).
// Fragments carry no ports beyond the first, so every fragmented packet
// (IPv4 with the more-fragments flag or an offset, IPv6 with a fragment
// header) is hashed on addresses and protocol only: all fragments of a
// datagram land on one queue, possibly another than the flow's unfragmented
// packets. A packet that is not IPv4 or IPv6, or too short for the fields
// above, goes to the first queue.
//
// The kernel sends a packet to queue uint16(hash) % (attached queues) (see
// tun.Device.SetSteeringProgram); the hash mixes the fields with
// multiply-rotate steps and a final avalanche so that its low 16 bits are
// well spread. Seed changes every flow's hash: pick a random one so that
// senders cannot aim many flows at one queue. The hash is not symmetric:
// the two directions of a connection may hash differently, which does not
// matter here since the program only ever sees packets going into the
// device.
//
// FlowSteering is a plain value: copy it freely and use it from any
// goroutine.
type FlowSteering struct {
	// Seed is mixed into every hash.
	Seed uint32
}

// Hash constants: the 32-bit golden-ratio multiplier for each step, and
// the two multipliers of MurmurHash3's 32-bit finaliser for the avalanche.
const (
	mixMul   = 0x9e3779b1
	fmixMul1 = 0x85ebca6b
	fmixMul2 = 0xc2b2ae35
)

// Spec assembles the steering program: a fresh *ebpf.ProgramSpec of type
// ebpf.SocketFilter, ready for ebpf.NewProgram. Program does both steps.
func (s FlowSteering) Spec() *ebpf.ProgramSpec {
	const hash = regProto // the running hash, a 32-bit value
	const proto = regFrag
	b := &builder{}
	b.emit(
		asm.Mov.Reg(regCtx, asm.R1),
		asm.Mov.Imm32(hash, int32(s.Seed)),
		asm.LoadAbs(0, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.RSh.Imm(asm.R1, 4),
		asm.JEq.Imm(asm.R1, 4, "v4"),
		asm.JEq.Imm(asm.R1, 6, "v6"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)

	// IPv4: addresses at 12 and 16, protocol at 9, then ports unless the
	// packet is a fragment (more-fragments flag or offset set).
	b.mark("v4")
	b.emit(
		asm.Mov.Reg(regL4Off, asm.R0),
		asm.And.Imm(regL4Off, 0x0f),
		asm.LSh.Imm(regL4Off, 2),
		asm.LoadAbs(12, asm.Word),
	)
	emitMix(b, hash)
	b.emit(asm.LoadAbs(16, asm.Word))
	emitMix(b, hash)
	b.emit(
		asm.LoadAbs(9, asm.Byte),
		asm.Mov.Reg(proto, asm.R0),
	)
	emitMix(b, hash)
	b.emit(
		asm.LoadAbs(6, asm.Half),
		asm.And.Imm(asm.R0, 0x3fff),
		asm.JNE.Imm(asm.R0, 0, "final"),
		asm.Ja.Label("ports"),
	)

	// IPv6: addresses at 8..39, then the protocol after any extension
	// headers; a fragment header means no ports.
	b.mark("v6")
	for off := int32(8); off < 40; off += 4 {
		b.emit(asm.LoadAbs(off, asm.Word))
		emitMix(b, hash)
	}
	b.emit(
		asm.Mov.Imm(regL4Off, 40),
		asm.LoadAbs(6, asm.Byte),
		asm.Mov.Reg(proto, asm.R0),
	)
	// The walk keeps the next header in regProto, which here holds the
	// hash: keep the hash on the stack meanwhile, next to a flag set for
	// a fragment header.
	b.emit(
		asm.StoreMem(asm.RFP, -8, hash, asm.DWord),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, -16, asm.R1, asm.DWord),
		asm.Mov.Reg(regProto, proto),
	)
	emitExtHeaderWalk(b, "v6_walked", func(b *builder, _ string) {
		b.emit(
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreMem(asm.RFP, -16, asm.R1, asm.DWord),
		)
	})
	b.mark("v6_walked")
	b.emit(
		asm.Mov.Reg(proto, regProto),
		asm.LoadMem(hash, asm.RFP, -8, asm.DWord),
		asm.Mov.Reg(asm.R0, proto),
	)
	emitMix(b, hash)
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, -16, asm.DWord),
		asm.JNE.Imm(asm.R1, 0, "final"),
	)

	// Ports: both in one word, for TCP and UDP only. A header cut off
	// before them ends the program with 0, the first queue.
	b.mark("ports")
	b.emit(
		asm.JEq.Imm(proto, protoTCP, "load_ports"),
		asm.JEq.Imm(proto, protoUDP, "load_ports"),
		asm.Ja.Label("final"),
	)
	b.mark("load_ports")
	b.emit(asm.LoadInd(asm.R0, regL4Off, 0, asm.Word))
	emitMix(b, hash)

	// Avalanche, so that the low 16 bits the kernel keeps depend on
	// every input bit.
	b.mark("final")
	for _, step := range []struct {
		shift int32
		mul   uint32
	}{{16, fmixMul1}, {13, fmixMul2}, {16, 0}} {
		b.emit(
			asm.Mov.Reg32(asm.R1, hash),
			asm.RSh.Imm32(asm.R1, step.shift),
			asm.Xor.Reg32(hash, asm.R1),
		)
		if step.mul != 0 {
			b.emit(asm.Mul.Imm32(hash, bits32(step.mul)))
		}
	}
	b.emit(
		asm.Mov.Reg32(asm.R0, hash),
		asm.Return(),
	)
	return &ebpf.ProgramSpec{
		Name:         "tundra_steer",
		Type:         ebpf.SocketFilter,
		Instructions: b.insns,
	}
}

// Program assembles the steering program and loads it into the kernel. The
// caller owns the result and closes it when done (it may do so right after
// AttachSteering). Loading needs the privileges described in the package
// documentation.
func (s FlowSteering) Program() (*ebpf.Program, error) {
	return load("FlowSteering.Program", s.Spec())
}

// emitMix folds R0 into the 32-bit hash: h = rotl32((h ^ R0) * mixMul, 13).
// It uses R1 as scratch.
func emitMix(b *builder, h asm.Register) {
	b.emit(
		asm.Xor.Reg32(h, asm.R0),
		asm.Mul.Imm32(h, bits32(mixMul)),
		asm.Mov.Reg32(asm.R1, h),
		asm.RSh.Imm32(asm.R1, 19),
		asm.LSh.Imm32(h, 13),
		asm.Or.Reg32(h, asm.R1),
	)
}

// bits32 reinterprets a 32-bit constant as the signed immediate an
// instruction carries; 32-bit ALU operations use the same bits either way.
func bits32(u uint32) int32 { return int32(u) }
