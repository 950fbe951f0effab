//go:build !linux

package tundra

import (
	"fmt"
	"net/netip"
	"runtime"

	"github.com/tundra-go/tundra/tun"
)

// Device is a TUN device. On this operating system Create and Adopt never
// return one (macOS support arrives with the utun package's integration).
type Device struct{}

func notSupported(op string) error {
	return &Error{Op: op, Err: fmt.Errorf("%w (GOOS=%s)", ErrNotSupported, runtime.GOOS)}
}

func create(spec) (*Device, error) { return nil, notSupported("create") }

// Adopt fails with ErrNotSupported on this operating system and leaves fd
// untouched.
func Adopt(fd int) (*Device, error) { return nil, notSupported("adopt") }

// Name returns "".
func (d *Device) Name() string { return "" }

// Index returns 0.
func (d *Device) Index() int { return 0 }

// Flags returns 0.
func (d *Device) Flags() tun.Flags { return 0 }

// Addr returns the zero Prefix.
func (d *Device) Addr() netip.Prefix { return netip.Prefix{} }

// Peer returns the zero Addr.
func (d *Device) Peer() netip.Addr { return netip.Addr{} }

// Fd returns -1.
func (d *Device) Fd() int { return -1 }

// Fds returns nil.
func (d *Device) Fds() []int { return nil }

// SetPersist fails with ErrNotSupported.
func (d *Device) SetPersist(bool) error { return notSupported("set persist") }

// Close fails with ErrNotSupported.
func (d *Device) Close() error { return notSupported("close") }
