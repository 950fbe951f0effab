package loop

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Events is a set of readiness conditions.
type Events uint32

const (
	// Readable: a read would not block (or the budget requeued the handler).
	Readable Events = 1 << iota
	// Writable: a write would not block.
	Writable
	// Hangup: the peer closed or the device went away.
	Hangup
	// Error: the descriptor has a pending error; the next I/O call returns it.
	Error
)

func (e Events) String() string {
	if e == 0 {
		return "0"
	}
	var parts []string
	for _, f := range []struct {
		bit  Events
		name string
	}{{Readable, "Readable"}, {Writable, "Writable"}, {Hangup, "Hangup"}, {Error, "Error"}} {
		if e&f.bit != 0 {
			parts = append(parts, f.name)
			e &^= f.bit
		}
	}
	if e != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(e), 16))
	}
	return strings.Join(parts, "|")
}

// Handler is called on the loop's thread when its descriptor has readiness
// ev. Registrations are edge-triggered: a handler that stops before EAGAIN
// must call Handle.Requeue, or it will not be called again until the
// descriptor has new activity.
type Handler func(ev Events)

// Registration describes a descriptor to watch.
type Registration struct {
	// Events is the interest set (Readable, Writable). Hangup and Error are
	// always reported.
	Events Events
	// Handler receives readiness. Required.
	Handler Handler
	// Budget is the work (packets, reads) the handler should do per round
	// before requeueing; 0 takes the loop's default. The loop only stores it
	// (Handle.Budget): handlers enforce it.
	Budget int
	// OnClose runs on the loop's thread if the loop closes while the
	// registration is live; it must close the descriptor. Nil means the loop
	// closes the descriptor itself: a registered descriptor is owned by the
	// loop until Unregister hands it back.
	OnClose func()
}

// Handle names one registration. Its generation makes a handle to an ended
// registration stale even if the descriptor number and the table slot are
// reused: a stale handle's methods return ErrStale and its old events are
// never delivered to the new registration.
type Handle struct {
	l    *Loop
	slot uint32
	gen  uint32
}

type registration struct {
	fd       int
	gen      uint32 // incremented when the registration ends
	live     bool
	events   Events
	handler  Handler
	budget   int
	onClose  func()
	requeued Events // events to deliver in the next round
	// inAgain says the registration's token is in Loop.again: a Requeue
	// then only adds events, so the list holds each registration once.
	inAgain bool
	// requeuedAt is the round of the last Requeue: work asked for during a
	// round waits for the next one, even if an older entry is served now.
	requeuedAt uint64
}

// Option configures New.
type Option func(*config)

type config struct {
	queueSize int
	budget    int
	cpu       int
	maxEvents int
	backend   Backend
}

// QueueSize bounds the queue of functions given to Post and Do from other
// goroutines (default 1024). A full queue makes Post return ErrQueueFull.
func QueueSize(n int) Option { return func(c *config) { c.queueSize = n } }

// Budget sets the default per-registration work budget per round (default
// 128 packets).
func Budget(n int) Option { return func(c *config) { c.budget = n } }

// CPU pins the loop's thread to one CPU (Linux only; ignored elsewhere).
func CPU(n int) Option { return func(c *config) { c.cpu = n } }

// MaxEvents sets how many readiness events one wait collects (default 256).
func MaxEvents(n int) Option { return func(c *config) { c.maxEvents = n } }

// Loop is one event loop on its own OS thread. See the package
// documentation for the threading contract of each method.
type Loop struct {
	cfg  config
	p    backend
	kind Backend // which backend p is
	g    uintptr // curg() of the loop goroutine, set before New returns

	closing atomic.Bool
	exited  chan struct{}
	closeMu sync.Mutex
	exitErr error

	// Loop-only state.
	regs      []registration
	free      []uint32
	again     []uint64 // tokens of requeued registrations, for the next round
	againNext []uint64
	round     uint64
	timers    timerHeap
	timerSeq  uint64
	start     time.Time

	// Functions posted from other goroutines: a bounded ring.
	qmu         sync.Mutex
	q           []func()
	qhead, qlen int
	qclosed     bool
	qrun        []func()
	wakePending atomic.Bool

	st counters
}

// New creates a loop and starts it on a new goroutine locked to its own OS
// thread. Safe from any goroutine.
func New(opts ...Option) (*Loop, error) {
	cfg := config{queueSize: 1024, budget: 128, cpu: -1, maxEvents: 256}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.queueSize < 1 {
		return nil, &OpError{Op: "new: queue size must be at least 1", Fd: -1, Err: errInvalid}
	}
	if cfg.budget < 1 {
		return nil, &OpError{Op: "new: budget must be at least 1", Fd: -1, Err: errInvalid}
	}
	if cfg.maxEvents < 1 {
		return nil, &OpError{Op: "new: max events must be at least 1", Fd: -1, Err: errInvalid}
	}
	p, kind, err := newBackend(&cfg)
	if err != nil {
		return nil, err
	}
	l := &Loop{
		cfg:    cfg,
		p:      p,
		kind:   kind,
		exited: make(chan struct{}),
		q:      make([]func(), cfg.queueSize),
		start:  time.Now(),
	}
	started := make(chan error, 1)
	go l.run(started)
	if err := <-started; err != nil {
		<-l.exited
		return nil, err
	}
	return l, nil
}

