//go:build !linux

package loop

import "golang.org/x/sys/unix"

// ringState holds the io_uring backend's buffers on Linux. Here there is
// no ring: reads and writes are the descriptor's own.
type ringState struct{}

func (*ringState) readsByRing(*Loop) bool { return false }
func (*ringState) attachRing(*Loop) error { return ErrNotSupported }
func (*ringState) detachRing(*Loop) error { return nil }
func (*ringState) freeRing()              {}
func (*ringState) settleRing()            {}

func (*ringState) writeRing(*Loop, [][]byte, int) (n int, errno unix.Errno, short bool, calls int, ok bool) {
	return 0, 0, false, 0, false
}

func (p *PacketFD) readPacket(hdr, dst []byte) (n int, errno unix.Errno, sys bool) {
	n, errno = p.readDirect(hdr, dst)
	return n, errno, true
}
