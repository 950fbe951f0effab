//go:build !unix

package broker

import "context"

func (c *Client) create(ctx context.Context, r Request) (Created, error) {
	return Created{}, &Error{Op: "dial", Path: c.path(), Err: ErrNotSupported}
}
