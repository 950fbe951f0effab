// Package leakcheck lets a test check that it left no file descriptor
// and no goroutine behind. It reads /dev/fd, which Linux and macOS both
// have, so the loop's portable tests use it as well as the privileged
// ones.
package leakcheck

import (
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
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

// NoNewFDs fails t if the process holds a descriptor now that it did not
// hold when before was taken (with FDs).
func NoNewFDs(t testing.TB, before []string) {
	t.Helper()
	had := make(map[string]bool, len(before))
	for _, fd := range before {
		had[fd] = true
	}
	var leaked []string
	for _, fd := range FDs(t) {
		if !had[fd] {
			leaked = append(leaked, fd)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("leaked file descriptors: %s", strings.Join(leaked, ", "))
	}
}

// Check takes a snapshot of the open descriptors and the number of
// goroutines now, and fails t at cleanup (registered here, so it runs
// after the cleanups of what the test makes later) if there are
// descriptors it did not hold or more goroutines, after giving finishing
// goroutines two seconds.
func Check(t testing.TB) {
	t.Helper()
	fds, goroutines := FDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > goroutines && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			stacks := make([]byte, 1<<16)
			t.Errorf("%d goroutines more than at the start:\n%s", n-goroutines, stacks[:runtime.Stack(stacks, true)])
		}
		NoNewFDs(t, fds)
	})
}
