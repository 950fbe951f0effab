package tun

import (
	"errors"
	"strconv"
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
type OpError struct {
	Op   string // the operation, e.g. "TUNSETIFF"
	Name string // the interface name, or "" when none is known yet
	Err  error  // the cause, e.g. unix.EBUSY
}

// Error formats the error as "tun: OP NAME: CAUSE", for example
// "tun: TUNSETIFF tun7: device or resource busy". A name that holds spaces
// or unprintable bytes is quoted so the message stays unambiguous.
func (e *OpError) Error() string {
	s := "tun: " + e.Op
	if e.Name != "" {
		s += " " + quoteIfOdd(e.Name)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *OpError) Unwrap() error { return e.Err }

// quoteIfOdd quotes a name containing anything but printable, non-space
// ASCII: such names are exactly the ones a reader could misparse.
func quoteIfOdd(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return strconv.Quote(name)
		}
	}
	return name
}
