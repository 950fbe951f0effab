package vnet

import (
	"errors"
	"strconv"
)

// The kinds of failure. Every error the package returns is an *Error
// wrapping exactly one of them.
var (
	// ErrTruncated: a buffer is shorter than the header or length field
	// that describes it.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed: fields contradict each other or the packet (a length
	// that disagrees with the buffer, a checksum offset outside the packet,
	// a hdr_len past the end, a GSO type for the wrong IP version, a GSO
	// size of 0, ...).
	ErrMalformed = errors.New("malformed")
	// ErrUnsupported: well-formed but outside what the package handles: an
	// unknown GSO type or flag, UDP fragmentation offload (GSO type 3), an
	// IPv6 extension header a super-packet cannot carry here.
	ErrUnsupported = errors.New("unsupported")
	// ErrNoRoom: the caller's buffers cannot hold the result; Error.Need
	// says how many buffers (or bytes) are needed.
	ErrNoRoom = errors.New("not enough room")
	// ErrNotNegotiated: a super-packet of a kind the destination device
	// has not enabled with TUNSETOFFLOAD (passthrough).
	ErrNotNegotiated = errors.New("offload not negotiated")
)

// Error is the package's error type.
type Error struct {
	Op     string // "decode", "split", "inspect", "forward", "coalesce"
	Reason string // what was wrong, with the numbers involved
	// Need is, for ErrNoRoom, the number of buffers the operation needs
	// (when too few were given) or the bytes one buffer must hold (when a
	// buffer is too short); 0 otherwise.
	Need int
	Err  error // the sentinel: ErrTruncated, ErrMalformed, ...
}

func (e *Error) Error() string {
	return "vnet: " + e.Op + ": " + e.Err.Error() + ": " + e.Reason
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func errorf(op string, kind error, reason string) error {
	return &Error{Op: op, Reason: reason, Err: kind}
}

func itoa(n int) string { return strconv.Itoa(n) }
