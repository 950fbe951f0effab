//go:build linux

package main

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/loop"
)

// tundraEngine is this library: one loop (its own epoll, raw system calls)
// per device queue, each on its own OS thread, pinned, with the job's
// queues attached to it and drained in readiness callbacks, so that the
// loop's fairness budget and its statistics work as they would in an
// application. With one queue (the default) that is one loop.
type tundraEngine struct {
	// budget is the loop's per-registration read budget per round
	// (loop.Budget); 0 keeps the library's default.
	budget int
	// gso gives the devices offloads (tundra.Offloads): reads bring
	// super-packets that RecvBatch splits, writes are merged by GRO rules,
	// and forwarding passes super-packets through untouched.
	gso bool
	// queues is the device's queue count (tundra.Queues) and so the
	// number of loops (loop.NewGroup); 0 means 1.
	queues int
	// uring runs the loops on io_uring (loop.BackendURing) instead of
	// epoll: the tundra-uring engine.
	uring bool
}

func (e tundraEngine) name() string {
	n := "tundra"
	if e.gso {
		n = "tundra-gso"
	}
	if e.uring {
		n += "-uring"
	}
	if e.queues > 1 {
		n += fmt.Sprintf("/%dq", e.queues)
	}
	return n
}

func (e tundraEngine) withQueues(n int) engine {
	e.queues = 0
	if n > 1 {
		e.queues = n
	}
	return e
}

func (e tundraEngine) nqueues() int { return max(1, e.queues) }

func (e tundraEngine) open(s devSpec) (device, error) { return openTundraDev(s, e.gso, e.queues) }

// tundraBatch is how many packets one RecvBatch or SendBatch moves.
const tundraBatch = 128

// tundraRunner drives a job on a group of loops, one per queue. Its
// callbacks allocate nothing: the buffers are made once, here.
type tundraRunner struct {
	g       *loop.Group
	stopped atomic.Bool
	errs    failures
	nerr    atomic.Uint64 // one per loop would do, but errors are rare
	done    atomic.Bool
	stopErr error
}

// pump moves packets from one queue to another (or back into the same
// one), on the loop.
type pump struct {
	r     *tundraRunner
	in    *tundra.Queue
	out   *tundra.Queue // nil: drain and discard
	swap  bool
	off   int // headroom before each packet: the virtio-net header with offloads
	bufs  [][]byte
	outs  [][]byte
	sizes []int
}

func newPump(r *tundraRunner, in, out *tundra.Queue, swap bool) *pump {
	p := &pump{r: r, in: in, out: out, swap: swap, off: in.HeaderLen(),
		bufs: make([][]byte, tundraBatch), outs: make([][]byte, tundraBatch), sizes: make([]int, tundraBatch)}
	size := readBufSize
	if p.off > 0 {
		size = p.off + tundra.MaxPacket // super-packets land whole before splitting
	}
	for i := range p.bufs {
		p.bufs[i] = make([]byte, size)
	}
	return p
}

// passthrough forwards super-packets from in to out untouched (RecvGSO,
// SendGSO): a forwarder between two devices with offloads never splits or
// re-merges.
type passthrough struct {
	r       *tundraRunner
	in, out *tundra.Queue
	buf     []byte
}

func (p *passthrough) run() {
	for {
		n, h, err := p.in.RecvGSO(p.buf)
		if err != nil {
			if !errors.Is(err, tundra.ErrWouldBlock) {
				p.r.fail(err)
			}
			return
		}
		if err := p.out.SendGSO(h, p.buf[:n]); err != nil {
			p.r.fail(err)
		}
	}
}

// run drains the input queue. RecvBatch returns fewer packets than asked
// when the queue ran dry or the round's budget is spent; either way the
// loop calls again when there is more, so the callback just returns.
func (p *pump) run() {
	for {
		n, err := p.in.RecvBatch(p.bufs, p.sizes, p.off)
		if err != nil {
			if !errors.Is(err, tundra.ErrWouldBlock) {
				p.r.fail(err)
			}
			return
		}
		if p.out != nil {
			for i := range n {
				pk := p.bufs[i][:p.off+p.sizes[i]]
				if p.swap {
					turnAround(pk[p.off:])
				}
				p.outs[i] = pk
			}
			p.r.send(p.out, p.outs[:n], p.off)
		}
		if n < len(p.bufs) {
			return
		}
	}
}

// send writes pkts (each at offset off), skipping any the kernel refuses.
func (r *tundraRunner) send(q *tundra.Queue, pkts [][]byte, off int) {
	for len(pkts) > 0 {
		k, err := q.SendBatch(pkts, off)
		if err == nil {
			return
		}
		r.fail(err)
		if errors.Is(err, tundra.ErrWouldBlock) {
			return // a TUN write does not block; were it to, drop the rest
		}
		pkts = pkts[k+1:]
	}
}

func (r *tundraRunner) fail(err error) {
	r.nerr.Add(1)
	r.errs.record(err)
}

