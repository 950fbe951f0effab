package loop

import "time"

// Timer is a function scheduled on a loop. Its callback runs on the loop's
// thread. Timers with the same deadline run in the order they were set.
type Timer struct {
	l     *Loop
	fn    func()
	when  int64  // nanoseconds since the loop started (monotonic clock)
	seq   uint64 // tie-break: order of scheduling
	index int    // position in the heap, -1 when not scheduled
}

// AfterFunc runs fn on the loop's thread once d has elapsed. Safe from any
// goroutine. Deadlines are kept with nanosecond precision; how late a timer
// fires depends on the kernel's wait (epoll_pwait2 where available,
// otherwise millisecond waits rounded up, never early).
func (l *Loop) AfterFunc(d time.Duration, fn func()) (*Timer, error) {
	if fn == nil {
		return nil, &OpError{Op: "afterfunc: nil function", Fd: -1, Err: errInvalid}
	}
	t := &Timer{l: l, fn: fn, index: -1}
	var err error
	if derr := l.Do(func() {
		if l.closing.Load() {
			err = ErrClosed
			return
		}
		l.schedule(t, d)
	}); derr != nil {
		return nil, derr
	}
	return t, err
}

// Stop cancels the timer. It reports whether the timer was pending (false
// if it already ran, was stopped, or the loop closed). Safe from any
// goroutine.
func (t *Timer) Stop() bool {
	var stopped bool
	_ = t.l.Do(func() {
		if t.index >= 0 {
			t.l.timers.remove(t.index)
			stopped = true
		}
	})
	return stopped
}

// Reset reschedules the timer to fire d from now, whether or not it was
// pending; it reports whether it was pending. Safe from any goroutine.
func (t *Timer) Reset(d time.Duration) (bool, error) {
	var was bool
	var err error
	if derr := t.l.Do(func() {
		if t.l.closing.Load() {
			err = ErrClosed
			return
		}
		if t.index >= 0 {
			t.l.timers.remove(t.index)
			was = true
		}
		t.l.schedule(t, d)
	}); derr != nil {
		return false, derr
	}
	return was, err
}

func (l *Loop) schedule(t *Timer, d time.Duration) {
	if d < 0 {
		d = 0
	}
	l.timerSeq++
	t.when, t.seq = l.now()+int64(d), l.timerSeq
	l.timers.push(t)
}

func (l *Loop) runTimers() {
	now := l.now()
	// Only timers due now run in this round; one that a callback sets for
	// "now" waits for the next round, so a self-rescheduling timer cannot
	// keep the loop from polling.
	limit := l.timerSeq
	for len(l.timers) > 0 && !l.closing.Load() {
		t := l.timers[0]
		if t.when > now || t.seq > limit {
			break
		}
		l.timers.remove(0)
		l.st.timers.add(1)
		t.fn()
	}
}

// timerHeap is a binary min-heap ordered by (when, seq).
type timerHeap []*Timer

func (h timerHeap) less(i, j int) bool {
	if h[i].when != h[j].when {
		return h[i].when < h[j].when
	}
	return h[i].seq < h[j].seq
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *timerHeap) push(t *Timer) {
	t.index = len(*h)
	*h = append(*h, t)
	h.up(t.index)
}

func (h *timerHeap) remove(i int) {
	old := *h
	last := len(old) - 1
	removed := old[i]
	if i != last {
		old.swap(i, last)
	}
	old[last] = nil
	*h = old[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	removed.index = -1
}

func (h timerHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down sifts element i down and reports whether it moved.
func (h timerHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		left := 2*i + 1
		if left >= n {
			break
		}
		least := left
		if right := left + 1; right < n && h.less(right, left) {
			least = right
		}
		if !h.less(least, i) {
			break
		}
		h.swap(i, least)
		i = least
	}
	return i > start
}
