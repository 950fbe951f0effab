package loop

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// An eventfd on the loop: writes from many goroutines wake the handler on
// the loop's thread, which drains the counter to EAGAIN; every increment
// is seen once, and closing the loop closes the eventfd it owns.
func TestEventfdOnTheLoop(t *testing.T) {
	checkLeaks(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	var sum, offLoop, wakeups atomic.Uint64
	_, err = l.Register(efd, Registration{Events: Readable, Handler: func(ev Events) {
		wakeups.Add(1)
		if !l.OnLoop() {
			offLoop.Add(1)
		}
		var b [8]byte
		for {
			n, err := unix.Read(efd, b[:])
			if err == unix.EAGAIN {
				return // drained: edge-triggered, the next write wakes us
			}
			if err != nil || n != 8 {
				t.Errorf("eventfd read: %d, %v", n, err)
				return
			}
			sum.Add(binary.NativeEndian.Uint64(b[:]))
		}
	}})
	if err != nil {
		unix.Close(efd)
		l.Close()
		t.Fatal(err)
	}
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [8]byte
			binary.NativeEndian.PutUint64(b[:], uint64(w+1))
			for range each {
				if _, err := unix.Write(efd, b[:]); err != nil {
					t.Errorf("eventfd write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := uint64(each * (1 + 2 + 3 + 4))
	waitFor(t, "every increment", func() bool { return sum.Load() >= want })
	if got := sum.Load(); got != want || offLoop.Load() != 0 {
		t.Errorf("counted %d of %d, %d handler calls off the loop thread", got, want, offLoop.Load())
	}
	t.Logf("%d writes, %d handler calls", writers*each, wakeups.Load())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	// checkLeaks fails the test if the loop left the eventfd open.
}
