package loop

import (
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// checkLeaks records the process's descriptors and goroutines and, when the
// test ends, fails it if any descriptor or goroutine is left over. Every
// test that makes a loop calls it first.
func checkLeaks(t *testing.T) {
	t.Helper()
	fds := openFDs(t)
	goroutines := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Goroutines finish a moment after the channel that releases them is
		// closed; give them that moment.
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("leaked %d goroutines:\n%s", n-goroutines, buf)
		}
		had := map[string]bool{}
		for _, fd := range fds {
			had[fd] = true
		}
		var leaked []string
		for _, fd := range openFDs(t) {
			if !had[fd] {
				leaked = append(leaked, fd)
			}
		}
		if len(leaked) > 0 {
			t.Errorf("leaked descriptors: %s", strings.Join(leaked, ", "))
		}
	})
}

func openFDs(t *testing.T) []string {
	entries, err := os.ReadDir("/dev/fd")
	if err != nil {
		t.Fatalf("listing /dev/fd: %v", err)
	}
	var fds []string
	for _, e := range entries {
		target, err := os.Readlink("/dev/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, gone by now
		}
		fds = append(fds, e.Name()+" -> "+target)
	}
	sort.Strings(fds)
	return fds
}

func newLoop(t *testing.T, opts ...Option) *Loop {
	t.Helper()
	l, err := New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// pipe returns a non-blocking pipe; the test closes what the loop does not
// own.
func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatalf("pipe: %v", err)
	}
	for _, fd := range p {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	return p[0], p[1]
}

// dgramPair returns a non-blocking AF_UNIX datagram socket pair: a packet
// descriptor with the same one-packet-per-read semantics as a TUN queue.
func dgramPair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	return fds[0], fds[1]
}

func closeLater(t *testing.T, fds ...int) {
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
}

func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// onLoop runs fn on l and fails the test if it cannot.
func onLoop(t *testing.T, l *Loop, fn func()) {
	t.Helper()
	if err := l.Do(fn); err != nil {
		t.Fatalf("Do: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustWrite(t *testing.T, fd int, b []byte) {
	t.Helper()
	if _, err := unix.Write(fd, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}
