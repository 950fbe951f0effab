//go:build !amd64 || purego

package vnet

const (
	haveSIMD  = false
	simdMin   = int(^uint(0) >> 1) // never: haveSIMD is false
	simdBlock = 64
)

func sumSIMD(b []byte) uint64 { return sumScalar(b, 0) }

func copySumSIMD(dst, src []byte) uint64 {
	copy(dst, src)
	return sumScalar(src, 0)
}
