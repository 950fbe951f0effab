package broker

import (
	"errors"
	"io/fs"
	"strconv"
	"syscall"
)

// Status is the outcome the server reports in every response. It is a
// plain value, safe to copy and use from any goroutine.
type Status uint16

// The statuses of protocol version 1. A client may meet values not listed
// here from a newer server; they are failures, and String prints them as
// numbers.
const (
	// StatusOK: the device was created; its descriptors travel with the
	// response.
	StatusOK Status = 0
	// StatusBadRequest: the frame or a value in it was malformed or
	// invalid, descriptors were sent to the server, or the request did
	// not arrive before the deadline.
	StatusBadRequest Status = 1
	// StatusBadVersion: the server does not speak the frame's protocol
	// version.
	StatusBadVersion Status = 2
	// StatusUnauthorized: the peer is neither root nor a member of the
	// allowed group.
	StatusUnauthorized Status = 3
	// StatusDenied: the policy forbids the request (address prefix, name,
	// MTU, queues, TAP, or the uid's device quota).
	StatusDenied Status = 4
	// StatusBusy: too many connections, overall or from this uid; retry
	// later.
	StatusBusy Status = 5
	// StatusFailed: the request was allowed but creating the device
	// failed; the response usually carries the errno.
	StatusFailed Status = 6
)

var statusNames = [...]string{
	StatusOK:           "ok",
	StatusBadRequest:   "bad request",
	StatusBadVersion:   "unsupported protocol version",
	StatusUnauthorized: "unauthorized",
	StatusDenied:       "denied by policy",
	StatusBusy:         "busy",
	StatusFailed:       "creation failed",
}

// String returns a short lower-case name such as "denied by policy", or
// "status N" for a value this package does not know.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status " + strconv.Itoa(int(s))
}

// ErrNotSupported is wrapped by the errors of Client.Create on systems
// where it has no implementation.
var ErrNotSupported = errors.New("not supported on this operating system")

// ErrProtocol is wrapped by client errors caused by a response that breaks
// the protocol: a malformed frame, missing or surplus descriptors, a
// truncated control message, descriptors that are not the announced TUN
// device.
var ErrProtocol = errors.New("broker protocol violation")

// Error is the error type of the Client. It names the operation and the socket, and carries either the
// server's answer (Status, Message, Errno) or a local cause (Err).
//
// errors.Is(err, fs.ErrPermission) is true for StatusUnauthorized and
// StatusDenied, and for a local EACCES or EPERM, so a caller can treat
// "the broker refused" like "the kernel refused". errors.Is(err,
// unix.EBUSY) and the like match the server's errno. An *Error is not
// modified after it is returned and may be shared between goroutines.
type Error struct {
	// Op is the operation: "validate", "dial", "send", "receive" or
	// "create" (the server answered with a failure status).
	Op string
	// Path is the socket path.
	Path string
	// Status is the server's status when it answered, and StatusOK when
	// the failure is local (then Err is set).
	Status Status
	// Message is the server's explanation, or "".
	Message string
	// Errno is the server's errno for StatusFailed (on the server's
	// system, which is the client's), or 0.
	Errno syscall.Errno
	// Err is the local cause: a syscall error, a decoding error wrapping
	// ErrProtocol, a context error. Nil when the server answered.
	Err error
}

// Error formats as "broker: OP PATH: STATUS: MESSAGE" for a server answer
// and "broker: OP PATH: CAUSE" for a local failure.
func (e *Error) Error() string {
	s := "broker: " + e.Op
	if e.Path != "" {
		s += " " + e.Path
	}
	if e.Err != nil {
		return s + ": " + e.Err.Error()
	}
	s += ": " + e.Status.String()
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Errno != 0 && e.Message == "" {
		s += ": " + e.Errno.Error()
	}
	return s
}

// Unwrap returns the local cause and the server's errno, whichever are set.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Errno != 0 {
		errs = append(errs, e.Errno)
	}
	return errs
}

// Is reports fs.ErrPermission for the refusals StatusUnauthorized and
// StatusDenied. Other targets are matched through Unwrap.
func (e *Error) Is(target error) bool {
	return target == fs.ErrPermission && e.Err == nil &&
		(e.Status == StatusUnauthorized || e.Status == StatusDenied)
}
