//go:build linux || darwin

// Package fdutil takes ownership of descriptors handed over from elsewhere
// (inherited, passed over a Unix socket, received from the broker), the one
// step tun and utun share when they adopt one.
package fdutil

import "golang.org/x/sys/unix"

// Error is a failed fcntl: Op names it ("F_DUPFD_CLOEXEC", "F_SETFD
// FD_CLOEXEC", "F_SETFL O_NONBLOCK"), Err is the errno. Callers wrap it in
// their package's error with the device's name.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns the errno.
func (e *Error) Unwrap() error { return e.Err }

// Take returns a close-on-exec, non-blocking descriptor numbered 3 or above
// for fd's open file: a duplicate (F_DUPFD_CLOEXEC) when dup is set or fd
// is 0, 1 or 2 (where a stray print to stdout would inject a packet), fd
// itself otherwise. It never closes fd: once the caller has committed, it
// closes fd if the result differs from it. On error nothing new is open and
// fd is still open; without a duplicate fd may have been made close-on-exec.
//
// O_NONBLOCK belongs to the open file description, which every copy of the
// descriptor shares (in this process or another): they become
// non-blocking too. Safe from any goroutine; nothing else may close fd
// meanwhile.
func Take(fd int, dup bool) (int, error) {
	nfd := fd
	if dup || fd < 3 {
		var err error
		if nfd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3); err != nil {
			return -1, &Error{Op: "F_DUPFD_CLOEXEC", Err: err}
		}
	} else if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return -1, &Error{Op: "F_SETFD FD_CLOEXEC", Err: err}
	}
	fl, err := unix.FcntlInt(uintptr(nfd), unix.F_GETFL, 0)
	if err == nil && fl&unix.O_NONBLOCK == 0 {
		_, err = unix.FcntlInt(uintptr(nfd), unix.F_SETFL, fl|unix.O_NONBLOCK)
	}
	if err != nil {
		if nfd != fd {
			unix.Close(nfd) // the flags never changed, so fd is as it was
		}
		return -1, &Error{Op: "F_SETFL O_NONBLOCK", Err: err}
	}
	return nfd, nil
}
