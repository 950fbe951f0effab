//go:build unix && !linux

package broker

import (
	"fmt"
	"net"
)

// peerCredentials is not implemented here yet (on macOS it would read
// LOCAL_PEERCRED and LOCAL_PEERPID). Failing refuses every connection,
// root's included, which is the safe answer.
func peerCredentials(c *net.UnixConn) (peer, error) {
	return peer{}, fmt.Errorf("peer credentials: %w", ErrNotSupported)
}
