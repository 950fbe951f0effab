//go:build amd64 && !purego

package vnet

import "golang.org/x/sys/cpu"

// On amd64 with AVX2, sum hands runs of at least simdMin bytes to sumAVX2,
// which adds the 16-bit words of 64 bytes per iteration in 32-bit vector
// lanes; the scalar add-with-carry chain does the rest.
var haveSIMD = cpu.X86.HasAVX2

const (
	simdMin   = 128
	simdBlock = 64
)

// sumAVX2 returns the sum of the little-endian 16-bit words of b as a plain
// integer (no folding). len(b) must be a multiple of 64.
//
//go:noescape
func sumAVX2(b []byte) uint64

func sumSIMD(b []byte) uint64 { return sumAVX2(b) }

// copySumAVX2 copies src to dst and returns sumAVX2(src). len(src) must be
// a multiple of 64, len(dst) at least len(src).
//
//go:noescape
func copySumAVX2(dst, src []byte) uint64

func copySumSIMD(dst, src []byte) uint64 { return copySumAVX2(dst, src) }
