package loop

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newURingLoop makes a loop on the io_uring backend. A kernel without a
// usable io_uring skips the test, unless TUNDRA_LOOP_BACKEND=uring asked for
// the whole suite to run on it: then it fails.
// linuxBackends are the two Linux backends, for tests that run the same
// traffic through both and compare.
var linuxBackends = []struct {
	name string
	new  func(t *testing.T) *Loop
}{
	{"uring", func(t *testing.T) *Loop { return newURingLoop(t) }},
	{"epoll", func(t *testing.T) *Loop { return newLoop(t, WithBackend(BackendEpoll)) }},
}

func newURingLoop(t *testing.T, opts ...Option) *Loop {
	t.Helper()
	if err := URingUnavailable(); err != nil {
		if os.Getenv("TUNDRA_LOOP_BACKEND") == "uring" {
			t.Fatalf("TUNDRA_LOOP_BACKEND=uring but io_uring is unavailable: %v", err)
		}
		t.Skipf("io_uring unavailable: %v", err)
	}
	l := newLoop(t, append(opts, WithBackend(BackendURing))...)
	if l.Backend() != BackendURing {
		t.Fatalf("Backend() = %v with io_uring available, want uring", l.Backend())
	}
	return l
}

// The backend is chosen by option, by TUNDRA_LOOP_BACKEND under
// BackendAuto, and reported by Backend.
func TestBackendChoice(t *testing.T) {
	checkLeaks(t)
	env := os.Getenv("TUNDRA_LOOP_BACKEND")
	want := BackendEpoll
	if env == "uring" {
		want = BackendURing
		if err := URingUnavailable(); err != nil {
			t.Fatalf("TUNDRA_LOOP_BACKEND=uring but io_uring is unavailable: %v", err)
		}
	}
	if got := newLoop(t).Backend(); got != want {
		t.Errorf("default backend with TUNDRA_LOOP_BACKEND=%q: %v, want %v", env, got, want)
	}
	if got := newLoop(t, WithBackend(BackendEpoll)).Backend(); got != BackendEpoll {
		t.Errorf("WithBackend(epoll): %v", got)
	}
	newURingLoop(t)
	if _, err := New(WithBackend(BackendKqueue)); !errors.Is(err, ErrNotSupported) {
		t.Errorf("WithBackend(kqueue) on Linux: %v, want ErrNotSupported", err)
	}
}

// Where io_uring_setup is refused (EPERM from kernel.io_uring_disabled or
// seccomp, ENOSYS), BackendURing falls back to epoll, Backend says so and
// URingUnavailable gives the kernel's answer.
func TestURingFallback(t *testing.T) {
	checkLeaks(t)
	for _, errno := range []unix.Errno{unix.EPERM, unix.ENOSYS} {
		saved := ioUringSetup
		ioUringSetup = func(uint32, *iouParams) (int, error) { return -1, errno }
		err := URingUnavailable()
		l, nerr := New(WithBackend(BackendURing))
		ioUringSetup = saved
		if !errors.Is(err, errno) {
			t.Errorf("URingUnavailable with setup refused by %v: %v", errno, err)
		}
		if nerr != nil {
			t.Fatalf("New with io_uring refused by %v: %v, want the epoll fallback", errno, nerr)
		}
		if b := l.Backend(); b != BackendEpoll {
			t.Errorf("Backend() with io_uring refused by %v: %v, want epoll", errno, b)
		}
		r, w := pipe(t)
		closeLater(t, w)
		got := make(chan Events, 1)
		if _, err := l.Register(r, Registration{Events: Readable, Handler: func(ev Events) {
			select {
			case got <- ev:
			default:
			}
		}}); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, []byte("x"))
		if ev := <-got; ev&Readable == 0 {
			t.Errorf("fallback loop reported %v", ev)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// More readiness completions than the completion queue holds (8 entries,
// from MaxEvents(4)): the kernel
// ends the multishot requests it cannot post to (a completion without
// IORING_CQE_F_MORE, kept on its overflow list), and the backend must
// flush that list and submit those requests again. Every descriptor is
// then reported twice, for two rounds of writes. Without the re-arm the
// second round never arrives.
func TestURingMultishotRearm(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t, MaxEvents(4))
	const n = 100
	var calls [n]atomic.Int32
	writers := make([]int, n)
	buf := make([]byte, 16)
	for i := range n {
		r, w := pipe(t)
		writers[i] = w
		closeLater(t, w)
		if _, err := l.Register(r, Registration{Events: Readable, Handler: func(Events) {
			for {
				if m, err := unix.Read(r, buf); err != nil || m <= 0 {
					break
				}
			}
			calls[i].Add(1)
		}}); err != nil {
			t.Fatal(err)
		}
	}
	for round := int32(1); round <= 2; round++ {
		release := make(chan struct{})
		if err := l.Post(func() { <-release }); err != nil {
			t.Fatal(err)
		}
		for _, w := range writers {
			mustWrite(t, w, []byte("x"))
		}
		close(release)
		waitFor(t, "every pipe reported", func() bool {
			for i := range calls {
				if calls[i].Load() < round {
					return false
				}
			}
			return true
		})
	}
	var rearms uint64
	onLoop(t, l, func() { rearms = l.p.(*uring).rearms })
	if rearms == 0 {
		t.Errorf("no request was ended by the kernel and re-armed: the test did not overflow the completion queue")
	}
	t.Logf("%d requests re-armed", rearms)
}

// Closing the loop ends its poll requests before the ring goes, so the
// files they polled are released by the time Close returns: the pipe's
// write end sees no reader at once.
func TestURingCloseReleasesFiles(t *testing.T) {
	checkLeaks(t)
	l, err := New(WithBackend(BackendURing))
	if err != nil {
		t.Fatal(err)
	}
	if l.Backend() != BackendURing {
		l.Close()
		t.Skip("io_uring unavailable")
	}
	r, w := pipe(t)
	closeLater(t, w)
	if _, err := l.Register(r, Registration{Events: Readable, Handler: func(Events) {}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(w, []byte("x")); err != unix.EPIPE {
		t.Errorf("write after Close: %v, want EPIPE (the read end is still held)", err)
	}
}

// Unregister hands the descriptor back with no request left on it: closed
// by the caller, the file goes at once.
func TestURingUnregisterReleasesFile(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t)
	r, w := pipe(t)
	closeLater(t, w)
	h, err := l.Register(r, Registration{Events: Readable, Handler: func(Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Unregister(); err != nil {
		t.Fatal(err)
	}
	unix.Close(r)
	if _, err := unix.Write(w, []byte("x")); err != unix.EPIPE {
		t.Errorf("write after Unregister and close: %v, want EPIPE (the poll request still holds the read end)", err)
	}
}

// The structures shared with the kernel have the sizes of
// include/uapi/linux/io_uring.h on every architecture.
func TestURingABISizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_sqe", unsafe.Sizeof(iouSQE{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(iouCQE{}), 16},
		{"io_uring_params", unsafe.Sizeof(iouParams{}), 120},
		{"io_uring_getevents_arg", unsafe.Sizeof(iouGeteventsArg{}), 24},
		{"__kernel_timespec", unsafe.Sizeof(iouTimespec{}), 16},
		{"sqe.user_data offset", unsafe.Offsetof(iouSQE{}.userData), 32},
		{"sqe.poll32_events offset", unsafe.Offsetof(iouSQE{}.opFlags), 28},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
}
