//go:build !linux

package tundra

import (
	"fmt"

	"github.com/tundra-go/tundra/broker"
	"golang.org/x/sys/unix"
)

// brokerDevice makes the device s describes and returns close-on-exec
// duplicates of its descriptors, keeping none.
func brokerDevice(s plan) (broker.Created, error) {
	dev, err := createDirect(s)
	if err != nil {
		return broker.Created{}, err
	}
	// Our own descriptors go whatever happens; the client gets duplicates.
	defer dev.Close()
	out := broker.Created{Name: dev.Name(), Index: dev.Index()}
	for _, fd := range dev.Fds() {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			out.Close()
			return broker.Created{}, &Error{Op: "create", Name: dev.Name(), Err: fmt.Errorf("duplicating a queue: %w", err)}
		}
		out.Fds = append(out.Fds, dup)
	}
	return out, nil
}
