// Package leakcheck lets a test check that it left no file descriptor
// and no goroutine behind. It reads /dev/fd, which Linux and macOS both
// have, so the loop's portable tests use it as well as the privileged
// ones.
//
// Descriptors are compared by identity, not counted: an entry is the
// descriptor's number with the object it points at ("12 ->
// socket:[42296]", the kernel's inode number for sockets, pipes and
// namespaces; the path for files), so one closed and another opened in
// its place is still seen as new. A new descriptor fails the test only if
// it is still open after a grace period: goroutines the test started (a
// fake server's accepted connection, a child's pipe) may still be closing
// theirs when the test body ends, and on a loaded machine they can take a
// while to be scheduled. A real leak stays open, and is reported with what
// it points at.
package leakcheck

import (
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// grace is how long NoNewFDs and Check wait for new descriptors to close
// and extra goroutines to end before they report a leak. Variables so the
// package's own tests, which plant leaks, need not wait that long.
var (
	fdGrace        = 5 * time.Second
	goroutineGrace = 5 * time.Second
)

// FDs lists the process's open file descriptors with what they point at,
// sorted, so a test can compare before and after.
func FDs(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir("/dev/fd")
	if err != nil {
		t.Fatalf("listing /dev/fd: %v", err)
	}
	var fds []string
	for _, e := range entries {
		target, err := os.Readlink("/dev/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		fds = append(fds, e.Name()+" -> "+target)
	}
	sort.Strings(fds)
	return fds
}

// newFDs lists the descriptors open now that before does not hold.
func newFDs(t testing.TB, before []string) []string {
	t.Helper()
	had := make(map[string]bool, len(before))
	for _, fd := range before {
		had[fd] = true
	}
	var fresh []string
	for _, fd := range FDs(t) {
		if !had[fd] {
			fresh = append(fresh, fd)
		}
	}
	return fresh
}

// NoNewFDs fails t if the process holds a descriptor that it did not hold
// when before was taken (with FDs), and still holds it after the grace
// period (see the package comment). It returns as soon as none is left.
func NoNewFDs(t testing.TB, before []string) {
	t.Helper()
	deadline := time.Now().Add(fdGrace)
	for {
		leaked := newFDs(t, before)
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("leaked file descriptors (still open after %v): %s", fdGrace, strings.Join(leaked, ", "))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Check takes a snapshot of the open descriptors and the number of
// goroutines now, and fails t at cleanup (registered here, so it runs
// after the cleanups of what the test makes later) if there are
// descriptors it did not hold or more goroutines, after giving finishing
// goroutines and the descriptors they close the grace period.
func Check(t testing.TB) {
	t.Helper()
	fds, goroutines := FDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		for deadline := time.Now().Add(goroutineGrace); runtime.NumGoroutine() > goroutines && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			stacks := make([]byte, 1<<16)
			t.Errorf("%d goroutines more than at the start:\n%s", n-goroutines, stacks[:runtime.Stack(stacks, true)])
		}
		NoNewFDs(t, fds)
	})
}
