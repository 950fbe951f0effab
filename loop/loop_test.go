package loop

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestHandlerRunsOnLoopThread(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	r, w := pipe(t)
	closeLater(t, w)
	got := make(chan bool, 1)
	_, err := l.Register(r, Registration{Events: Readable, Handler: func(ev Events) {
		var buf [16]byte
		unix.Read(r, buf[:])
		got <- l.OnLoop() && ev&Readable != 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	if l.OnLoop() {
		t.Fatal("OnLoop true on the test goroutine")
	}
	mustWrite(t, w, []byte("x"))
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("handler ran off the loop thread or without Readable")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler never ran")
	}
}

// Closing the loop closes the descriptors it owns, and calls OnClose
// instead where one is given.
func TestCloseClosesOwnedDescriptors(t *testing.T) {
	checkLeaks(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	r1, w1 := pipe(t)
	r2, w2 := pipe(t)
	closeLater(t, w1, w2)
	var onCloseRan atomic.Bool
	if _, err := l.Register(r1, Registration{Events: Readable, Handler: func(Events) {}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Register(r2, Registration{Events: Readable, Handler: func(Events) {}, OnClose: func() {
		onCloseRan.Store(true)
		unix.Close(r2)
	}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if isOpen(r1) {
		t.Error("loop closed but its descriptor is still open")
	}
	if !onCloseRan.Load() || isOpen(r2) {
		t.Error("OnClose did not run or did not close")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Register(r1, Registration{Events: Readable, Handler: func(Events) {}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Register after Close: %v, want ErrClosed", err)
	}
	if err := l.Post(func() {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Post after Close: %v, want ErrClosed", err)
	}
}

// Unregister hands the descriptor back: it stays open.
func TestUnregisterReturnsOwnership(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	r, w := pipe(t)
	closeLater(t, r, w)
	var calls atomic.Int32
	h, err := l.Register(r, Registration{Events: Readable, Handler: func(Events) { calls.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Unregister(); err != nil {
		t.Fatal(err)
	}
	if !isOpen(r) {
		t.Fatal("Unregister closed the descriptor")
	}
	mustWrite(t, w, []byte("x"))
	onLoop(t, l, func() {}) // one full round later
	time.Sleep(20 * time.Millisecond)
	onLoop(t, l, func() {})
	if calls.Load() != 0 {
		t.Fatal("handler called after Unregister")
	}
	if err := h.Unregister(); !errors.Is(err, ErrStale) {
		t.Errorf("second Unregister: %v, want ErrStale", err)
	}
	if err := h.Modify(Readable); !errors.Is(err, ErrStale) {
		t.Errorf("Modify on stale handle: %v, want ErrStale", err)
	}
}

// An event collected for a registration that ended in the same round must
// not reach a new registration that reuses both the descriptor number and
// the table slot.
func TestReusedDescriptorNeverGetsOldEvents(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	r1, w1 := pipe(t)
	r2, w2 := pipe(t)
	closeLater(t, w1, w2)

	var h2 Handle
	var oldCalls, newCalls atomic.Int32
	var reusedFd, newW int = -1, -1
	done := make(chan struct{})
	fired := false
	h1, err := l.Register(r1, Registration{Events: Readable, Handler: func(Events) {
		if fired {
			return // the hangup when the test closes w1
		}
		fired = true
		defer close(done)
		// Both pipes are ready in this round: end the second registration,
		// close its descriptor and register a fresh pipe in its place.
		if err := h2.Unregister(); err != nil {
			t.Errorf("unregister: %v", err)
			return
		}
		unix.Close(r2)
		var p [2]int
		if err := unix.Pipe(p[:]); err != nil {
			t.Errorf("pipe: %v", err)
			return
		}
		unix.SetNonblock(p[0], true)
		reusedFd, newW = p[0], p[1]
		h3, err := l.Register(p[0], Registration{Events: Readable, Handler: func(Events) { newCalls.Add(1) }})
		if err != nil {
			t.Errorf("register: %v", err)
			return
		}
		if h3.slot != h2.slot || h3.gen == h2.gen {
			t.Errorf("slot %d gen %d reused as slot %d gen %d: want same slot, new generation", h2.slot, h2.gen, h3.slot, h3.gen)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	_ = h1
	h2, err = l.Register(r2, Registration{Events: Readable, Handler: func(Events) { oldCalls.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	// Make both ready while the loop is busy, so one wait returns both.
	// Busy for sure: Post only queues the function, and a loop still in
	// its wait would see the first write alone (the test failed so, once,
	// on a loaded machine).
	release, busy := make(chan struct{}), make(chan struct{})
	if err := l.Post(func() { close(busy); <-release }); err != nil {
		t.Fatal(err)
	}
	<-busy
	mustWrite(t, w1, []byte("a"))
	mustWrite(t, w2, []byte("b"))
	before := l.Stats().Stale
	close(release)
	<-done
	onLoop(t, l, func() {})
	closeLater(t, reusedFd, newW)
	if reusedFd != r2 {
		t.Logf("kernel gave fd %d, not the reused %d; the slot reuse is still checked", reusedFd, r2)
	}
	if n := oldCalls.Load(); n != 0 {
		t.Errorf("old handler called %d times after its registration ended", n)
	}
	if n := newCalls.Load(); n != 0 {
		t.Errorf("new registration received %d events meant for the old one", n)
	}
	if got := l.Stats().Stale - before; got != 1 {
		t.Errorf("stale events dropped: %d, want 1", got)
	}
}

// A handler that closes the loop stops the round: later events are not
// dispatched, and the loop's descriptors are closed.
func TestCloseDuringDispatch(t *testing.T) {
	checkLeaks(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	r1, w1 := pipe(t)
	r2, w2 := pipe(t)
	closeLater(t, w1, w2)
	var calls atomic.Int32
	handler := func(Events) {
		calls.Add(1)
		if err := l.Close(); err != nil {
			t.Errorf("Close from handler: %v", err)
		}
	}
	for _, fd := range []int{r1, r2} {
		if _, err := l.Register(fd, Registration{Events: Readable, Handler: handler}); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	if err := l.Post(func() { <-release }); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w1, []byte("a"))
	mustWrite(t, w2, []byte("b"))
	close(release)
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("loop did not stop")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d handlers ran, want 1: the close must stop the round", n)
	}
	if isOpen(r1) || isOpen(r2) {
		t.Error("descriptors still open after the loop closed")
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close after stop: %v", err)
	}
}

// A handler that requeues instead of draining shares the loop fairly: with
// two busy pipes and a budget of one read per round, their handlers
// alternate.
func TestRequeueIsFair(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	var mu sync.Mutex
	var order []int
	remaining := [2]int{20, 20}
	done := make(chan struct{})
	var handles [2]Handle
	var fds [2]int
	for i := range 2 {
		r, w := pipe(t)
		closeLater(t, w)
		fds[i] = r
		mustWrite(t, w, make([]byte, 20))
	}
	// Register both in one callback, so both are ready in the same round.
	onLoop(t, l, func() {
		for i := range 2 {
			h, err := l.Register(fds[i], Registration{Events: Readable, Budget: 1, Handler: func(ev Events) {
				var b [1]byte
				n, _ := unix.Read(fds[i], b[:])
				if n != 1 {
					return // drained: nothing to requeue
				}
				mu.Lock()
				order = append(order, i)
				remaining[i]--
				if remaining[0] == 0 && remaining[1] == 0 {
					close(done)
				}
				mu.Unlock()
				handles[i].Requeue(Readable)
			}})
			if err != nil {
				t.Error(err)
			}
			handles[i] = h
		}
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("pipes not drained")
	}
	mu.Lock()
	defer mu.Unlock()
	for k := 2; k < len(order); k++ {
		if order[k] == order[k-1] && order[k-1] == order[k-2] {
			t.Fatalf("handler %d ran three rounds in a row while the other had work: %v", order[k], order)
		}
	}
	if l.Stats().Requeues == 0 {
		t.Error("no requeues counted")
	}
}

// Posts from many goroutines all run, once each, on the loop thread, and
// wakeups are coalesced.
func TestWakeupStormCoalesces(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t, QueueSize(100000))
	const goroutines, each = 8, 1000
	var ran, offLoop atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for {
					err := l.Post(func() {
						ran.Add(1)
						if !l.OnLoop() {
							offLoop.Add(1)
						}
					})
					if err == nil {
						break
					}
					if !errors.Is(err, ErrQueueFull) {
						t.Errorf("Post: %v", err)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	onLoop(t, l, func() {})
	if got := ran.Load(); got != goroutines*each {
		t.Fatalf("ran %d functions, posted %d", got, goroutines*each)
	}
	if offLoop.Load() != 0 {
		t.Fatalf("%d posted functions ran off the loop thread", offLoop.Load())
	}

	// Deterministic coalescing: while the loop is held in a callback, 100
	// posts cost one wakeup.
	release := make(chan struct{})
	held := make(chan struct{})
	if err := l.Post(func() { close(held); <-release }); err != nil {
		t.Fatal(err)
	}
	<-held
	before := l.Stats().Wakeups
	var count atomic.Int32
	for range 100 {
		if err := l.Post(func() { count.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	onLoop(t, l, func() {})
	if count.Load() != 100 {
		t.Fatalf("ran %d of 100", count.Load())
	}
	if d := l.Stats().Wakeups - before; d > 2 {
		t.Errorf("100 posts while the loop was busy cost %d wakeups, want at most 2", d)
	}
}

func TestQueueFull(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t, QueueSize(4))
	release := make(chan struct{})
	held := make(chan struct{})
	if err := l.Post(func() { close(held); <-release }); err != nil {
		t.Fatal(err)
	}
	<-held // the queue is empty again, the loop is busy
	var ran atomic.Int32
	for i := range 4 {
		if err := l.Post(func() { ran.Add(1) }); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	if err := l.Post(func() { ran.Add(1) }); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fifth post into a queue of 4: %v, want ErrQueueFull", err)
	}
	close(release)
	waitFor(t, "the 4 queued functions", func() bool { return ran.Load() == 4 })
	onLoop(t, l, func() {})
	if ran.Load() != 4 {
		t.Fatalf("ran %d, want 4", ran.Load())
	}
}

func TestTimersRunInOrder(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	var mu sync.Mutex
	var order []string
	record := func(s string) func() {
		return func() {
			if !l.OnLoop() {
				t.Errorf("timer %s ran off the loop thread", s)
			}
			mu.Lock()
			order = append(order, s)
			mu.Unlock()
		}
	}
	done := make(chan struct{})
	// Set all timers in one callback so "now" is the same for each.
	onLoop(t, l, func() {
		mustTimer := func(d time.Duration, fn func()) *Timer {
			tm, err := l.AfterFunc(d, fn)
			if err != nil {
				t.Fatal(err)
			}
			return tm
		}
		mustTimer(30*time.Millisecond, record("c"))
		mustTimer(10*time.Millisecond, record("a1"))
		mustTimer(10*time.Millisecond, record("a2")) // same deadline: after a1
		mustTimer(20*time.Millisecond, record("b"))
		stopped := mustTimer(15*time.Millisecond, record("stopped"))
		if !stopped.Stop() {
			t.Error("Stop of a pending timer returned false")
		}
		if stopped.Stop() {
			t.Error("second Stop returned true")
		}
		moved := mustTimer(5*time.Millisecond, record("moved"))
		if was, err := moved.Reset(40 * time.Millisecond); err != nil || !was {
			t.Errorf("Reset: %v, %v", was, err)
		}
		mustTimer(50*time.Millisecond, func() { close(done) })
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("timers did not fire")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"a1", "a2", "b", "c", "moved"}
	if len(order) != len(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
}

// A timer never fires early, whatever the wait's granularity.
func TestTimerNotEarly(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fired := make(chan time.Duration, 1)
	start := time.Now()
	if _, err := l.AfterFunc(25*time.Millisecond, func() { fired <- time.Since(start) }); err != nil {
		t.Fatal(err)
	}
	if d := <-fired; d < 25*time.Millisecond {
		t.Fatalf("timer fired after %v, before its 25ms", d)
	}
}

func TestTimerAfterCloseAndNilFunc(t *testing.T) {
	checkLeaks(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AfterFunc(time.Second, nil); !errors.Is(err, unix.EINVAL) {
		t.Errorf("nil func: %v, want EINVAL", err)
	}
	tm, err := l.AfterFunc(time.Hour, func() { t.Error("ran after close") })
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := l.AfterFunc(time.Millisecond, func() {}); !errors.Is(err, ErrClosed) {
		t.Errorf("AfterFunc after Close: %v, want ErrClosed", err)
	}
	if tm.Stop() {
		t.Error("Stop after Close reported a pending timer")
	}
}

func TestRegisterRejectsBadInput(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	if _, err := l.Register(-1, Registration{Events: Readable, Handler: func(Events) {}}); !errors.Is(err, unix.EBADF) {
		t.Errorf("fd -1: %v, want EBADF", err)
	}
	r, w := pipe(t)
	closeLater(t, r, w)
	if _, err := l.Register(r, Registration{Events: Readable}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("nil handler: %v, want EINVAL", err)
	}
	// A closed descriptor: the kernel refuses it and the slot is freed.
	r2, w2 := pipe(t)
	unix.Close(r2)
	unix.Close(w2)
	_, err := l.Register(r2, Registration{Events: Readable, Handler: func(Events) {}})
	var op *OpError
	if !errors.As(err, &op) || !errors.Is(err, unix.EBADF) {
		t.Errorf("closed fd: %v, want *OpError wrapping EBADF", err)
	}
	for _, o := range []Option{QueueSize(0), Budget(0), MaxEvents(0)} {
		if l2, err := New(o); err == nil {
			l2.Close()
			t.Error("New accepted a zero option")
		}
	}
}

func TestErrWouldBlockMatchesEAGAIN(t *testing.T) {
	if !errors.Is(ErrWouldBlock, unix.EAGAIN) || !errors.Is(ErrWouldBlock, unix.EWOULDBLOCK) {
		t.Fatal("ErrWouldBlock does not match EAGAIN")
	}
	if errors.Is(ErrWouldBlock, unix.EINTR) {
		t.Fatal("ErrWouldBlock matches EINTR")
	}
}

func TestEventsString(t *testing.T) {
	for ev, want := range map[Events]string{
		0:                   "0",
		Readable:            "Readable",
		Readable | Writable: "Readable|Writable",
		Hangup | Error:      "Hangup|Error",
		Readable | 0x100:    "Readable|0x100",
	} {
		if got := ev.String(); got != want {
			t.Errorf("%d: %q, want %q", uint32(ev), got, want)
		}
	}
}

func TestDoFromLoopRunsInline(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	var inner bool
	onLoop(t, l, func() {
		if err := l.Do(func() { inner = true }); err != nil {
			t.Errorf("nested Do: %v", err)
		}
		if !inner {
			t.Error("nested Do did not run inline")
		}
	})
}

// Functions queued before Close still run; Do waiting on a loop that stops
// returns.
func TestCloseRunsQueuedFunctions(t *testing.T) {
	checkLeaks(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	held := make(chan struct{})
	if err := l.Post(func() { close(held); <-release }); err != nil {
		t.Fatal(err)
	}
	<-held
	var ran atomic.Int32
	for range 10 {
		l.Post(func() { ran.Add(1) })
	}
	closed := make(chan error)
	go func() { closed <- l.Close() }()
	time.Sleep(10 * time.Millisecond)
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 10 {
		t.Fatalf("ran %d of 10 functions queued before Close", ran.Load())
	}
}

// A registration served by a readiness event while its requeued work is
// pending, and requeued again from that call, runs once per round: the
// requeue list never holds it twice (a duplicate would run its handler
// once per copy, each run requeueing again).
func TestRequeueNeverDuplicates(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	r, w := pipe(t)
	closeLater(t, w)
	var calls, rounds []uint64
	var mu sync.Mutex
	var h Handle
	stop := make(chan struct{})
	var stopped atomic.Bool
	onLoop(t, l, func() {
		var err error
		h, err = l.Register(r, Registration{Events: Readable, Handler: func(ev Events) {
			var b [64]byte
			unix.Read(r, b[:])
			mu.Lock()
			calls = append(calls, l.Round())
			n := len(calls)
			mu.Unlock()
			if n < 200 {
				h.Requeue(Readable)
			} else if stopped.CompareAndSwap(false, true) {
				close(stop)
			}
		}})
		if err != nil {
			t.Error(err)
		}
	})
	// Readiness events arrive while the handler keeps itself requeued.
	go func() {
		for range 100 {
			select {
			case <-stop:
				return
			default:
			}
			unix.Write(w, []byte("x"))
			time.Sleep(100 * time.Microsecond)
		}
	}()
	select {
	case <-stop:
	case <-time.After(10 * time.Second):
		t.Fatal("handler stopped being called")
	}
	onLoop(t, l, func() {})
	mu.Lock()
	defer mu.Unlock()
	perRound := map[uint64]int{}
	for _, r := range calls {
		perRound[r]++
	}
	for round, n := range perRound {
		if n > 1 {
			rounds = append(rounds, round)
		}
	}
	if len(rounds) > 0 {
		t.Errorf("handler ran more than once in %d rounds (e.g. round %d: %d times)", len(rounds), rounds[0], perRound[rounds[0]])
	}
}