func (l *Loop) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l.g = curg()
	if l.cfg.cpu >= 0 {
		if err := pinThread(l.cfg.cpu); err != nil {
			l.p.close()
			close(l.exited)
			started <- err
			return
		}
	}
	started <- nil

	for !l.closing.Load() {
		timeout := time.Duration(-1)
		if len(l.again) > 0 {
			timeout = 0
		} else if len(l.timers) > 0 {
			timeout = time.Duration(l.timers[0].when - l.now())
			if timeout < 0 {
				timeout = 0
			}
		}
		n, calls, err := l.p.wait(timeout)
		l.st.syscalls.add(uint64(calls))
		l.st.rounds.add(1)
		l.round++
		if err != nil {
			l.exitErr = err
			break
		}
		for i := 0; i < n && !l.closing.Load(); i++ {
			tok, ev := l.p.event(i)
			if tok == wakeToken {
				l.p.drainWake()
				l.st.wakeups.add(1)
				// Clear the flag before draining, so a Post that lands after
				// the drain sees it clear and wakes the loop again.
				l.wakePending.Store(false)
				l.runPosted()
				continue
			}
			l.dispatch(tok, ev)
		}
		if len(l.again) > 0 && !l.closing.Load() {
			l.runRequeued()
		}
		if len(l.timers) > 0 && !l.closing.Load() {
			l.runTimers()
		}
	}
	l.shutdown()
}

func (l *Loop) dispatch(tok uint64, ev Events) {
	slot, gen := uint32(tok), uint32(tok>>32)
	if int(slot) >= len(l.regs) {
		l.st.stale.add(1)
		return
	}
	r := &l.regs[slot]
	if !r.live || r.gen != gen {
		l.st.stale.add(1)
		return
	}
	// A registration with requeued work gets it now, merged with the new
	// readiness; its entry in the requeue list is then skipped.
	ev |= r.requeued
	r.requeued = 0
	l.st.events.add(1)
	r.handler(ev) // r may dangle after this: the table can grow
}

func (l *Loop) runRequeued() {
	cur := l.again
	l.again = l.againNext[:0]
	for _, tok := range cur {
		if l.closing.Load() {
			break
		}
		slot, gen := uint32(tok), uint32(tok>>32)
		r := &l.regs[slot]
		if !r.live || r.gen != gen {
			continue
		}
		if r.requeued == 0 {
			r.inAgain = false
			continue // served by a readiness event earlier in the round
		}
		if r.requeuedAt == l.round {
			// Asked for again by that readiness event's handler: next round.
			l.again = append(l.again, tok)
			continue
		}
		r.inAgain = false
		ev := r.requeued
		r.requeued = 0
		l.st.events.add(1)
		r.handler(ev)
	}
	l.againNext = cur[:0]
}

func (l *Loop) shutdown() {
	l.closing.Store(true)
	// Functions queued before the close still run (a handoff in flight must
	// land somewhere); the loop's methods report ErrClosed to them.
	for {
		l.qmu.Lock()
		if l.qlen == 0 {
			l.qclosed = true
			l.qmu.Unlock()
			break
		}
		l.qmu.Unlock()
		l.runPosted()
	}
	for i := range l.regs {
		r := &l.regs[i]
		if !r.live {
			continue
		}
		fd, onClose := r.fd, r.onClose
		l.endRegistration(uint32(i))
		if onClose != nil {
			onClose()
		} else {
			closeFD(fd)
		}
	}
	l.timers = nil
	if err := l.p.close(); err != nil && l.exitErr == nil {
		l.exitErr = err
	}
	close(l.exited)
}

// Close stops the loop and closes every descriptor it owns. Safe from any
// goroutine. Called from another goroutine it waits until the loop has
// stopped; called from a callback it returns at once and the loop stops
// after that callback returns. Functions already queued run before the loop
// stops. Idempotent: later calls return what the first returned.
func (l *Loop) Close() error {
	l.closing.Store(true)
	if l.OnLoop() {
		return nil
	}
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	select {
	case <-l.exited:
	default:
		_ = l.p.wake()
		<-l.exited
	}
	return l.exitErr
}

// Done is closed when the loop has stopped and closed what it owned.
func (l *Loop) Done() <-chan struct{} { return l.exited }

