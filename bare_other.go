//go:build !linux

package tundra

import (
	"fmt"
	"runtime"
)

// createBare fails: a utun device (macOS) cannot exist without its socket,
// and other systems have no implementation.
func createBare(plan) (*Device, error) {
	return nil, &Error{Op: "create", Err: fmt.Errorf("%w: bare devices (GOOS=%s)", ErrNotSupported, runtime.GOOS)}
}
