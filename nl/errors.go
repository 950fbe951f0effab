package nl

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// Error is the one error type of this package: every failure, whether the
// kernel refused a request, a socket call failed or a reply could not be
// parsed, is an *Error naming the operation.
type Error struct {
	// Op names the operation: the method ("addaddr", "setlinkup",
	// "links", "dial", ...), followed by the socket call when that is
	// what failed ("addaddr: send", "links: recv").
	Op string
	// Errno is the kernel's error number, or 0 when the failure is not an
	// errno (for example a malformed reply).
	Errno unix.Errno
	// Message is the kernel's extended-ack explanation
	// (NLMSGERR_ATTR_MSG), or "" if it gave none.
	Message string
	// Offset is the byte offset, from the start of the request, of the
	// attribute the kernel rejected (NLMSGERR_ATTR_OFFS), or 0 if it did
	// not point at one.
	Offset uint32
	// Err is the underlying cause when it is not (only) an errno, such
	// as ErrMalformed or ErrDumpInterrupted.
	Err error
}

// Sentinel causes, found with errors.Is through an *Error.
var (
	// ErrMalformed reports a reply that breaks the netlink framing or
	// carries an attribute of the wrong size.
	ErrMalformed = errors.New("malformed netlink message")
	// ErrTruncated reports a datagram that did not fit the receive
	// buffer. It should not happen, as the buffer is sized from a peek
	// at the datagram, but a truncated reply is never parsed.
	ErrTruncated = errors.New("netlink reply truncated")
	// ErrDumpInterrupted reports a dump that the kernel marked
	// inconsistent (NLM_F_DUMP_INTR, the table changed while it was
	// being read) on every attempt. The *Error's Errno is unix.EINTR
	// too, and the dump is worth retrying later.
	ErrDumpInterrupted = errors.New("dump interrupted by concurrent changes")
	// ErrClosed reports use of a Conn or LinkWatcher after Close, and a
	// LinkWatcher.Next that Close interrupted. It also matches
	// net.ErrClosed, as closed sockets do elsewhere in Go.
	ErrClosed error = closedError{}
	// ErrOverrun reports that the kernel dropped notifications because
	// the LinkWatcher's socket buffer was full (ENOBUFS; the *Error's
	// Errno is unix.ENOBUFS too). Events were lost: the caller should
	// re-read the state it follows with a dump (Conn.Links), then go on
	// calling Next, which works again at once.
	ErrOverrun = errors.New("kernel dropped notifications: receive buffer overrun")
	// ErrNotSupported is the cause of Dial's error on systems without
	// rtnetlink (anything but Linux).
	ErrNotSupported = errors.New("rtnetlink is not supported on this system")
)

// closedError is ErrClosed's type, so that errors.Is finds net.ErrClosed
// through it while its text stays this package's.
type closedError struct{}

func (closedError) Error() string        { return "use of closed netlink connection" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// Error formats as `nl: OP: CAUSE: ERRNO: "MESSAGE" (offset N)`, leaving out
// the parts that are empty.
func (e *Error) Error() string {
	s := "nl: " + e.Op
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Errno != 0 {
		s += ": " + e.Errno.Error()
	}
	if e.Message != "" {
		s += ": " + strconv.Quote(e.Message)
	}
	if e.Offset != 0 {
		s += fmt.Sprintf(" (offset %d)", e.Offset)
	}
	return s
}

// Unwrap returns Errno when it is set, so that errors.Is(err, unix.EEXIST)
// works, and Err otherwise.
func (e *Error) Unwrap() error {
	if e.Errno != 0 {
		return e.Errno
	}
	return e.Err
}

// Is makes errors.Is find Err even when Errno is set too, as for
// ErrDumpInterrupted (which also carries unix.EINTR).
func (e *Error) Is(target error) bool {
	return e.Errno != 0 && e.Err != nil && errors.Is(e.Err, target)
}

// malformed returns an ErrMalformed cause with details; callers wrap it in
// an *Error naming the operation.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// invalid builds the error for an argument rejected before anything is sent:
// EINVAL, as the kernel would have answered, with the reason.
func invalid(op, format string, args ...any) *Error {
	return &Error{Op: op, Errno: unix.EINVAL, Err: fmt.Errorf(format, args...)}
}

// wrap turns any error into an *Error for op. An *Error keeps its fields,
// with op prepended when it named a lower-level step; a bare errno becomes
// Errno; anything else becomes Err.
func wrap(op string, err error) *Error {
	var ne *Error
	if errors.As(err, &ne) {
		c := *ne
		if c.Op == "" {
			c.Op = op
		} else if c.Op != op {
			c.Op = op + ": " + c.Op
		}
		return &c
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if errno == err {
			return &Error{Op: op, Errno: errno}
		}
		return &Error{Op: op, Errno: errno, Err: err}
	}
	return &Error{Op: op, Err: err}
}
