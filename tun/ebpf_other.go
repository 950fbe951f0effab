//go:build !linux

package tun

import "errors"

// ErrNoProgram is wrapped by the error ClearFilterProgram and
// ClearSteeringProgram return on Linux when the Device has no program of
// that kind attached. On this OS those methods report ErrNotSupported.
var ErrNoProgram = errors.New("no eBPF program of this kind was attached through this Device")

// ErrBPFNotSupported is wrapped by the errors of SetFilterProgram and
// SetSteeringProgram on a Linux kernel that cannot attach eBPF programs to
// TUN/TAP devices. On this OS those methods report ErrNotSupported.
var ErrBPFNotSupported = errors.New("the kernel cannot attach eBPF programs to TUN/TAP devices (needs Linux 4.16 and CONFIG_BPF_SYSCALL)")

// SetFilterProgram fails with ErrNotSupported: eBPF filters on TUN devices
// are a Linux feature. Safe from any goroutine.
func (d *Device) SetFilterProgram(progFD int) error { return notSupported("TUNSETFILTEREBPF") }

// ClearFilterProgram fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) ClearFilterProgram() error { return notSupported("TUNSETFILTEREBPF detach") }

// SetSteeringProgram fails with ErrNotSupported: eBPF queue steering is a
// Linux feature. Safe from any goroutine.
func (d *Device) SetSteeringProgram(progFD int) error { return notSupported("TUNSETSTEERINGEBPF") }

// ClearSteeringProgram fails with ErrNotSupported. Safe from any goroutine.
func (d *Device) ClearSteeringProgram() error { return notSupported("TUNSETSTEERINGEBPF detach") }
