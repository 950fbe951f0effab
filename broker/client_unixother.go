//go:build unix && !linux

package broker

// verifyFDs has nothing to check with here yet.
func verifyFDs(fds []int, name string, tap bool) error { return nil }
