//go:build linux || darwin

package fdutil

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func pipe(t *testing.T) int {
	t.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil { // blocking, inheritable: Take fixes both
		t.Fatal(err)
	}
	unix.Close(p[1])
	return p[0]
}

func flags(t *testing.T, fd int) (cloexec, nonblock bool) {
	t.Helper()
	fdf, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fdf&unix.FD_CLOEXEC != 0, fl&unix.O_NONBLOCK != 0
}

// Without dup the descriptor itself is taken; with dup a new one, and the
// original is left open for the caller to close. Both end close-on-exec
// and non-blocking.
func TestTake(t *testing.T) {
	fd := pipe(t)
	got, err := Take(fd, false)
	if err != nil || got != fd {
		t.Fatalf("Take(%d, false) = %d, %v; want the same descriptor", fd, got, err)
	}
	if c, nb := flags(t, fd); !c || !nb {
		t.Errorf("taken: close-on-exec %t, non-blocking %t", c, nb)
	}
	unix.Close(fd)

	fd = pipe(t)
	defer unix.Close(fd)
	dup, err := Take(fd, true)
	if err != nil || dup == fd || dup < 3 {
		t.Fatalf("Take(%d, true) = %d, %v; want a new descriptor above 2", fd, dup, err)
	}
	defer unix.Close(dup)
	if c, nb := flags(t, dup); !c || !nb {
		t.Errorf("duplicate: close-on-exec %t, non-blocking %t", c, nb)
	}
}

// A closed descriptor is refused with the errno, named.
func TestTakeClosed(t *testing.T) {
	fd := pipe(t)
	unix.Close(fd)
	for _, dup := range []bool{false, true} {
		_, err := Take(fd, dup)
		var fe *Error
		if !errors.Is(err, unix.EBADF) || !errors.As(err, &fe) || fe.Op == "" {
			t.Errorf("Take(closed, %t) = %v, want a named EBADF", dup, err)
		}
	}
}
