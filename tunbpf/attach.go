package tunbpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"

	"github.com/tundra-go/tundra/tun"
)

// ErrProgramType is wrapped by the error AttachFilter, AttachSteering and
// LoadProgram return for a program that is not of type ebpf.SocketFilter,
// the only type the kernel attaches to a TUN/TAP device. The check is made
// before any ioctl.
var ErrProgramType = errors.New("TUN/TAP devices take only socket filter programs")

// AttachFilter attaches prog as dev's filter (tun.Device.SetFilterProgram),
// replacing the filter attached before, if any. prog must be an
// ebpf.SocketFilter program: anything else gives an *tun.OpError wrapping
// ErrProgramType, a nil or closed prog one wrapping os.ErrClosed, both
// before any ioctl. A kernel that cannot attach eBPF filters to TUN devices
// gives an error wrapping both tun.ErrBPFNotSupported and
// ebpf.ErrNotSupported.
//
// The kernel keeps its own reference to the program: prog may be closed
// once AttachFilter returns, and the filter stays until dev.ClearFilterProgram,
// another attach, or the device's destruction. LinkFilter does the same
// for the front door's tundra.Device and returns a Link whose Close
// detaches. Safe to call from any goroutine.
func AttachFilter(dev *tun.Device, prog *ebpf.Program) error {
	return attachUnlinked(dev, prog, linkFilter)
}

// AttachSteering attaches prog as dev's steering program
// (tun.Device.SetSteeringProgram). The checks, errors and ownership are as
// for AttachFilter; a device that is not multi-queue gives an error
// wrapping tun.ErrNotMultiQueue. Detach it with dev.ClearSteeringProgram,
// or use LinkSteering, whose Link detaches on Close. Safe to call from any
// goroutine.
func AttachSteering(dev *tun.Device, prog *ebpf.Program) error {
	return attachUnlinked(dev, prog, linkSteering)
}

// attachUnlinked attaches prog to dev's hook without a Link, so that no
// earlier Link detaches it.
func attachUnlinked(dev *tun.Device, prog *ebpf.Program, kind linkKind) error {
	linksMu.Lock()
	defer linksMu.Unlock()
	if err := attachHook(dev, prog, kind); err != nil {
		return err
	}
	delete(links, linkKey{dev, kind})
	return nil
}

// attachHook checks prog and attaches it to dev's filter or steering hook.
// Called with linksMu held.
func attachHook(dev *tun.Device, prog *ebpf.Program, kind linkKind) error {
	if kind == linkFilter {
		return attach(dev, prog, "TUNSETFILTEREBPF", dev.SetFilterProgram)
	}
	return attach(dev, prog, "TUNSETSTEERINGEBPF", dev.SetSteeringProgram)
}

func attach(dev *tun.Device, prog *ebpf.Program, op string, set func(int) error) error {
	if prog == nil {
		return &tun.OpError{Op: op, Name: dev.Name(), Err: fmt.Errorf("nil program: %w", os.ErrClosed)}
	}
	if t := prog.Type(); t != ebpf.SocketFilter {
		return &tun.OpError{Op: op, Name: dev.Name(), Err: fmt.Errorf("%w: the program is of type %v", ErrProgramType, t)}
	}
	// A closed Program reports fd -1, which the kernel would take as
	// "detach": refuse it rather than silently detaching.
	fd := prog.FD()
	if fd < 0 {
		return &tun.OpError{Op: op, Name: dev.Name(), Err: fmt.Errorf("program: %w", os.ErrClosed)}
	}
	return withEBPFNotSupported(set(fd))
}

// withEBPFNotSupported makes a not-supported error from package tun match
// ebpf.ErrNotSupported as well, keeping the *tun.OpError for errors.As.
func withEBPFNotSupported(err error) error {
	var oe *tun.OpError
	if err == nil || !errors.As(err, &oe) {
		return err
	}
	if errors.Is(err, tun.ErrBPFNotSupported) || errors.Is(err, tun.ErrNotSupported) {
		return &tun.OpError{Op: oe.Op, Name: oe.Name, Err: fmt.Errorf("%w (%w)", oe.Err, ebpf.ErrNotSupported)}
	}
	return err
}

// load loads spec, explaining the usual permission failure.
func load(op string, spec *ebpf.ProgramSpec) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, explainLoad(op, err)
	}
	return prog, nil
}
