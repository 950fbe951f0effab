package tunbpf

import (
	"github.com/cilium/ebpf"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/tun"
)

// LinkFilter attaches prog as the filter of dev, a device of the front
// door (tundra.Create or tundra.Adopt), and returns the Link whose Close
// detaches it. The filter is one per device, for every queue. prog is
// checked and its errors are as for AttachFilter; on error nothing is
// attached and no Link is returned. The kernel keeps its own reference to
// the program: prog may be closed once LinkFilter returns. Safe from any
// goroutine.
func LinkFilter(dev *tundra.Device, prog *ebpf.Program) (*Link, error) {
	return attachLink(dev.TUN(), prog, linkFilter)
}

// LinkSteering attaches prog as the steering program of dev, which must
// have been created with more than one queue (tundra.Queues), and returns
// the Link whose Close detaches it. Checks, errors and ownership are as
// for AttachSteering and LinkFilter. Safe from any goroutine.
func LinkSteering(dev *tundra.Device, prog *ebpf.Program) (*Link, error) {
	return attachLink(dev.TUN(), prog, linkSteering)
}

// attachLink attaches prog to dev's hook and returns the Link that owns it.
func attachLink(dev *tun.Device, prog *ebpf.Program, kind linkKind) (*Link, error) {
	linksMu.Lock()
	defer linksMu.Unlock()
	if err := attachHook(dev, prog, kind); err != nil {
		return nil, err
	}
	l := &Link{dev: dev, kind: kind}
	links[linkKey{dev, kind}] = l
	return l, nil
}
