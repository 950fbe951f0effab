package broker

import (
	"context"
	"fmt"

	"github.com/tundra-go/tundra/tun"
)

// verifyFDs checks that every received descriptor is a TUN/TAP queue of the
// announced device, of the requested kind.
func verifyFDs(fds []int, name string, tap bool) error {
	for _, fd := range fds {
		got, flags, err := tun.Inspect(fd)
		if err != nil {
			return fmt.Errorf("received descriptor is not a TUN/TAP queue: %v", err)
		}
		if got != name {
			return fmt.Errorf("received descriptor belongs to %q, the response names %q", got, name)
		}
		if (flags&tun.FlagTAP != 0) != tap {
			return fmt.Errorf("received descriptor has flags %v, TAP=%t was asked", flags, tap)
		}
	}
	return nil
}

// Open is Create for a single-queue device, returned as a *tun.Device
// (tun.Adopt) ready for reading and writing packets; closing it removes the
// device. A request for more than one queue is an *Error: use Create and
// adopt each descriptor. Safe to call concurrently.
func (c *Client) Open(ctx context.Context, r Request) (*tun.Device, error) {
	if r.Queues > 1 {
		return nil, &Error{Op: "validate", Path: c.path(), Err: fmt.Errorf("queues: Open returns one queue, %d were asked; use Create", r.Queues)}
	}
	cr, err := c.Create(ctx, r)
	if err != nil {
		return nil, err
	}
	dev, err := tun.Adopt(cr.Fds[0])
	if err != nil {
		cr.Close()
		return nil, &Error{Op: "receive", Path: c.path(), Err: err}
	}
	return dev, nil
}
