package loop

import (
	"time"
)

// backend is what the loop asks of the kernel's readiness mechanism: the
// epoll poller on Linux (loop_epoll_linux.go), the io_uring one when asked
// for (uring_linux.go), kqueue on macOS. Every method is loop-only except
// wake, which any goroutine may call.
type backend interface {
	add(fd int, tok uint64, ev Events) error
	mod(fd int, tok uint64, ev Events) error
	del(fd int) error
	// wait collects readiness, sleeping up to timeout (negative: forever,
	// zero: not at all); it returns the events collected and the system
	// calls it made.
	wait(timeout time.Duration) (n, calls int, err error)
	// event returns the token and readiness of the i-th event of the last
	// wait.
	event(i int) (uint64, Events)
	wake() error
	drainWake()
	close() error
}

var _ backend = (*poller)(nil)

// Backend names the kernel mechanism a loop waits with.
type Backend int

const (
	// BackendAuto lets New choose: epoll on Linux, kqueue on macOS, unless
	// the environment variable TUNDRA_LOOP_BACKEND names another one
	// ("epoll", "uring"; tests use it to run the suite on each backend).
	BackendAuto Backend = iota
	// BackendEpoll is epoll (Linux), the default there.
	BackendEpoll
	// BackendKqueue is kqueue (macOS).
	BackendKqueue
	// BackendURing is io_uring (Linux 5.13 and later): readiness as
	// multishot poll requests, completions reaped from the shared ring
	// without a system call when they are already there, and from Linux
	// 6.12 a PacketFD's reads as a multishot read into buffers the loop
	// lends the kernel and its batches as linked writes (see the package
	// documentation, Backends). Opt-in. Where
	// io_uring is unavailable (an older kernel, kernel.io_uring_disabled,
	// a seccomp filter answering EPERM or ENOSYS) New falls back to epoll;
	// Loop.Backend says which one runs and URingUnavailable says why.
	BackendURing
)

func (b Backend) String() string {
	switch b {
	case BackendAuto:
		return "auto"
	case BackendEpoll:
		return "epoll"
	case BackendKqueue:
		return "kqueue"
	case BackendURing:
		return "uring"
	}
	return "Backend(" + itoa(int(b)) + ")"
}

// WithBackend chooses the loop's backend (default BackendAuto). Asking for
// one the platform lacks is an error from New wrapping ErrNotSupported,
// except BackendURing on Linux, which falls back to epoll when io_uring
// cannot be used (see BackendURing).
func WithBackend(b Backend) Option { return func(c *config) { c.backend = b } }

// Backend reports the backend the loop runs on. Safe from any goroutine.
func (l *Loop) Backend() Backend { return l.kind }
