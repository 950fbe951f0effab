package broker

import (
	"sync"
	"time"
)

// DefaultRefusalWindow is how long the Server gathers repeated refusals of
// one uid for one reason into a single summary line when
// Config.RefusalWindow is 0.
const DefaultRefusalWindow = time.Minute

// refusalKey groups refusals: one uid (or none, when the credentials
// could not be read) and one status. Within a key's window each distinct
// reason is logged in full once, up to maxDistinctReasons of them: a
// member's different mistakes all stay visible, while a client that
// varies its garbage to vary the message (a bad magic prints the bytes
// sent) still cannot escape summarising.
type refusalKey struct {
	uid    uint32
	hasUID bool
	status Status
}

// maxDistinctReasons caps the reasons of one key logged in full per
// window.
const maxDistinctReasons = 16

type refusalCount struct {
	seen  map[string]bool // reasons logged in full in this window
	n     int
	last  string // the reason of the last one suppressed
	timer *time.Timer
}

// refusalLimiter lets the first refusal of each key (and of each of its
// first distinct reasons) through in full and counts the others for
// window, after which one summary is written and
// the next refusal is logged in full again. Safe from any goroutine.
type refusalLimiter struct {
	window  time.Duration // < 0: never summarise
	summary func(k refusalKey, n int, last string, window time.Duration)

	mu     sync.Mutex
	keys   map[refusalKey]*refusalCount
	closed bool
}

// allow reports whether a refusal should be logged in full; if not, it is
// counted into the key's next summary.
func (l *refusalLimiter) allow(k refusalKey, reason string) bool {
	if l.window < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return true
	}
	if c, ok := l.keys[k]; ok {
		if !c.seen[reason] && len(c.seen) < maxDistinctReasons {
			c.seen[reason] = true
			return true
		}
		c.n++
		c.last = reason
		return false
	}
	if l.keys == nil {
		l.keys = make(map[refusalKey]*refusalCount)
	}
	c := &refusalCount{seen: map[string]bool{reason: true}}
	c.timer = time.AfterFunc(l.window, func() { l.flush(k, c) })
	l.keys[k] = c
	return true
}

// flush ends a key's window, writing its summary if any were counted.
func (l *refusalLimiter) flush(k refusalKey, c *refusalCount) {
	l.mu.Lock()
	if l.keys[k] != c {
		l.mu.Unlock()
		return
	}
	delete(l.keys, k)
	n, last := c.n, c.last
	l.mu.Unlock()
	if n > 0 {
		l.summary(k, n, last, l.window)
	}
}

// close writes every pending summary; later refusals are logged in full.
func (l *refusalLimiter) close() {
	l.mu.Lock()
	l.closed = true
	keys := l.keys
	l.keys = nil
	l.mu.Unlock()
	for k, c := range keys {
		c.timer.Stop()
		if c.n > 0 {
			l.summary(k, c.n, c.last, l.window)
		}
	}
}
