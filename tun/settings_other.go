//go:build !linux

package tun

// The device settings of settings_linux.go are TUN/TAP driver ioctls; on
// this OS no Device exists and each of them reports ErrNotSupported.

// SetSendBuffer fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) SetSendBuffer(bytes int) error { return notSupported("TUNSETSNDBUF") }

// SendBuffer fails with ErrNotSupported. Safe from any goroutine.
func (q *Queue) SendBuffer() (int, error) { return 0, notSupported("TUNGETSNDBUF") }

// SetTxFilter fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) SetTxFilter(f TxFilter) error { return notSupported("TUNSETTXFILTER") }

// ClearTxFilter fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) ClearTxFilter() error { return notSupported("TUNSETTXFILTER") }

// SetSocketFilter fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) SetSocketFilter(prog []BPFInstruction) error {
	return notSupported("TUNATTACHFILTER")
}

// ClearSocketFilter fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) ClearSocketFilter() error { return notSupported("TUNDETACHFILTER") }

// SetCarrier fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) SetCarrier(on bool) error { return notSupported("TUNSETCARRIER") }

// SetVnetHdrSize fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) SetVnetHdrSize(n int) error { return notSupported("TUNSETVNETHDRSZ") }

// VnetHdrSize fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) VnetHdrSize() (int, error) { return 0, notSupported("TUNGETVNETHDRSZ") }

// SetLinkType fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) SetLinkType(arphrd uint16) error { return notSupported("TUNSETLINK") }
