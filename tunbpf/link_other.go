//go:build !linux

package tunbpf

import (
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/tun"
)

// LinkFilter fails on this OS with a *tun.OpError wrapping both
// tun.ErrNotSupported and ebpf.ErrNotSupported: only Linux TUN devices
// take eBPF programs.
func LinkFilter(dev *tundra.Device, prog *ebpf.Program) (*Link, error) {
	return nil, linkNotSupported("TUNSETFILTEREBPF")
}

// LinkSteering fails on this OS as LinkFilter does.
func LinkSteering(dev *tundra.Device, prog *ebpf.Program) (*Link, error) {
	return nil, linkNotSupported("TUNSETSTEERINGEBPF")
}

func linkNotSupported(op string) error {
	return &tun.OpError{Op: op, Err: fmt.Errorf("%w (GOOS=%s) (%w)", tun.ErrNotSupported, runtime.GOOS, ebpf.ErrNotSupported)}
}
