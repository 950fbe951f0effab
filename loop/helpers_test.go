package loop

import (
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"golang.org/x/sys/unix"
)

// checkLeaks records the process's descriptors and goroutines and, when the
// test ends, fails it if any descriptor or goroutine is left over. Every
// test that makes a loop calls it first.
func checkLeaks(t *testing.T) { leakcheck.Check(t) }

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

// waitReadable waits until p, attached to l, has a packet to read: in the
// descriptor fd's queue, or on io_uring read into p's buffers already.
func waitReadable(t *testing.T, l *Loop, p *PacketFD, fd int) {
	t.Helper()
	waitFor(t, "a packet to be readable", func() bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(fds, 0); n == 1 {
			return true
		}
		ready := false
		onLoop(t, l, func() { deliver(l); ready = pendingPackets(p) > 0 })
		return ready
	})
}