// OnLoop reports whether the caller runs on the loop's goroutine. Safe from
// any goroutine; costs no system call.
func (l *Loop) OnLoop() bool { return curg() == l.g }

// Register watches fd and calls r.Handler on the loop's thread when it is
// ready. The loop owns fd from now on (see Registration.OnClose) until
// Unregister. fd must be non-blocking. Safe from any goroutine.
func (l *Loop) Register(fd int, r Registration) (Handle, error) {
	var h Handle
	var err error
	if derr := l.Do(func() { h, err = l.register(fd, r) }); derr != nil {
		return Handle{}, derr
	}
	return h, err
}

func (l *Loop) register(fd int, r Registration) (Handle, error) {
	if l.closing.Load() {
		return Handle{}, ErrClosed
	}
	if fd < 0 {
		return Handle{}, &OpError{Op: "register", Fd: fd, Err: errBadFD}
	}
	if r.Handler == nil {
		return Handle{}, &OpError{Op: "register: nil handler", Fd: fd, Err: errInvalid}
	}
	if r.Budget <= 0 {
		r.Budget = l.cfg.budget
	}
	slot := takeSlot(&l.regs, &l.free)
	reg := &l.regs[slot]
	reg.fd, reg.live, reg.events, reg.handler, reg.budget, reg.onClose, reg.requeued, reg.inAgain =
		fd, true, r.Events, r.Handler, r.Budget, r.OnClose, 0, false
	h := Handle{l: l, slot: slot, gen: reg.gen}
	l.st.syscalls.add(1)
	if err := l.p.add(fd, h.token(), r.Events); err != nil {
		l.endRegistration(slot)
		return Handle{}, err
	}
	return h, nil
}

// endRegistration retires a slot: its generation moves on, so events already
// collected for it are dropped, and the slot can be reused.
func (l *Loop) endRegistration(slot uint32) {
	r := &l.regs[slot]
	r.live = false
	r.gen++
	r.handler, r.onClose, r.requeued, r.inAgain = nil, nil, 0, false
	l.free = append(l.free, slot)
}

func (h Handle) token() uint64 { return uint64(h.gen)<<32 | uint64(h.slot) }

// reg returns the live registration h names, or ErrStale. Loop-only.
func (h Handle) reg() (*registration, error) {
	if h.l == nil || int(h.slot) >= len(h.l.regs) {
		return nil, ErrStale
	}
	r := &h.l.regs[h.slot]
	if !r.live || r.gen != h.gen {
		return nil, ErrStale
	}
	return r, nil
}

// Loop returns the loop h belongs to.
func (h Handle) Loop() *Loop { return h.l }

// Modify changes the interest set. Safe from any goroutine.
func (h Handle) Modify(ev Events) error {
	if h.l == nil {
		return ErrStale
	}
	var err error
	if derr := h.l.Do(func() {
		var r *registration
		if r, err = h.reg(); err != nil {
			return
		}
		r.events = ev
		h.l.st.syscalls.add(1)
		err = h.l.p.mod(r.fd, h.token(), ev)
	}); derr != nil {
		return derr
	}
	return err
}

// Unregister stops watching the descriptor and hands its ownership back to
// the caller (it is not closed). Events already collected for it are never
// delivered. Safe from any goroutine.
func (h Handle) Unregister() error {
	if h.l == nil {
		return ErrStale
	}
	var err error
	if derr := h.l.Do(func() { err = h.l.unregister(h) }); derr != nil {
		return derr
	}
	return err
}

func (l *Loop) unregister(h Handle) error {
	r, err := h.reg()
	if err != nil {
		return err
	}
	fd := r.fd
	l.endRegistration(h.slot)
	l.st.syscalls.add(1)
	return l.p.del(fd)
}

// Requeue asks for the handler to be called again in the next round with
// ev, after every other ready registration has had its turn and without
// waiting for new readiness. Loop-only.
func (h Handle) Requeue(ev Events) error {
	if h.l == nil || !h.l.OnLoop() {
		return ErrNotOwner
	}
	r, err := h.reg()
	if err != nil {
		return err
	}
	if !r.inAgain {
		r.inAgain = true
		h.l.again = append(h.l.again, h.token())
		h.l.st.requeues.add(1)
	}
	r.requeued |= ev
	r.requeuedAt = h.l.round
	return nil
}

// Budget returns the registration's work budget per round. Loop-only.
func (h Handle) Budget() int {
	if h.l == nil || !h.l.OnLoop() {
		return 0
	}
	r, err := h.reg()
	if err != nil {
		return 0
	}
	return r.budget
}

// Round counts the loop's iterations. Loop-only (it is a plain field);
// handlers use it to reset per-round budgets.
func (l *Loop) Round() uint64 { return l.round }

// DefaultBudget is the per-registration budget the loop was configured with.
// Safe from any goroutine.
func (l *Loop) DefaultBudget() int { return l.cfg.budget }

