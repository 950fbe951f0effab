//go:build !darwin

package utun

import (
	"fmt"
	"net/netip"
	"runtime"
)

// This file keeps the package's API compiling where utun does not exist.
// Nothing here pretends to work: every entry point fails with an *OpError
// wrapping ErrNotSupported. The framing and the struct builders, in other
// files, are real on every OS.

// Device is a utun interface. On this OS Open and Adopt never return one;
// its methods are safe from any goroutine and report ErrNotSupported.
type Device struct{ _ struct{} }

func notSupported(op string) error {
	return &OpError{Op: op, Err: fmt.Errorf("%w (GOOS=%s)", ErrNotSupported, runtime.GOOS)}
}

// Open fails with an *OpError wrapping ErrNotSupported on this OS.
func Open(unit int) (*Device, error) { return nil, notSupported("open") }

// Adopt fails with an *OpError wrapping ErrNotSupported on this OS and
// leaves fd untouched.
func Adopt(fd int) (*Device, error) { return nil, notSupported("adopt") }

// Name returns "".
func (d *Device) Name() string { return "" }

// Fd returns -1.
func (d *Device) Fd() int { return -1 }

// Close fails with ErrNotSupported.
func (d *Device) Close() error { return notSupported("close") }

// AddAddr fails with ErrNotSupported.
func (d *Device) AddAddr(p netip.Prefix, peer netip.Addr, noDAD bool) error {
	return notSupported("add address")
}

// DeleteAddr fails with ErrNotSupported.
func (d *Device) DeleteAddr(p netip.Prefix) error { return notSupported("delete address") }

// SetMTU fails with ErrNotSupported.
func (d *Device) SetMTU(mtu int) error { return notSupported("set MTU") }

// MTU fails with ErrNotSupported.
func (d *Device) MTU() (int, error) { return 0, notSupported("get MTU") }

// Flags fails with ErrNotSupported.
func (d *Device) Flags() (uint16, error) { return 0, notSupported("get flags") }

// SetUp fails with ErrNotSupported.
func (d *Device) SetUp(up bool) error { return notSupported("set up") }

// Index fails with ErrNotSupported.
func (d *Device) Index() (int, error) { return 0, notSupported("index") }
