//go:build !linux && !darwin

package loop

import (
	"time"

	"golang.org/x/sys/unix"
)

// This platform has no backend: New returns ErrNotSupported, and nothing
// else can be reached without a Loop.

const wakeToken = ^uint64(0)

type poller struct{}

func newPoller(int) (*poller, error) {
	return nil, &OpError{Op: "new", Fd: -1, Err: ErrNotSupported}
}

func (*poller) add(int, uint64, Events) error        { return ErrNotSupported }
func (*poller) mod(int, uint64, Events) error        { return ErrNotSupported }
func (*poller) del(int) error                        { return ErrNotSupported }
func (*poller) wait(time.Duration) (int, int, error) { return 0, 0, ErrNotSupported }
func (*poller) event(int) (uint64, Events)           { return 0, 0 }
func (*poller) wake() error                          { return ErrNotSupported }
func (*poller) drainWake()                           {}
func (*poller) close() error                         { return nil }
func closeFD(fd int)                                 { unix.Close(fd) }
func pinThread(int) error                            { return ErrNotSupported }
func readFD(int, []byte) (int, unix.Errno)           { return 0, unix.ENOSYS }
func writeFD(int, []byte) (int, unix.Errno)          { return 0, unix.ENOSYS }
func readvFD(int, []unix.Iovec) (int, unix.Errno)    { return 0, unix.ENOSYS }
func writevFD(int, []unix.Iovec) (int, unix.Errno)   { return 0, unix.ENOSYS }
