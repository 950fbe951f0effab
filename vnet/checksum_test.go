package vnet

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// naiveChecksum is the textbook RFC 1071 loop: big-endian 16-bit words
// into a 32-bit accumulator, folded at the end.
func naiveChecksum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// equivalent reports whether two folded sums are the same one's-complement
// value (0x0000 and 0xffff are both zero).
func equivalent(a, b uint16) bool {
	norm := func(x uint16) uint16 {
		if x == 0xffff {
			return 0
		}
		return x
	}
	return norm(a) == norm(b)
}

func TestChecksumMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 70000)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	// All-ones data stresses the carries.
	ones := make([]byte, 70000)
	for i := range ones {
		ones[i] = 0xff
	}
	lengths := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 1448, 1500, 4096, 9001, 65535, 69999}
	for _, data := range [][]byte{buf, ones} {
		for _, n := range lengths {
			for _, off := range []int{0, 1, 2, 3} {
				if off+n > len(data) {
					continue
				}
				b := data[off : off+n]
				for _, init := range []uint16{0, 1, 0x1234, 0xfffe, 0xffff} {
					got, want := Checksum(b, init), naiveChecksum(b, init)
					if !equivalent(got, want) {
						t.Fatalf("len %d off %d init %#x: got %#04x want %#04x", n, off, init, got, want)
					}
				}
			}
		}
	}
	for i := 0; i < 2000; i++ {
		n := rng.IntN(3000)
		off := rng.IntN(len(buf) - n)
		init := uint16(rng.Uint32())
		b := buf[off : off+n]
		if got, want := Checksum(b, init), naiveChecksum(b, init); !equivalent(got, want) {
			t.Fatalf("len %d off %d: got %#04x want %#04x", n, off, got, want)
		}
	}
}

func TestSumSIMDMatchesScalar(t *testing.T) {
	if !haveSIMD {
		t.Skip("no SIMD sum on this machine")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// Big enough to cross the 16384-iteration chunk of the AVX2 loop.
	buf := make([]byte, 3<<20)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	ones := make([]byte, 3<<20)
	for i := range ones {
		ones[i] = 0xff
	}
	for _, data := range [][]byte{buf, ones} {
		for _, n := range []int{64, 128, 192, 1 << 10, 1 << 16, 1<<20 + 64, 3 << 20} {
			b := data[:n]
			if got, want := fold(sumSIMD(b)), fold(sumScalar(b, 0)); !equivalent(got, want) {
				t.Fatalf("len %d: simd %#04x scalar %#04x", n, got, want)
			}
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	src4, dst4 := []byte{10, 0, 0, 1}, []byte{192, 168, 7, 200}
	want := naiveChecksum([]byte{10, 0, 0, 1, 192, 168, 7, 200, 0, 6, 0x05, 0xdc}, 0)
	if got := PseudoHeaderChecksum(6, src4, dst4, 1500); got != want {
		t.Fatalf("v4: got %#04x want %#04x", got, want)
	}
	src6 := []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	dst6 := []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0, 2}
	ph := append(append(append([]byte{}, src6...), dst6...), 0, 1, 0x00, 0x10, 0, 0, 0, 17)
	want = naiveChecksum(ph, 0)
	if got := PseudoHeaderChecksum(17, src6, dst6, 65536+16); got != want {
		t.Fatalf("v6: got %#04x want %#04x", got, want)
	}
}

var sinkSum uint16

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{64, 128, 256, 512, 1024, 1448, 1500, 4096, 9000, 65535} {
		buf := make([]byte, n)
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		b.Run("vnet/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkSum = Checksum(buf, 0)
			}
		})
		b.Run("scalar/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkSum = fold(sumScalar(buf, 0))
			}
		})
		b.Run("naive/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkSum = naiveChecksum(buf, 0)
			}
		})
	}
}
