//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bench runs the suite.
type bench struct {
	opt    options
	pins   pinPlan
	iperf3 string // "" for the built-in TCP sender and receiver
	log    io.Writer
	prog   *progress
}

// caseResult is every sample of one case, by engine in table order.
type caseResult struct {
	spec    caseSpec
	engines []string
	samples map[string][]sample
}

// enginesFor lists what runs in a case: the generator alone first where
// there is a generator, then the engines.
func (b *bench) enginesFor(c caseSpec) []engine {
	var es []engine
	switch c.Scenario {
	case "rx", "rx-gso", "fwd":
		es = append(es, ceilingEngine{}.withQueues(b.opt.queues[0]))
	case "tun2udp":
		// Relays, not engines on devices: only the engines that have one.
		for _, e := range b.opt.engines {
			if hasRelay(e) {
				es = append(es, e)
			}
		}
		return es
	}
	return append(es, b.opt.engines...)
}

// queuesNote says how the engines use the queue counts asked for, and
// where their loops run; "" for the default single queue.
func (b *bench) queuesNote() string {
	if slices.Equal(b.opt.queues, []int{1}) {
		return ""
	}
	var parts []string
	parts = append(parts, fmt.Sprintf("%s asked for; tundra and tundra-gso run one loop per queue (loop.Group), flows spread over the queues by the kernel's hash (rx, fwd) or by the engine (tx: flow f through queue ⌊f/2⌋ mod n, both families on each)", joinInts(b.opt.queues)))
	if b.pins.engine >= 0 {
		parts = append(parts, fmt.Sprintf("every loop runs on CPU %d, the engine's: CPU %d is the traffic's, so raw packets per second cannot grow with the queues here; compare Mpkt/cpu-s, the cost per packet", b.pins.engine, b.pins.helper))
	}
	if len(b.opt.singleOnly) > 0 {
		parts = append(parts, fmt.Sprintf("%s: single-queue only, run with 1 queue", strings.Join(b.opt.singleOnly, ", ")))
		if b.opt.queues[0] != 1 {
			parts[len(parts)-1] = fmt.Sprintf("%s: single-queue only, not run", strings.Join(b.opt.singleOnly, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// runAll runs every case, repetition and engine, until done or ctx is
// cancelled. Within a case the engines take turns, repetition after
// repetition, each repetition starting with a different one, so that a
// slow spell of the shared machine lands on all of them alike.
func (b *bench) runAll(ctx context.Context) []caseResult {
	total := 0
	for _, c := range b.opt.cases {
		total += len(b.enginesFor(c)) * b.opt.reps
	}
	b.prog.total = total
	var out []caseResult
	for _, c := range b.opt.cases {
		es := b.enginesFor(c)
		cr := caseResult{spec: c, samples: map[string][]sample{}}
		for _, e := range es {
			cr.engines = append(cr.engines, e.name())
		}
		for rep := 1; rep <= b.opt.reps && ctx.Err() == nil; rep++ {
			for i := range es {
				if ctx.Err() != nil {
					break
				}
				e := es[(i+rep-1)%len(es)]
				b.prog.show(fmt.Sprintf("%s · %s · rep %d/%d", c, e.name(), rep, b.opt.reps))
				s := b.runOne(ctx, c, e, rep)
				b.prog.step()
				if ctx.Err() != nil {
					break // an interrupted run measured nothing
				}
				cr.samples[e.name()] = append(cr.samples[e.name()], s)
				if b.opt.verbose {
					b.prog.clear()
					fmt.Fprintf(b.log, "tunbench: %s · %s · rep %d: %s\n", c, e.name(), rep, s.summary(c))
				}
			}
		}
		if len(cr.samples) > 0 {
			out = append(out, cr)
		}
	}
	b.prog.clear()
	return out
}

func (b *bench) runOne(ctx context.Context, c caseSpec, e engine, rep int) sample {
	var s sample
	var err error
	switch c.Scenario {
	case "rx", "rx-gso":
		s, err = b.runRX(ctx, c, e)
	case "tx":
		s, err = b.runTX(ctx, c, e)
	case "fwd":
		s, err = b.runFwd(ctx, c, e)
	case "fwd-tcp":
		s, err = b.runFwdTCP(ctx, c, e)
	case "tun2udp":
		s, err = b.runTun2UDP(ctx, c, e)
	case "rr":
		s, err = b.runRR(ctx, c, e)
	default:
		err = fmt.Errorf("unknown scenario %q", c.Scenario)
	}
	s.Engine, s.Rep = e.name(), rep
	if err != nil {
		s.Error = err.Error()
	}
	return s
}

// summary is a one-line account of a sample, for -v.
func (s sample) summary(c caseSpec) string {
	if s.Error != "" {
		return "failed: " + s.Error
	}
	switch c.Scenario {
	case "rr":
		return fmt.Sprintf("%.0f req/s, p50 %.1fµs p99 %.1fµs p99.9 %.1fµs, cpu %.0f%%", s.RPS, s.P50us, s.P99us, s.P999us, s.CPU)
	case "fwd-tcp", "tun2udp":
		return fmt.Sprintf("%.2f Gbit/s, %.3f Mpps, cpu %.0f%%, %d retransmits", s.Gbps, s.PPS/1e6, s.CPU, s.Retransmits)
	}
	line := fmt.Sprintf("%.3f Mpps, %.2f Gbit/s, cpu %.0f%%, drops %.1f%%", s.PPS/1e6, s.Gbps, s.CPU, s.DropPct)
	if s.GenPPS > 0 && s.Engine != ceilingName {
		line += fmt.Sprintf(", generator %.3f Mpps", s.GenPPS/1e6)
	}
	if s.RecvPPS > 0 {
		line += fmt.Sprintf(", received %.3f Mpps", s.RecvPPS/1e6)
	}
	return line
}

// progress is the live line on stderr, only when stderr is a terminal.
type progress struct {
	w     io.Writer
	on    bool
	total int
	done  int
	start time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.on = err == nil
	}
	return p
}

func (p *progress) show(what string) {
	if !p.on {
		return
	}
	eta := ""
	if p.done > 0 {
		left := time.Duration(float64(time.Since(p.start)) / float64(p.done) * float64(p.total-p.done))
		eta = fmt.Sprintf(", ~%s left", left.Round(time.Second))
	}
	fmt.Fprintf(p.w, "\r\x1b[K[%d/%d%s] %s", p.done+1, p.total, eta, what)
}

func (p *progress) step() { p.done++ }

func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
