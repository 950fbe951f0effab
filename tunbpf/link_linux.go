package tunbpf

import (
	"github.com/cilium/ebpf"

	"github.com/tundra-go/tundra"
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
