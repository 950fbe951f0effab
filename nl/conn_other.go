//go:build !linux

package nl

// dialTransport fails: rtnetlink exists only on Linux. The rest of the
// package compiles everywhere, so that code using it builds on every
// platform Tundra supports and fails at run time with a typed error.
func dialTransport() (Transport, error) {
	return nil, ErrNotSupported
}

// dialLinkEvents fails for the same reason: WatchLinks returns an *Error
// wrapping ErrNotSupported.
func dialLinkEvents() (eventSource, error) {
	return nil, ErrNotSupported
}
