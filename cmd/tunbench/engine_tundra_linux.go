//go:build linux

package main

import (
	"errors"
	"sync/atomic"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/loop"
)

// tundraEngine is this library: one loop (its own epoll, raw system calls)
// on one OS thread, pinned, with every device of the job attached to it
// and drained in readiness callbacks, so that the loop's fairness budget
// and its statistics work as they would in an application.
type tundraEngine struct {
	// budget is the loop's per-registration read budget per round
	// (loop.Budget); 0 keeps the library's default.
	budget int
	// gso gives the devices offloads (tundra.Offloads): reads bring
	// super-packets that RecvBatch splits, writes are merged by GRO rules,
	// and forwarding passes super-packets through untouched.
	gso bool
}

func (e tundraEngine) name() string {
	if e.gso {
		return "tundra-gso"
	}
	return "tundra"
}

func (e tundraEngine) open(s devSpec) (device, error) { return openTundraDev(s, e.gso) }

// tundraBatch is how many packets one RecvBatch or SendBatch moves.
const tundraBatch = 128

// tundraRunner drives a job on one loop. Its callbacks allocate nothing:
// the buffers are made once, here.
type tundraRunner struct {
	l       *loop.Loop
	stopped atomic.Bool
	errs    failures
	nerr    counter // written on the loop only
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
	r.nerr.inc()
	r.errs.record(err)
}

func (e tundraEngine) start(j job, cpu int) (runner, error) {
	opts := []loop.Option{loop.CPU(cpu)}
	if e.budget > 0 {
		opts = append(opts, loop.Budget(e.budget))
	}
	l, err := loop.New(opts...)
	if err != nil {
		return nil, err
	}
	r := &tundraRunner{l: l}
	a := j.a.(*tundraDev).d
	var attachErr error
	// Attach on the loop, all devices in one go, so that no callback runs
	// before every queue it writes to belongs to the loop.
	derr := l.Do(func() {
		qa := a.Queues()[0]
		switch j.kind {
		case jobDrain:
			p := newPump(r, qa, nil, false)
			attachErr = a.Attach(l, func(*tundra.Queue, loop.Events) { p.run() })
		case jobReflect:
			p := newPump(r, qa, qa, true)
			attachErr = a.Attach(l, func(*tundra.Queue, loop.Events) { p.run() })
		case jobForward:
			b := j.b.(*tundraDev).d
			qb := b.Queues()[0]
			if e.gso {
				ab := &passthrough{r: r, in: qa, out: qb, buf: make([]byte, tundra.MaxPacket)}
				ba := &passthrough{r: r, in: qb, out: qa, buf: make([]byte, tundra.MaxPacket)}
				if attachErr = a.Attach(l, func(*tundra.Queue, loop.Events) { ab.run() }); attachErr != nil {
					return
				}
				attachErr = b.Attach(l, func(*tundra.Queue, loop.Events) { ba.run() })
				return
			}
			ab, ba := newPump(r, qa, qb, false), newPump(r, qb, qa, false)
			if attachErr = a.Attach(l, func(*tundra.Queue, loop.Events) { ab.run() }); attachErr != nil {
				return
			}
			attachErr = b.Attach(l, func(*tundra.Queue, loop.Events) { ba.run() })
		case jobBlast:
			drain := newPump(r, qa, nil, false)
			pkts, off := j.pkts, qa.HeaderLen()
			if off > 0 {
				// Headroom for the virtio-net header before each packet.
				pkts = make([][]byte, len(j.pkts))
				for i, p := range j.pkts {
					pkts[i] = append(make([]byte, off, off+len(p)), p...)
				}
			}
			attachErr = a.Attach(l, func(q *tundra.Queue, ev loop.Events) {
				if ev&loop.Readable != 0 {
					drain.run() // whatever the kernel sends out (IPv6 chatter)
				}
				if ev&loop.Writable == 0 || r.stopped.Load() {
					return
				}
				// A few batches, then back to the loop for a round: the
				// loop stays responsive and counts what it does.
				for range 4 {
					r.send(q, pkts, off)
				}
				q.Notify(loop.Writable)
			})
			if attachErr == nil {
				attachErr = qa.Notify(loop.Writable)
			}
		}
	})
	if derr == nil {
		derr = attachErr
	}
	if derr != nil {
		l.Close()
		return nil, derr
	}
	return r, nil
}

func (r *tundraRunner) counters() engineCounters {
	s := r.l.Stats()
	return engineCounters{
		pktsIn: s.PacketsIn, pktsOut: s.PacketsOut, bytesIn: s.BytesIn, bytesOut: s.BytesOut,
		syscalls: s.Syscalls, syscallsKnown: true, errors: r.nerr.load(),
	}
}

// stop closes the loop, which closes the queues it owns; the devices'
// own Close then finds them closed.
func (r *tundraRunner) stop() error {
	if r.done.Swap(true) {
		return r.stopErr
	}
	r.stopped.Store(true)
	if err := r.l.Close(); err != nil {
		r.errs.record(err)
	}
	r.stopErr = r.errs.err()
	return r.stopErr
}
