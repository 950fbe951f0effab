package tundra

import (
	"errors"
	"strings"
)

// ErrInvalidArgument is wrapped by every error that refuses an argument
// before anything reaches the kernel. Match it with errors.Is.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrNotSupported is wrapped where this operating system has no
// implementation.
var ErrNotSupported = errors.New("not supported on this operating system")

// Error is the package's error. It names the operation, the device when one
// is known, the argument at fault when the caller gave a bad one, and wraps
// the cause: ErrInvalidArgument for a refused argument, or the lower
// package's error (*tun.OpError, *nl.Error) for a kernel refusal, so
// errors.Is(err, unix.EEXIST) and errors.As work.
type Error struct {
	Op   string // "create", "adopt", "close", ...
	Name string // the device, or ""
	Arg  string // the argument at fault ("address", "mtu", ...), or ""
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("tundra: ")
	b.WriteString(e.Op)
	if e.Name != "" {
		b.WriteString(" ")
		b.WriteString(e.Name)
	}
	if e.Arg != "" {
		b.WriteString(": ")
		b.WriteString(e.Arg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// invalid is the cause of an argument error: its text is the reason, and it
// matches ErrInvalidArgument.
type invalid struct{ reason error }

func (e invalid) Error() string        { return e.reason.Error() }
func (e invalid) Unwrap() error        { return e.reason }
func (e invalid) Is(target error) bool { return target == ErrInvalidArgument }

func argError(arg string, reason error) error {
	return &Error{Op: "create", Arg: arg, Err: invalid{reason}}
}
