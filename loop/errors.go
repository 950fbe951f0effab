package loop

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrWouldBlock is returned by non-blocking I/O that cannot proceed now: the
// descriptor has no packet to read (or no room to write), or the
// registration spent its budget for this round. The readiness callback has
// been armed and will run when the operation can make progress.
// errors.Is(ErrWouldBlock, unix.EAGAIN) is true.
var ErrWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string { return "loop: operation would block" }

// Is makes ErrWouldBlock match EAGAIN (and EWOULDBLOCK, the same value on
// Linux and macOS).
func (wouldBlock) Is(target error) bool { return target == unix.EAGAIN }

var (
	// ErrNotOwner is returned by loop-only methods called from a goroutine
	// other than the owning loop's, and by I/O on a PacketFD that is in the
	// middle of a handoff.
	ErrNotOwner = errors.New("loop: called from a goroutine that is not the owning loop")
	// ErrClosed is returned by operations on a closed loop or PacketFD.
	ErrClosed = errors.New("loop: closed")
	// ErrQueueFull is returned by Post when the loop's bounded queue of
	// functions is full; the function was not queued.
	ErrQueueFull = errors.New("loop: function queue full")
	// ErrStale is returned for a Handle whose registration has ended.
	ErrStale = errors.New("loop: stale handle (registration ended)")
	// ErrNotSupported is returned (wrapped) where the operating system has
	// no implementation.
	ErrNotSupported = errors.New("loop: not supported on this platform")
)

// OpError is the package's error for a failed system call or a refused
// argument. It names the operation and wraps the cause, so
// errors.Is(err, unix.EINVAL) works.
type OpError struct {
	Op  string // "epoll_ctl add", "writev", "readv", ...
	Fd  int    // the descriptor concerned, or -1
	Err error
}

func (e *OpError) Error() string {
	if e.Fd >= 0 {
		return "loop: " + e.Op + " fd " + itoa(e.Fd) + ": " + e.Err.Error()
	}
	return "loop: " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

func itoa(n int) string { return strconv.Itoa(n) }

// Causes wrapped by OpError for refused arguments, so callers can match them
// with errors.Is like the kernel's own answers.
var (
	errInvalid error = unix.EINVAL
	errBadFD   error = unix.EBADF
)
