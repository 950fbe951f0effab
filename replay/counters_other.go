//go:build !linux

package replay

import "errors"

// kernelCounters exists only on Linux, where the per-namespace counters
// live in /proc/net; elsewhere Run reports them as unavailable.
type kernelCounters struct{}

func openCounters(fd int, dev string) (*kernelCounters, error) {
	return nil, errors.New("kernel counters are read from /proc/net, which only Linux has")
}

func (kc *kernelCounters) read() (counterSet, error) {
	return nil, errors.New("kernel counters are not available on this system")
}

func (kc *kernelCounters) close() {}
