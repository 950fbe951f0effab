package vnet

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the Internet checksum sum (RFC 1071) of b added to
// initial: the one's-complement sum of b read as big-endian 16-bit words,
// an odd last byte padded with a zero byte, folded to 16 bits and not
// complemented. The value to store in a checksum field is its complement,
// ^Checksum(...); a packet whose field is right sums to 0xffff.
//
// initial is the sum of whatever precedes b, such as PseudoHeaderChecksum,
// or the Checksum of an earlier piece of even length: sums of pieces chain
// as long as every piece but the last has an even length.
func Checksum(b []byte, initial uint16) uint16 {
	return bits.ReverseBytes16(fold(sum(b, uint64(bits.ReverseBytes16(initial)))))
}

// PseudoHeaderChecksum returns the sum of the TCP/UDP pseudo-header (RFC 793,
// RFC 8200 section 8.1): the source and destination addresses (both 4 or
// both 16 bytes), the protocol and the transport length (header and
// payload). It is what a checksum field holds in a packet whose checksum is
// left to the receiver (FlagNeedsCsum), and the initial value for Checksum
// over the transport header and payload.
func PseudoHeaderChecksum(proto uint8, src, dst []byte, length int) uint16 {
	return bits.ReverseBytes16(fold(pseudoSum(proto, src, dst, length)))
}

// pseudoSum is PseudoHeaderChecksum as an unfolded accumulator in the
// little-endian domain of sum.
func pseudoSum(proto uint8, src, dst []byte, length int) uint64 {
	l := uint32(length)
	s := uint64(proto)<<8 + uint64(bits.ReverseBytes16(uint16(l))) + uint64(bits.ReverseBytes16(uint16(l>>16)))
	if len(src) == 4 && len(dst) == 4 {
		return s + uint64(binary.LittleEndian.Uint32(src)) + uint64(binary.LittleEndian.Uint32(dst))
	}
	return sum(dst, sum(src, s))
}

// fold folds a 64-bit one's-complement accumulator to 16 bits. Because
// 2^16-1 divides 2^64-1, end-around folding keeps the value modulo 2^16-1.
func fold(acc uint64) uint16 {
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>16 + acc&0xffff
	acc = acc>>16 + acc&0xffff
	return uint16(acc)
}

// sum adds b to the accumulator acc and returns the new accumulator. It
// works in the little-endian domain: words are loaded in the machine-cheap
// little-endian order, and since the one's-complement sum commutes with
// byte swapping (RFC 1071, section 2(B)), the folded result is the
// byte-swapped big-endian sum. Callers swap at the edges (Checksum).
func sum(b []byte, acc uint64) uint64 {
	if len(b) >= simdMin && haveSIMD {
		n := len(b) &^ (simdBlock - 1)
		acc = addCarry(acc, sumSIMD(b[:n]))
		b = b[n:]
	}
	return sumScalar(b, acc)
}

// copySum copies src into dst (which must be at least as long and must not
// overlap it) and returns the accumulator sum(src, 0), in one pass over the
// data where the machine has a vector unit.
func copySum(dst, src []byte) uint64 {
	var acc uint64
	if len(src) >= simdMin && haveSIMD {
		n := len(src) &^ (simdBlock - 1)
		acc = copySumSIMD(dst[:n], src[:n])
		dst, src = dst[n:], src[n:]
	}
	copy(dst, src)
	return sumScalar(src, acc)
}

// addCarry adds two accumulators with end-around carry.
func addCarry(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	return s + c // cannot overflow: s <= 2^64-2 when c == 1
}

// sumScalar is the portable sum: a chain of 64-bit add-with-carry, eight
// words per iteration, the carry kept in the chain from one iteration to
// the next and folded back in at the end.
func sumScalar(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 64 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:40]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:48]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:56]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:64]), c)
		b = b[64:]
	}
	if len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	if len(b) >= 16 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		b = b[16:]
	}
	if len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		b = b[8:]
	}
	acc, c = bits.Add64(acc, 0, c)
	acc += c
	// Fewer than 8 bytes left: gather them into one word at their
	// little-endian positions (an odd last byte is the high byte of a
	// big-endian word, so the low byte of a little-endian one).
	var t uint64
	switch len(b) {
	case 7:
		t = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint16(b[4:]))<<32 | uint64(b[6])<<48
	case 6:
		t = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint16(b[4:]))<<32
	case 5:
		t = uint64(binary.LittleEndian.Uint32(b)) | uint64(b[4])<<32
	case 4:
		t = uint64(binary.LittleEndian.Uint32(b))
	case 3:
		t = uint64(binary.LittleEndian.Uint16(b)) | uint64(b[2])<<16
	case 2:
		t = uint64(binary.LittleEndian.Uint16(b))
	case 1:
		t = uint64(b[0])
	}
	return addCarry(acc, t)
}
