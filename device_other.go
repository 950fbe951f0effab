//go:build !linux && !darwin

package tundra

import (
	"fmt"
	"runtime"

	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/tun"
)

// On this operating system Create and Adopt never return a Device (macOS
// support arrives with the utun package's integration).

type sysDevice struct{}

func (sysDevice) close() error { return nil }

func notSupported(op string) error {
	return &Error{Op: op, Err: fmt.Errorf("%w (GOOS=%s)", ErrNotSupported, runtime.GOOS)}
}

func createDirect(plan) (*Device, error) { return nil, notSupported("create") }

func adoptBrokered(plan, broker.Created) (*Device, error) { return nil, notSupported("adopt") }

// Adopt fails with ErrNotSupported on this operating system and leaves fd
// untouched.
func Adopt(fd int) (*Device, error) { return nil, notSupported("adopt") }

// Flags returns 0.
func (d *Device) Flags() tun.Flags { return 0 }

// SetPersist fails with ErrNotSupported.
func (d *Device) SetPersist(bool) error { return notSupported("set persist") }
