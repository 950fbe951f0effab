//go:build !linux

package broker

import "context"

// DirectCreate is the production CreateFunc on Linux. Here it has no
// implementation and fails with an *Error wrapping ErrNotSupported.
func DirectCreate(ctx context.Context, r Request) (Created, error) {
	return Created{}, &Error{Op: "create", Path: r.Name, Err: ErrNotSupported}
}
