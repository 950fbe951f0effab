package loop

import (
	"errors"
	"runtime"
)

// Group is a set of loops, one per OS thread, for spreading work over
// cores: typically one loop per queue of a multi-queue device, each pinned
// to its own CPU. Its methods are safe from any goroutine.
type Group struct {
	loops []*Loop
}

// NewGroup starts n loops (n <= 0 means one per CPU the process may use,
// runtime.NumCPU). With pin set, loop i is pinned to CPU i modulo the CPU
// count, so each runs on its own core. opts apply to every loop; a CPU
// option among them is overridden by pin.
func NewGroup(n int, pin bool, opts ...Option) (*Group, error) {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	g := &Group{}
	for i := range n {
		o := opts
		if pin {
			o = append(append([]Option(nil), opts...), CPU(i%runtime.NumCPU()))
		}
		l, err := New(o...)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.loops = append(g.loops, l)
	}
	return g, nil
}

// Loops are the group's loops, in order. The slice is a copy.
func (g *Group) Loops() []*Loop { return append([]*Loop(nil), g.loops...) }

// Len is the number of loops.
func (g *Group) Len() int { return len(g.loops) }

// Stats sums the loops' counters.
func (g *Group) Stats() Stats {
	var sum Stats
	for _, l := range g.loops {
		s := l.Stats()
		sum.Rounds += s.Rounds
		sum.Wakeups += s.Wakeups
		sum.Events += s.Events
		sum.Stale += s.Stale
		sum.Requeues += s.Requeues
		sum.Timers += s.Timers
		sum.Posted += s.Posted
		sum.PacketsIn += s.PacketsIn
		sum.PacketsOut += s.PacketsOut
		sum.BytesIn += s.BytesIn
		sum.BytesOut += s.BytesOut
		sum.Syscalls += s.Syscalls
		sum.WouldBlocks += s.WouldBlocks
	}
	return sum
}

// Close closes every loop, and so everything they own.
func (g *Group) Close() error {
	var errs []error
	for _, l := range g.loops {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
