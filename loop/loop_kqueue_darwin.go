package loop

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// wakeToken marks the EVFILT_USER event other goroutines trigger to wake
// the loop.
const wakeToken = ^uint64(0)

// wakeIdent is the EVFILT_USER identifier used for wakeups.
const wakeIdent = 0

// poller is the kqueue backend. Loop-only, except wake.
//
// kqueue reports each filter (read, write) as its own event and keys it by
// (ident, filter); the registration token is kept in a table indexed by
// descriptor rather than in udata, which x/sys/unix types as a pointer and
// which must not hold an integer.
type poller struct {
	kq     int
	tokens []uint64 // fd -> token; tokenNone when not registered
	out    []unix.Kevent_t
	// outTokens[i] is the token of out[i]'s descriptor when the wait
	// returned. Taken then, not when event(i) is asked: a handler earlier
	// in the batch may close that descriptor and register a new one under
	// the same number, and the old event must not reach the new
	// registration (epoll carries the token in the event itself).
	outTokens []uint64

	// wakeMu keeps wake (any goroutine) from using a kqueue descriptor that
	// close has released and the kernel may have reused.
	wakeMu sync.RWMutex
}

const tokenNone = ^uint64(0) - 1

func newPoller(maxEvents int) (*poller, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, &OpError{Op: "kqueue", Fd: -1, Err: err}
	}
	unix.CloseOnExec(kq)
	p := &poller{kq: kq, out: make([]unix.Kevent_t, maxEvents), outTokens: make([]uint64, maxEvents)}
	ev := unix.Kevent_t{Ident: wakeIdent, Filter: unix.EVFILT_USER, Flags: unix.EV_ADD | unix.EV_CLEAR}
	if _, err := unix.Kevent(kq, []unix.Kevent_t{ev}, nil, nil); err != nil {
		unix.Close(kq)
		return nil, &OpError{Op: "kevent add EVFILT_USER", Fd: -1, Err: err}
	}
	return p, nil
}

func (p *poller) setToken(fd int, tok uint64) {
	for len(p.tokens) <= fd {
		p.tokens = append(p.tokens, tokenNone)
	}
	p.tokens[fd] = tok
}

// apply registers or removes the read and write filters for fd: a filter
// in ev is added edge-triggered (EV_CLEAR), one not in ev is deleted
// (ENOENT for a filter never added is ignored).
func (p *poller) apply(fd int, ev Events, op string) error {
	filters := [2]struct {
		filter int16
		want   bool
	}{{unix.EVFILT_READ, ev&Readable != 0}, {unix.EVFILT_WRITE, ev&Writable != 0}}
	for _, f := range filters {
		flags := uint16(unix.EV_ADD | unix.EV_CLEAR)
		if !f.want {
			flags = unix.EV_DELETE
		}
		change := []unix.Kevent_t{{Ident: uint64(fd), Filter: f.filter, Flags: flags}}
		if _, err := unix.Kevent(p.kq, change, nil, nil); err != nil && !(err == unix.ENOENT && !f.want) {
			return &OpError{Op: "kevent " + op, Fd: fd, Err: err}
		}
	}
	return nil
}

func (p *poller) add(fd int, tok uint64, ev Events) error {
	if err := p.apply(fd, ev, "add"); err != nil {
		_ = p.apply(fd, 0, "add rollback")
		return err
	}
	p.setToken(fd, tok)
	return nil
}

func (p *poller) mod(fd int, tok uint64, ev Events) error {
	p.setToken(fd, tok)
	return p.apply(fd, ev, "mod")
}

func (p *poller) del(fd int) error {
	if fd < len(p.tokens) {
		p.tokens[fd] = tokenNone
	}
	return p.apply(fd, 0, "del")
}

// wait: a zero-timeout pass first, then a blocking one only if nothing was
// ready and the caller may sleep. A negative timeout waits forever.
func (p *poller) wait(timeout time.Duration) (int, int, error) {
	zero := unix.Timespec{}
	n, err := unix.Kevent(p.kq, nil, p.out, &zero)
	if err != nil && err != unix.EINTR {
		return 0, 1, &OpError{Op: "kevent wait", Fd: p.kq, Err: err}
	}
	if n > 0 || timeout == 0 {
		p.takeTokens(n)
		return n, 1, nil
	}
	var ts *unix.Timespec
	if timeout > 0 {
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	n, err = unix.Kevent(p.kq, nil, p.out, ts)
	if err == unix.EINTR {
		return 0, 2, nil
	}
	if err != nil {
		return 0, 2, &OpError{Op: "kevent wait", Fd: p.kq, Err: err}
	}
	p.takeTokens(n)
	return n, 2, nil
}

// takeTokens records the registration each of the first n events belongs
// to, as of now.
func (p *poller) takeTokens(n int) {
	for i := range n {
		e := &p.out[i]
		tok := tokenNone
		if e.Filter == unix.EVFILT_USER {
			tok = wakeToken
		} else if fd := int(e.Ident); fd < len(p.tokens) {
			tok = p.tokens[fd]
		}
		p.outTokens[i] = tok
	}
}

func (p *poller) event(i int) (uint64, Events) {
	e := &p.out[i]
	tok := p.outTokens[i]
	if tok == wakeToken {
		return wakeToken, 0
	}
	var ev Events
	switch e.Filter {
	case unix.EVFILT_READ:
		ev = Readable
	case unix.EVFILT_WRITE:
		ev = Writable
	}
	if e.Flags&unix.EV_EOF != 0 {
		ev |= Hangup
	}
	if e.Flags&unix.EV_ERROR != 0 {
		ev |= Error
	}
	return tok, ev
}

// wake triggers the EVFILT_USER event. Safe from any goroutine.
func (p *poller) wake() error {
	p.wakeMu.RLock()
	defer p.wakeMu.RUnlock()
	if p.kq < 0 {
		return nil // closed: there is no loop left to wake
	}
	ev := []unix.Kevent_t{{Ident: wakeIdent, Filter: unix.EVFILT_USER, Fflags: unix.NOTE_TRIGGER}}
	if _, err := unix.Kevent(p.kq, ev, nil, nil); err != nil {
		return &OpError{Op: "kevent trigger", Fd: p.kq, Err: err}
	}
	return nil
}

// drainWake: EV_CLEAR resets the user event when it is delivered.
func (p *poller) drainWake() {}

func (p *poller) close() error {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	err := unix.Close(p.kq)
	p.kq = -1
	if err != nil {
		return &OpError{Op: "close kqueue", Fd: -1, Err: err}
	}
	return nil
}

func closeFD(fd int) { unix.Close(fd) }

// pinThread: macOS has no way to bind a thread to a CPU (thread affinity
// tags are hints between threads, not CPUs), so the CPU option is ignored.
func pinThread(cpu int) error { return nil }
