package tun

import (
	"errors"

	"github.com/tundra-go/tundra/internal/operr"
)

// ErrNotSupported is wrapped by every error that Open, Adopt, Features and
// the Device and Queue methods return on an operating system where this
// package has no implementation (anything but Linux). Test for it with
// errors.Is.
var ErrNotSupported = errors.New("TUN/TAP through /dev/net/tun is not supported on this operating system")

// ErrInvalidName is wrapped by the error ValidateName returns, so callers
// can tell a rejected name from a kernel failure with errors.Is.
var ErrInvalidName = errors.New("invalid interface name")

// ErrNotMultiQueue is wrapped by the error AddQueue returns for a device that
// was not opened with IFF_MULTI_QUEUE: the kernel lets only one queue attach
// to such a device.
var ErrNotMultiQueue = errors.New("device is not multi-queue (open it with Config.MultiQueue)")

// ErrFramingMismatch is wrapped by the error Open returns when it joined an
// existing multi-queue device whose virtio-net header setting differs from
// the one requested. The kernel keeps the framing of a multi-queue device
// that already has queues and silently ignores the new queue's request, so
// reads and writes would not be framed the way the caller expects.
var ErrFramingMismatch = errors.New("existing multi-queue device has a different VnetHdr setting")

// OpError is the error type of this package. It names the operation that
// failed (a syscall or ioctl such as "TUNSETIFF", "open /dev/net/tun",
// "TUNSETQUEUE attach", "read", or a pure step such as "validate name") and
// the interface it concerned, and wraps the underlying error, usually a
// unix.Errno, so errors.Is(err, unix.EBUSY) works.
//
// An *OpError is immutable once returned and may be shared: Queue.Read and
// Queue.Write return the same preallocated value for every EAGAIN so they
// stay allocation-free. Do not modify a returned *OpError.
//
// The fields are Op (the operation), Name (the interface name, or "" when
// none is known yet) and Err (the cause). Error formats the error as
// "tun: OP NAME: CAUSE", for example "tun: TUNSETIFF tun7: device or
// resource busy"; a name that holds spaces or unprintable bytes is quoted
// so the message stays unambiguous. Unwrap
// returns Err, for errors.Is and errors.As.
//
// The shape is shared with the other device package (internal/operr); the
// private type argument keeps this package's *OpError a type of its own, so
// errors.As tells the two apart.
type OpError = operr.Error[tunErrors]

// tunErrors tags this package's OpError.
type tunErrors struct{}

// Package gives the prefix of this package's error messages.
func (tunErrors) Package() string { return "tun" }
