//go:build !linux

package loop

import "net/netip"

// MaxUDPBatch is the most datagrams one UDPConn call moves.
const MaxUDPBatch = 64

// MaxGROBytes is the receive room GRO needs after a buffer's offset.
const MaxGROBytes = 65535

// UDPConfig describes a UDP socket to attach to a loop.
type UDPConfig struct {
	OnReady func(u *UDPConn, ev Events)
	Budget  int
	GSO     bool
	GRO     bool
}

// UDPConn is a batched UDP socket on a loop. Batched UDP (recvmmsg,
// sendmmsg, UDP_SEGMENT) is Linux-only: AttachUDP fails elsewhere and no
// UDPConn exists.
type UDPConn struct{}

// AttachUDP fails with ErrNotSupported on this platform.
func (l *Loop) AttachUDP(fd int, cfg UDPConfig) (*UDPConn, error) {
	return nil, &OpError{Op: "attach udp", Fd: fd, Err: ErrNotSupported}
}

// GSO reports false.
func (u *UDPConn) GSO() bool { return false }

// GRO reports false.
func (u *UDPConn) GRO() bool { return false }

// Fd returns -1.
func (u *UDPConn) Fd() int { return -1 }

// Loop returns nil.
func (u *UDPConn) Loop() *Loop { return nil }

// Cancel fails with ErrNotSupported.
func (u *UDPConn) Cancel(Events) error { return ErrNotSupported }

// Notify fails with ErrNotSupported.
func (u *UDPConn) Notify(Events) error { return ErrNotSupported }

// Handoff fails with ErrNotSupported.
func (u *UDPConn) Handoff(*Loop, func(*UDPConn, Events)) error { return ErrNotSupported }

// Close fails with ErrNotSupported.
func (u *UDPConn) Close() error { return ErrNotSupported }

// RecvBatch fails with ErrNotSupported.
func (u *UDPConn) RecvBatch([][]byte, []int, []netip.AddrPort, int) (int, error) {
	return 0, ErrNotSupported
}

// SendBatch fails with ErrNotSupported.
func (u *UDPConn) SendBatch([][]byte, []netip.AddrPort, int) (int, error) {
	return 0, ErrNotSupported
}
