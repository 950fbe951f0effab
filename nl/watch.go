package nl

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// LinkEvent is one change to a link that the kernel announced to the
// RTNLGRP_LINK group: a link created or changed (RTM_NEWLINK), or deleted
// (RTM_DELLINK).
type LinkEvent struct {
	// Deleted is true for RTM_DELLINK: the link is gone, and Link is its
	// last state.
	Deleted bool
	// Link is the link's whole state after the change, as Links would
	// report it (Stats included; Kind, Tun and Alias too).
	Link Link
}

// eventSource carries datagrams from the kernel's link notifications to a
// LinkWatcher: a netlink socket bound to RTNLGRP_LINK on Linux, an
// in-process fake in tests.
type eventSource interface {
	// recv waits up to timeout (no limit when negative) for a datagram
	// and returns it whole with its sender's port id (0 for the kernel).
	// It returns nil, 0, nil when nothing came in time, when wake was
	// called, or when a signal cut the wait short: the caller decides
	// whether to wait again. Only one recv runs at a time.
	recv(timeout time.Duration) (b []byte, from uint32, err error)
	// wake makes a recv in progress, and every later one, return at
	// once. It is safe from any goroutine, concurrently with recv.
	wake() error
	// close releases the source. It is never called during a recv.
	close() error
}

// LinkWatcher receives the kernel's notifications of link changes
// (RTNLGRP_LINK). Next and Close are safe from any goroutine: calls to Next
// are served one at a time, and Close interrupts a Next that is waiting.
//
// The watcher reports what the kernel announces: a link created or
// deleted; a change of flags, MTU, name or operational state; and, only
// while the link is up (the kernel sends them through netdev_state_change,
// which stays silent for a link that is down), a change of alias and the
// TUN/TAP driver's changes to persist, owner or group. Attaching or
// detaching a queue is not announced. When its
// buffer overflows, the kernel drops notifications and Next reports
// ErrOverrun; the watcher keeps working.
type LinkWatcher struct {
	mu     sync.Mutex // held by Next for its whole wait; Close takes it to free src
	closed atomic.Bool
	src    eventSource
}

// WatchLinks opens a netlink socket that joins the RTNLGRP_LINK multicast
// group, in the network namespace of the calling OS thread, as Dial does:
// call it from a thread that has joined another namespace to watch that
// one. Receiving the group's notifications needs no privilege. On systems
// other than Linux it fails with an *Error wrapping ErrNotSupported.
func WatchLinks() (*LinkWatcher, error) {
	src, err := dialLinkEvents()
	if err != nil {
		return nil, wrap("watchlinks", err)
	}
	return &LinkWatcher{src: src}, nil
}

// Next waits for link notifications and returns those of the next datagram
// the kernel sent, in order: one or more events, each owned by the caller.
// It waits at most timeout, and returns nil, nil if none came in time; a
// timeout of 0 only looks at what is already queued, and a negative one
// waits without limit, until an event or Close.
//
// It fails with an *Error matching ErrOverrun (and unix.ENOBUFS) when the
// kernel dropped notifications for want of buffer space: the caller should
// re-read the links with Conn.Links and call Next again. After Close, and
// in a Next that Close interrupted, it fails with an *Error matching
// ErrClosed and net.ErrClosed.
//
// Datagrams that do not come from the kernel (another process may send to
// the watcher's port id) are skipped, as are notifications about a link's
// bridge port (family AF_BRIDGE) rather than the link itself.
func (w *LinkWatcher) Next(timeout time.Duration) ([]LinkEvent, error) {
	const op = "linkwatcher"
	w.mu.Lock()
	defer w.mu.Unlock()
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		if w.closed.Load() {
			return nil, &Error{Op: op, Err: ErrClosed}
		}
		wait := time.Duration(-1)
		if timeout >= 0 {
			wait = max(time.Until(deadline), 0)
		}
		b, from, err := w.src.recv(wait)
		switch {
		case errors.Is(err, unix.ENOBUFS):
			return nil, &Error{Op: op + ": recv", Errno: unix.ENOBUFS, Err: ErrOverrun}
		case err != nil:
			return nil, wrap(op+": recv", err)
		case b == nil:
			// Timed out, woken by Close, or interrupted: the loop's
			// checks tell which.
			if w.closed.Load() {
				continue
			}
			if timeout >= 0 && !time.Now().Before(deadline) {
				return nil, nil
			}
			continue
		case from != 0:
			continue // not from the kernel: not believed
		}
		events, err := parseLinkEvents(b)
		if err != nil {
			return nil, wrap(op, err)
		}
		if len(events) > 0 {
			return events, nil
		}
	}
}

// Close releases the watcher's socket. A Next waiting on another goroutine
// returns an error matching ErrClosed; Close waits for it to have returned
// before it closes the descriptor, so the descriptor is never closed under
// a call that uses it. Closing twice is harmless.
func (w *LinkWatcher) Close() error {
	if !w.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Wake a waiting Next first: it holds mu until it returns.
	werr := w.src.wake()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := errors.Join(werr, w.src.close()); err != nil {
		return wrap("linkwatcher: close", err)
	}
	return nil
}

// parseLinkEvents decodes one datagram of link notifications. Messages of
// other types are skipped, as are RTM_NEWLINK and RTM_DELLINK of families
// other than AF_UNSPEC: the bridge driver sends AF_BRIDGE ones to the same
// group about a link's port state, and its RTM_DELLINK means a port left a
// bridge, not that a link was deleted.
func parseLinkEvents(b []byte) ([]LinkEvent, error) {
	msgs, err := parseMessages(b)
	if err != nil {
		return nil, err
	}
	var events []LinkEvent
	for _, m := range msgs {
		if m.Header.Type != rtmNewLink && m.Header.Type != rtmDelLink {
			continue
		}
		if len(m.Data) > 0 && m.Data[0] != afUnspec {
			continue
		}
		l, err := parseLink(m.Data)
		if err != nil {
			return nil, err
		}
		events = append(events, LinkEvent{Deleted: m.Header.Type == rtmDelLink, Link: l})
	}
	return events, nil
}