func (e tundraEngine) start(j job, cpu int) (runner, error) {
	// Every loop on the engine's CPU: with one CPU for the engine there is
	// nowhere else to put the others (see pinPlan).
	opts := []loop.Option{loop.CPU(cpu)}
	if e.budget > 0 {
		opts = append(opts, loop.Budget(e.budget))
	}
	if e.uring {
		opts = append(opts, loop.WithBackend(loop.BackendURing))
	}
	g, err := loop.NewGroup(e.nqueues(), false, opts...)
	if err != nil {
		return nil, err
	}
	if err := checkURing(e, g); err != nil {
		return nil, err
	}
	r := &tundraRunner{g: g}
	loops := g.Loops()
	a := j.a.(*tundraDev).d
	qas := a.Queues()
	var qbs []*tundra.Queue
	if j.kind == jobForward {
		qbs = j.b.(*tundraDev).d.Queues()
	}
	for i, qa := range qas {
		l := loops[i%len(loops)]
		var attachErr error
		// Attach on the loop, all of its queues in one go, so that no
		// callback runs before every queue it writes to belongs to it.
		derr := l.Do(func() { attachErr = e.attach(r, l, j, i, len(qas), qa, qbs) })
		if derr == nil {
			derr = attachErr
		}
		if derr != nil {
			g.Close()
			return nil, derr
		}
	}
	return r, nil
}

// attach sets up queue i of n (and queue i of the other device when
// forwarding) on loop l, the calling one. Loop-only.
func (e tundraEngine) attach(r *tundraRunner, l *loop.Loop, j job, i, n int, qa *tundra.Queue, qbs []*tundra.Queue) error {
	switch j.kind {
	case jobDrain:
		p := newPump(r, qa, nil, false)
		return qa.Attach(l, func(*tundra.Queue, loop.Events) { p.run() })
	case jobReflect:
		p := newPump(r, qa, qa, true)
		return qa.Attach(l, func(*tundra.Queue, loop.Events) { p.run() })
	case jobForward:
		qb := qbs[i]
		if e.gso {
			ab := &passthrough{r: r, in: qa, out: qb, buf: make([]byte, tundra.MaxPacket)}
			ba := &passthrough{r: r, in: qb, out: qa, buf: make([]byte, tundra.MaxPacket)}
			if err := qa.Attach(l, func(*tundra.Queue, loop.Events) { ab.run() }); err != nil {
				return err
			}
			return qb.Attach(l, func(*tundra.Queue, loop.Events) { ba.run() })
		}
		ab, ba := newPump(r, qa, qb, false), newPump(r, qb, qa, false)
		if err := qa.Attach(l, func(*tundra.Queue, loop.Events) { ab.run() }); err != nil {
			return err
		}
		return qb.Attach(l, func(*tundra.Queue, loop.Events) { ba.run() })
	case jobBlast:
		drain := newPump(r, qa, nil, false)
		pkts, off := queuePackets(j, i, n), qa.HeaderLen()
		if off > 0 {
			// Headroom for the virtio-net header before each packet.
			withRoom := make([][]byte, len(pkts))
			for k, p := range pkts {
				withRoom[k] = append(make([]byte, off, off+len(p)), p...)
			}
			pkts = withRoom
		}
		err := qa.Attach(l, func(q *tundra.Queue, ev loop.Events) {
			if ev&loop.Readable != 0 {
				drain.run() // whatever the kernel sends out (IPv6 chatter)
			}
			if ev&loop.Writable == 0 || r.stopped.Load() || len(pkts) == 0 {
				return
			}
			// A few batches, then back to the loop for a round: the
			// loop stays responsive and counts what it does.
			for range 4 {
				r.send(q, pkts, off)
			}
			q.Notify(loop.Writable)
		})
		if err == nil && len(pkts) > 0 {
			err = qa.Notify(loop.Writable)
		}
		return err
	}
	return fmt.Errorf("unknown job %d", j.kind)
}

// queuePackets are the packets queue i of n writes in a blast: those of
// the flows it owns, so that each flow enters the kernel through one
// queue, as a multi-queue application keeps it. Flow f goes to queue
// ⌊f/2⌋ mod n: txPackets alternates IPv4 and IPv6 flows, and f mod n would
// give one queue all the IPv4 flows and the other all the IPv6 ones (a
// kernel path of its own each, which flatters the split), where a hash
// would mix them. With one queue, all of them.
func queuePackets(j job, i, n int) [][]byte {
	if n == 1 {
		return j.pkts
	}
	flows := max(1, j.flows)
	var out [][]byte
	for k, p := range j.pkts {
		if flowQueue(k%flows, n) == i {
			out = append(out, p)
		}
	}
	return out
}

func flowQueue(f, n int) int { return (f / 2) % n }

func (r *tundraRunner) counters() engineCounters {
	s := r.g.Stats()
	c := engineCounters{
		pktsIn: s.PacketsIn, pktsOut: s.PacketsOut, bytesIn: s.BytesIn, bytesOut: s.BytesOut,
		syscalls: s.Syscalls, syscallsKnown: true, errors: r.nerr.Load(),
	}
	if r.g.Len() > 1 {
		for _, l := range r.g.Loops() {
			ls := l.Stats()
			c.perQueue = append(c.perQueue, ls.PacketsIn+ls.PacketsOut)
		}
	}
	return c
}

// stop closes the loops, which close the queues they own; the devices'
// own Close then finds them closed.
func (r *tundraRunner) stop() error {
	if r.done.Swap(true) {
		return r.stopErr
	}
	r.stopped.Store(true)
	if err := r.g.Close(); err != nil {
		r.errs.record(err)
	}
	r.stopErr = r.errs.err()
	return r.stopErr
}
