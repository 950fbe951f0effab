//go:build unix && !linux && !darwin

package broker

import (
	"fmt"
	"net"
)

// peerCredentials is not implemented on this system (Linux and macOS have
// it). Failing refuses every connection, root's included, which is the
// safe answer.
func peerCredentials(c *net.UnixConn) (peer, error) {
	return peer{}, fmt.Errorf("peer credentials: %w", ErrNotSupported)
}
