//go:build !linux

package tundra

// system is, on Linux, the kernel interface device creation goes through
// (a test seam); elsewhere there is nothing to substitute.
type system struct{}