// Post queues fn to run on the loop's thread and returns at once. Safe from
// any goroutine. The queue is bounded: when it is full Post returns
// ErrQueueFull and fn is not queued. Wakeups are coalesced: many Posts
// between two rounds cost one wakeup.
func (l *Loop) Post(fn func()) error {
	l.qmu.Lock()
	if l.qclosed {
		l.qmu.Unlock()
		return ErrClosed
	}
	if l.qlen == len(l.q) {
		l.qmu.Unlock()
		return ErrQueueFull
	}
	l.q[(l.qhead+l.qlen)%len(l.q)] = fn
	l.qlen++
	l.qmu.Unlock()
	if l.wakePending.CompareAndSwap(false, true) {
		return l.p.wake()
	}
	return nil
}

// Do runs fn on the loop's thread and waits for it to finish. Called on the
// loop, it runs fn inline. It returns ErrClosed if the loop stopped before
// fn could run and ErrQueueFull if the queue is full. Safe from any
// goroutine.
func (l *Loop) Do(fn func()) error {
	if l.OnLoop() {
		fn()
		return nil
	}
	done := make(chan struct{})
	if err := l.Post(func() { fn(); close(done) }); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-l.exited:
		select {
		case <-done:
			return nil
		default:
			return ErrClosed
		}
	}
}

func (l *Loop) runPosted() {
	l.qmu.Lock()
	run := l.qrun[:0]
	for l.qlen > 0 {
		run = append(run, l.q[l.qhead])
		l.q[l.qhead] = nil
		l.qhead = (l.qhead + 1) % len(l.q)
		l.qlen--
	}
	l.qmu.Unlock()
	for i, fn := range run {
		run[i] = nil
		l.st.posted.add(1)
		fn()
	}
	l.qrun = run[:0]
}

func (l *Loop) now() int64 { return int64(time.Since(l.start)) }

// counter is a statistic written only by the loop's thread and read by any
// goroutine. One writer means an atomic load and store suffice: no locked
// read-modify-write on the per-packet path. Adding a negative correction
// converted to uint64 subtracts (arithmetic wraps).
type counter struct{ v atomic.Uint64 }

func (c *counter) add(n uint64) { c.v.Store(c.v.Load() + n) }

type counters struct {
	rounds, wakeups, events, stale, requeues, timers, posted        counter
	packetsIn, packetsOut, bytesIn, bytesOut, syscalls, wouldBlocks counter
}

// Stats are counters since the loop started.
type Stats struct {
	Rounds      uint64 // returns from the wait for readiness
	Wakeups     uint64 // wakeups by other goroutines (Post, Do, Close), after coalescing
	Events      uint64 // handler calls for readiness or requeued work
	Stale       uint64 // events dropped because their registration had ended
	Requeues    uint64 // handlers requeued for the next round
	Timers      uint64 // timer callbacks run
	Posted      uint64 // posted functions run
	PacketsIn   uint64 // packets read by PacketFDs on this loop
	PacketsOut  uint64 // packets written
	BytesIn     uint64 // packet bytes read (headers excluded)
	BytesOut    uint64 // packet bytes written (headers excluded)
	Syscalls    uint64 // system calls made by the loop and its PacketFDs
	WouldBlocks uint64 // I/O calls that found nothing to do (EAGAIN)
}

// Stats returns the loop's counters. Safe from any goroutine, lock-free;
// each counter is read atomically, the set is not one snapshot. A write is
// counted when its system call returns, so a peer can see a packet before
// another goroutine sees it counted; called through Do, Stats sees every
// finished callback's counts.
func (l *Loop) Stats() Stats {
	s := &l.st
	return Stats{
		Rounds: s.rounds.v.Load(), Wakeups: s.wakeups.v.Load(), Events: s.events.v.Load(),
		Stale: s.stale.v.Load(), Requeues: s.requeues.v.Load(), Timers: s.timers.v.Load(),
		Posted: s.posted.v.Load(), PacketsIn: s.packetsIn.v.Load(), PacketsOut: s.packetsOut.v.Load(),
		BytesIn: s.bytesIn.v.Load(), BytesOut: s.bytesOut.v.Load(), Syscalls: s.syscalls.v.Load(),
		WouldBlocks: s.wouldBlocks.v.Load(),
	}
}

// takeSlot returns the index of a free element of *items: the last one
// listed in *free, or a new zero one appended. A slot's index stays its
// name while it is in use, so items never move under their users.
func takeSlot[T any](items *[]T, free *[]uint32) uint32 {
	if n := len(*free); n > 0 {
		i := (*free)[n-1]
		*free = (*free)[:n-1]
		return i
	}
	var zero T
	*items = append(*items, zero)
	return uint32(len(*items) - 1)
}
