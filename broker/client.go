package broker

import (
	"context"
	"time"
)

// DefaultSocketPath is where the server listens and the client connects
// unless told otherwise (as in Tundra).
const DefaultSocketPath = "/var/run/tundra.sock"

// DefaultClientTimeout bounds a Client.Create whose context has no
// deadline: long enough for the server's DefaultCreateTimeout.
const DefaultClientTimeout = 45 * time.Second

// Client asks a broker for devices. The zero value uses DefaultSocketPath
// and DefaultClientTimeout. A Client holds no connection (every Create
// dials its own), so one Client may be used from many goroutines at once;
// do not change its fields meanwhile.
type Client struct {
	// Path is the server's socket; "" means DefaultSocketPath.
	Path string
	// Timeout bounds each Create when its context has no deadline; 0
	// means DefaultClientTimeout.
	Timeout time.Duration
}

func (c *Client) path() string {
	if c == nil || c.Path == "" {
		return DefaultSocketPath
	}
	return c.Path
}

func (c *Client) timeout() time.Duration {
	if c == nil || c.Timeout <= 0 {
		return DefaultClientTimeout
	}
	return c.Timeout
}

// Create asks the server for the device r describes and returns its
// descriptors, one per queue, which the caller owns and must close
// (Created.Close). The device is already configured and up; it disappears
// when the last descriptor is closed, including when the process exits.
//
// Create validates r first (Request.Validate), then dials, sends one
// request and reads one response. Received descriptors are close-on-exec;
// a truncated control message (MSG_CTRUNC) or a count that differs from
// the one announced makes Create close every descriptor it received and
// fail with ErrProtocol. Extra descriptors are never kept. What the
// descriptors are is not checked here but by whoever adopts them, once:
// tun.AdoptQueues and utun.Adopt refuse anything but a TUN/TAP queue or a
// utun socket, and tundra's Create also compares the device's name and
// kind with the response.
//
// Every error is an *Error: Op "validate", "dial", "send" or "receive" for
// local failures, and "create" when the server refused or failed, with its
// Status, Message and Errno. Safe to call concurrently.
func (c *Client) Create(ctx context.Context, r Request) (Created, error) {
	if err := r.Validate(); err != nil {
		return Created{}, &Error{Op: "validate", Path: c.path(), Err: err}
	}
	return c.create(ctx, r)
}
