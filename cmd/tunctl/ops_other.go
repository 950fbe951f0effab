//go:build !linux

package main

import (
	"errors"
	"io"
	"runtime"
)

// tunctl's devices are Linux's /dev/net/tun; elsewhere every command
// fails after parsing (so -h still works).
var errNotLinux = errors.New("TUN/TAP devices of /dev/net/tun exist only on Linux (GOOS=" + runtime.GOOS + ")")

func create(request, io.Writer, io.Writer) error { return errNotLinux }
func remove(request, io.Writer) error            { return errNotLinux }
func show(request, io.Writer) error              { return errNotLinux }
