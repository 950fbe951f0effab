package tunbpf

import (
	"errors"
	"os"
	"sync"

	"github.com/tundra-go/tundra/tun"
)

// Link is a program attached to a device by LinkFilter or LinkSteering,
// as a link of cilium/ebpf's link package is: Close detaches it. A device
// has one filter and one steering program at a time, so a Link stops
// owning its hook when another program is attached to the same hook
// through this package (a later Link, AttachFilter or AttachSteering);
// closing it then leaves the newer program alone.
//
// Close the Link before the device, or the program stays: the kernel
// releases the programs of a TUN device only when the device is destroyed
// (drivers/net/tun.c, tun_free_netdev), which for a persistent device is
// not when its last descriptor closes. A Link's methods are safe from any
// goroutine.
type Link struct {
	dev  *tun.Device
	kind linkKind

	mu     sync.Mutex
	closed bool
}

type linkKind uint8

const (
	linkFilter linkKind = iota
	linkSteering
)

// linkKey is one hook of one device.
type linkKey struct {
	dev  *tun.Device
	kind linkKind
}

// links records, for each hook that a Link attached to, the Link that owns
// it now. linksMu also serialises every attach and detach this package
// makes, so that the record and the kernel agree. Entries go when their
// Link is closed or superseded.
var (
	linksMu sync.Mutex
	links   = map[linkKey]*Link{}
)

// Close detaches the Link's program from the device, unless another
// program has replaced it since (then it does nothing to the device). It
// returns nil as well when the device was closed first (nothing is left
// to detach through) or the program was already detached with the tun
// package's Clear methods; any other failure of the detach ioctl is
// returned as a *tun.OpError. Closing twice is safe: the second Close
// returns nil. Safe from any goroutine.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	linksMu.Lock()
	defer linksMu.Unlock()
	key := linkKey{l.dev, l.kind}
	if links[key] != l {
		return nil // superseded: the hook belongs to a newer program
	}
	delete(links, key)
	var err error
	if l.kind == linkFilter {
		err = l.dev.ClearFilterProgram()
	} else {
		err = l.dev.ClearSteeringProgram()
	}
	if errors.Is(err, os.ErrClosed) || errors.Is(err, tun.ErrNoProgram) {
		return nil
	}
	return withEBPFNotSupported(err)
}
