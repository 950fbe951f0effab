package loop

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestIdleWakeupCostsOneWait: a loop woken from sleep by one readiness
// event, with nothing requeued, makes one epoll call for that round, not a
// zero-timeout pass that finds nothing followed by the blocking wait
// (issue 18: that pass cost a system call per wakeup below saturation).
func TestIdleWakeupCostsOneWait(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	r, w := pipe(t)
	closeLater(t, w)
	ran := make(chan struct{}, 1)
	if _, err := l.Register(r, Registration{Events: Readable, Handler: func(Events) {
		var b [16]byte
		for {
			if n, err := unix.Read(r, b[:]); err != nil || n == 0 {
				break // EAGAIN: drained; 0: the write end closed
			}
		}
		select {
		case ran <- struct{}{}:
		default:
		}
	}}); err != nil {
		t.Fatal(err)
	}
	const wakeups = 20
	time.Sleep(20 * time.Millisecond) // let the loop fall asleep
	s0 := l.Stats()
	for range wakeups {
		mustWrite(t, w, []byte{1})
		<-ran
		time.Sleep(2 * time.Millisecond) // asleep again before the next write
	}
	s1 := l.Stats()
	rounds, calls := s1.Rounds-s0.Rounds, s1.Syscalls-s0.Syscalls
	if rounds < wakeups || calls != rounds {
		t.Errorf("%d wakeups: %d rounds made %d system calls, want one wait per round", wakeups, rounds, calls)
	}
}
