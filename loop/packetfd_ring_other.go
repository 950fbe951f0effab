//go:build !linux

package loop

import "golang.org/x/sys/unix"

// readRing exists on Linux only (the io_uring backend's buffers).
type readRing struct{}

func (p *PacketFD) readsByRing(*Loop) bool { return false }
func (p *PacketFD) attachRing(*Loop) error { return ErrNotSupported }
func (p *PacketFD) detachRing(*Loop) error { return nil }
func (p *PacketFD) freeRing()              {}
func (p *PacketFD) settleRing()            {}

func (p *PacketFD) readPacket(hdr, dst []byte) (n int, errno unix.Errno, sys bool) {
	n, errno = p.readDirect(hdr, dst)
	return n, errno, true
}

func (p *PacketFD) writeRing(*Loop, [][]byte, int) (n int, errno unix.Errno, short bool, calls int, ok bool) {
	return 0, 0, false, 0, false
}
