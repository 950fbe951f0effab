package netnstest

import (
	"os"
	"sort"
	"strings"
	"testing"
)

// OpenFDs lists the process's open file descriptors with what they point at
// (from /proc/self/fd), sorted, so a test can compare before and after.
func OpenFDs(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	var fds []string
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		fds = append(fds, e.Name()+" -> "+target)
	}
	sort.Strings(fds)
	return fds
}

// CheckNoFDLeak fails t if the process holds a descriptor now that it did not
// hold when before was taken (with OpenFDs).
func CheckNoFDLeak(t testing.TB, before []string) {
	t.Helper()
	had := make(map[string]bool, len(before))
	for _, fd := range before {
		had[fd] = true
	}
	var leaked []string
	for _, fd := range OpenFDs(t) {
		if !had[fd] {
			leaked = append(leaked, fd)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("leaked file descriptors: %s", strings.Join(leaked, ", "))
	}
}
