//go:build linux

package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// The rules a row is flagged by (also printed under the table and put in
// the JSON, so a reader never has to guess).
const (
	// keptUpShare: an engine that took at least this share of what the
	// generator sent was not what limited the run.
	keptUpShare = 0.95
	// noisySpread: (max-min)/median above this, and the repetitions
	// disagree too much for the median to mean much.
	noisySpread = 0.25
	// toolBusy: the TCP sender and receiver together using this much of
	// their CPU (they share one) may have been the limit of a TCP run.
	toolBusy = 90.0
	// busyOther: something else using this much (percent) of the engine's
	// or the helpers' CPU during a run made the machine a shared one.
	busyOther = 10.0
)

var rules = map[string]string{
	"generator-bound": fmt.Sprintf("the engine took at least %.0f%% of what the generator sent (median over repetitions): the generator, not the engine, set the rate, so the figure is a floor of what the engine can do", keptUpShare*100),
	"noisy":           fmt.Sprintf("(max-min)/median of the row's first figure is above %.0f%%: the repetitions disagree; rerun with more -reps or on a quieter machine", noisySpread*100),
	"contended":       fmt.Sprintf("something other than tunbench (other processes, kernel threads, interrupts) used %.0f%% or more of the engine's or the helpers' CPU (median over repetitions, from /proc/stat; shown as engine CPU|helper CPU): the figures are what was left over", busyOther),
	"sender-bound":    fmt.Sprintf("fwd-tcp, tun2udp: the TCP sender and receiver (iperf3's client and server, or the built-in threads), sharing the helper CPU, used %.0f%% of it or more, so they may have set the rate", toolBusy),
}

// stat is a median over repetitions with the extremes.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func statOf(v []float64) *stat {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &stat{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// row is one engine in one case, aggregated over its repetitions.
type row struct {
	caseSpec
	Engine          string   `json:"engine"`
	Runs            int      `json:"runs"`
	Failed          int      `json:"failed,omitempty"`
	PPS             *stat    `json:"pps,omitempty"`
	Gbps            *stat    `json:"gbps,omitempty"`
	CPU             *stat    `json:"cpu_percent,omitempty"`
	PktsPerSyscall  *stat    `json:"packets_per_syscall,omitempty"`
	PktsPerCPUSec   *stat    `json:"packets_per_cpu_second,omitempty"`
	SyscallsCounted string   `json:"syscalls_counted,omitempty"`
	DropPct         *stat    `json:"drop_percent,omitempty"`
	GenPPS          *stat    `json:"generator_pps,omitempty"`
	RecvPPS         *stat    `json:"received_pps,omitempty"`
	RPS             *stat    `json:"requests_per_second,omitempty"`
	P50us           *stat    `json:"p50_us,omitempty"`
	P99us           *stat    `json:"p99_us,omitempty"`
	P999us          *stat    `json:"p999_us,omitempty"`
	Retransmits     *stat    `json:"retransmits,omitempty"`
	ToolCPU         *stat    `json:"tcp_tool_cpu_percent,omitempty"`
	OtherEngineCPU  *stat    `json:"other_load_engine_cpu_percent,omitempty"`
	OtherHelperCPU  *stat    `json:"other_load_helper_cpu_percent,omitempty"`
	TCPTool         string   `json:"tcp_tool,omitempty"`
	VsBlocking      *float64 `json:"x_blocking,omitempty"`
	VsNetpoll       *float64 `json:"x_netpoll,omitempty"`
	Flags           []string `json:"flags,omitempty"`
	Notes           []string `json:"notes,omitempty"`
	Errors          []string `json:"errors,omitempty"`
	Samples         []sample `json:"samples"`
}

// primary is the figure a row is ranked and compared by.
func (r *row) primary() *stat {
	switch r.Scenario {
	case "rr":
		return r.RPS
	case "fwd-tcp", "tun2udp":
		return r.Gbps
	}
	return r.PPS
}

type machine struct {
	Kernel     string `json:"kernel"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	Go         string `json:"go"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

type reportConfig struct {
	Duration float64 `json:"duration_seconds"`
	Warmup   float64 `json:"warmup_seconds"`
	Reps     int     `json:"reps"`
	// Queues are the device queue counts asked for; QueuesNote says how
	// the engines used them.
	Queues     []int    `json:"queues"`
	QueuesNote string   `json:"queues_note,omitempty"`
	Engines    []string `json:"engines"`
	TCPTool    string   `json:"tcp_tool,omitempty"`
	// TundraBudget is the tundra engine's loop.Budget; 0 is the library's
	// default.
	TundraBudget int `json:"tundra_budget"`
	// Nice is the scheduling priority tunbench's threads ran at.
	Nice int `json:"nice"`
}

// report is the whole result, what -json prints.
type report struct {
	Tool        string            `json:"tool"`
	Machine     machine           `json:"machine"`
	Pinning     string            `json:"pinning"`
	Config      reportConfig      `json:"config"`
	Rules       map[string]string `json:"rules"`
	Results     []*row            `json:"results"`
	WallSeconds float64           `json:"wall_seconds"`
	Interrupted bool              `json:"interrupted,omitempty"`

	failedRuns int
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
		m.Arch = unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func (b *bench) report(results []caseResult, wall time.Duration, interrupted bool) *report {
	rep := &report{
		Tool:    "tunbench",
		Machine: describeMachine(),
		Pinning: b.pins.String(),
		Config: reportConfig{Duration: b.opt.duration.Seconds(), Warmup: b.opt.warmup.Seconds(),
			Reps: b.opt.reps, Queues: b.opt.queues, TundraBudget: b.opt.budget, Nice: benchNice},
		Rules:       rules,
		WallSeconds: wall.Seconds(),
		Interrupted: interrupted,
	}
	for _, e := range b.opt.engines {
		rep.Config.Engines = append(rep.Config.Engines, e.name())
	}
	rep.Config.QueuesNote = b.queuesNote()
	if b.opt.needsTCP() {
		rep.Config.TCPTool = "built-in"
		if b.iperf3 != "" {
			rep.Config.TCPTool = "iperf3"
		}
	}
	for _, cr := range results {
		rows := map[string]*row{}
		for _, name := range cr.engines {
			ss := cr.samples[name]
			if len(ss) == 0 {
				continue
			}
			r := aggregate(cr.spec, name, ss)
			rep.failedRuns += r.Failed
			rows[name] = r
			rep.Results = append(rep.Results, r)
		}
		for _, r := range rows {
			if r.Engine == ceilingName || r.primary() == nil {
				continue
			}
			ratio := func(other string) *float64 {
				o := rows[other]
				if o == nil || o.primary() == nil || o.primary().Median <= 0 {
					return nil
				}
				v := r.primary().Median / o.primary().Median
				return &v
			}
			r.VsBlocking, r.VsNetpoll = ratio("blocking"), ratio("netpoll")
		}
	}
	return rep
}

// aggregate makes a row of an engine's samples in a case.
func aggregate(c caseSpec, engine string, ss []sample) *row {
	r := &row{caseSpec: c, Engine: engine, Samples: ss}
	var ok []sample
	for _, s := range ss {
		if s.Error != "" {
			r.Failed++
			if !slices.Contains(r.Errors, s.Error) {
				r.Errors = append(r.Errors, s.Error)
			}
			continue
		}
		ok = append(ok, s)
	}
	r.Runs = len(ok)
	if len(ok) == 0 {
		return r
	}
	col := func(get func(sample) float64) *stat {
		v := make([]float64, len(ok))
		for i, s := range ok {
			v[i] = get(s)
		}
		return statOf(v)
	}
	r.TCPTool = ok[0].TCPTool
	r.CPU = col(func(s sample) float64 { return s.CPU })
	r.OtherEngineCPU = col(func(s sample) float64 { return s.OtherLoadEngineCPU })
	r.OtherHelperCPU = col(func(s sample) float64 { return s.OtherLoadHelperCPU })
	switch c.Scenario {
	case "rr":
		r.RPS = col(func(s sample) float64 { return s.RPS })
		r.P50us = col(func(s sample) float64 { return s.P50us })
		r.P99us = col(func(s sample) float64 { return s.P99us })
		r.P999us = col(func(s sample) float64 { return s.P999us })
	case "fwd-tcp", "tun2udp":
		r.Gbps = col(func(s sample) float64 { return s.Gbps })
		r.PPS = col(func(s sample) float64 { return s.PPS })
		r.DropPct = col(func(s sample) float64 { return s.DropPct })
		if r.TCPTool == "iperf3" {
			r.Retransmits = col(func(s sample) float64 { return float64(s.Retransmits) })
		}
		r.ToolCPU = col(func(s sample) float64 { return s.ToolCPU })
	default:
		r.PPS = col(func(s sample) float64 { return s.PPS })
		r.Gbps = col(func(s sample) float64 { return s.Gbps })
		r.DropPct = col(func(s sample) float64 { return s.DropPct })
		switch c.Scenario {
		case "tx":
			r.RecvPPS = col(func(s sample) float64 { return s.RecvPPS })
		case "fwd":
			if engine != ceilingName {
				r.RecvPPS = col(func(s sample) float64 { return s.RecvPPS })
			}
			r.GenPPS = col(func(s sample) float64 { return s.GenPPS })
		default:
			r.GenPPS = col(func(s sample) float64 { return s.GenPPS })
		}
	}
	if engine != ceilingName && c.Scenario != "rr" {
		var eff []float64
		for _, s := range ok {
			if s.PktsPerCPUSec > 0 {
				eff = append(eff, s.PktsPerCPUSec)
			}
		}
		r.PktsPerCPUSec = statOf(eff)
	}
	// Packets per syscall, from the runs that could count them.
	var pps []float64
	for _, s := range ok {
		if s.SyscallsCounted != "" {
			pps = append(pps, s.PktsPerSyscall)
			r.SyscallsCounted = s.SyscallsCounted
		}
	}
	r.PktsPerSyscall = statOf(pps)

	// Flags and notes.
	if p := r.primary(); p != nil && len(ok) > 1 && p.Median > 0 && (p.Max-p.Min)/p.Median > noisySpread {
		r.Flags = append(r.Flags, "noisy")
	}
	// The engine's CPU is idle while the generator runs alone: only the
	// helpers' counts then.
	switch {
	case engine == ceilingName && r.OtherHelperCPU.Median >= busyOther:
		r.Flags = append(r.Flags, fmt.Sprintf("contended (others: -|%.0f%%)", r.OtherHelperCPU.Median))
	case engine != ceilingName && (r.OtherEngineCPU.Median >= busyOther || r.OtherHelperCPU.Median >= busyOther):
		r.Flags = append(r.Flags, fmt.Sprintf("contended (others: %.0f%%|%.0f%%)", r.OtherEngineCPU.Median, r.OtherHelperCPU.Median))
	}
	if engine == ceilingName {
		r.Notes = append(r.Notes, "no reader: the generator alone (its rate, CPU, packets per sendmmsg)")
		return r
	}
	if c.Scenario == "rx-gso" && engine == "wireguard-go" {
		// Its device takes super-packets whole, and the kernel counts a
		// dropped one once, however many packets it carried.
		r.Notes = append(r.Notes, "drop% counts super-packets")
	}
	if r.GenPPS != nil {
		share := col(func(s sample) float64 {
			if s.GenPPS == 0 {
				return 0
			}
			return s.PPS / s.GenPPS
		})
		if share.Median >= keptUpShare {
			r.Flags = append(r.Flags, "generator-bound")
		}
	}
	if r.RecvPPS != nil && r.PPS != nil && r.PPS.Median > 0 {
		if got := r.RecvPPS.Median / r.PPS.Median; got < keptUpShare {
			where := "the sink"
			if c.Scenario == "fwd" {
				where = "B's UDP layer"
			}
			r.Notes = append(r.Notes, fmt.Sprintf("%s got %.0f%%", where, 100*got))
		}
	}
	if r.ToolCPU != nil && r.ToolCPU.Median >= toolBusy {
		r.Flags = append(r.Flags, "sender-bound")
	}
	if len(ok[0].QueueShares) > 1 {
		// The median run's spread over the queues (by the row's first figure).
		med := slices.Clone(ok)
		slices.SortFunc(med, func(a, b sample) int {
			return cmp.Compare(a.PPS+a.RPS+a.Gbps, b.PPS+b.RPS+b.Gbps)
		})
		parts := make([]string, len(med[len(med)/2].QueueShares))
		for i, sh := range med[len(med)/2].QueueShares {
			parts[i] = fmt.Sprintf("%.0f%%", sh)
		}
		r.Notes = append(r.Notes, "per queue "+strings.Join(parts, "/"))
	}
	var errs, lost uint64
	for _, s := range ok {
		errs += s.EngineErrors
		lost += s.Lost
	}
	if errs > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d I/O errors", errs))
	}
	if lost > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d requests lost", lost))
	}
	return r
}

func writeJSON(w io.Writer, rep *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// sig formats with about three significant digits, never in exponent form.
func sig(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.4f", v)
}

// column is one figure of a table: its title, where it comes from, its
// scale and format.
type column struct {
	title string
	get   func(*row) *stat
	scale float64
	f     func(float64) string
}

func fixed0(v float64) string { return fmt.Sprintf("%.0f", v) }
func fixed1(v float64) string { return fmt.Sprintf("%.1f", v) }
func fixed2(v float64) string { return fmt.Sprintf("%.2f", v) }

func columnsFor(scenario string) []column {
	mpps := column{"Mpps", func(r *row) *stat { return r.PPS }, 1e-6, sig}
	gbps := column{"Gbit/s", func(r *row) *stat { return r.Gbps }, 1, sig}
	cpu := column{"CPU%", func(r *row) *stat { return r.CPU }, 1, fixed0}
	pps := column{"pkt/sys", func(r *row) *stat { return r.PktsPerSyscall }, 1, fixed2}
	eff := column{"Mpkt/cpu-s", func(r *row) *stat { return r.PktsPerCPUSec }, 1e-6, sig}
	drop := column{"drop%", func(r *row) *stat { return r.DropPct }, 1, fixed1}
	switch scenario {
	case "rr":
		return []column{
			{"kreq/s", func(r *row) *stat { return r.RPS }, 1e-3, sig},
			{"p50 µs", func(r *row) *stat { return r.P50us }, 1, fixed1},
			{"p99 µs", func(r *row) *stat { return r.P99us }, 1, fixed1},
			{"p99.9 µs", func(r *row) *stat { return r.P999us }, 1, fixed1},
			cpu, pps,
		}
	case "fwd-tcp", "tun2udp":
		return []column{gbps, mpps, cpu, eff, pps, drop,
			{"retrans", func(r *row) *stat { return r.Retransmits }, 1, fixed0},
			{"tool CPU%", func(r *row) *stat { return r.ToolCPU }, 1, fixed0},
		}
	case "tx":
		return []column{mpps, gbps, cpu, eff, pps, drop, {"recv Mpps", func(r *row) *stat { return r.RecvPPS }, 1e-6, sig}}
	case "fwd":
		return []column{mpps, gbps, cpu, eff, pps, drop, {"gen Mpps", func(r *row) *stat { return r.GenPPS }, 1e-6, sig},
			{"recv Mpps", func(r *row) *stat { return r.RecvPPS }, 1e-6, sig}}
	}
	return []column{mpps, gbps, cpu, eff, pps, drop, {"gen Mpps", func(r *row) *stat { return r.GenPPS }, 1e-6, sig}}
}

// writeTable prints the human-readable report: a header that says where
// and how it ran, one table per case with medians and, on the line under
// each, [min-max] over the repetitions, then what the columns and flags
// mean.
func writeTable(w io.Writer, rep *report) {
	m := rep.Machine
	fmt.Fprintf(w, "tunbench: Linux %s %s, %d CPUs (%s), %s, GOMAXPROCS %d\n", m.Kernel, m.Arch, m.CPUs, m.CPUModel, m.Go, m.GOMAXPROCS)
	fmt.Fprintf(w, "pinned: %s\n", rep.Pinning)
	fmt.Fprintf(w, "method: %d repetition(s) of %gs measured after %gs of warm-up, fresh namespaces and devices for every run, engines taking turns; medians, [min-max] underneath\n",
		rep.Config.Reps, rep.Config.Duration, rep.Config.Warmup)
	if rep.Config.QueuesNote != "" {
		fmt.Fprintf(w, "queues: %s\n", rep.Config.QueuesNote)
	}
	if rep.Config.TundraBudget > 0 {
		fmt.Fprintf(w, "tundra: loop.Budget(%d) (not the library's default)\n", rep.Config.TundraBudget)
	}

	for i := 0; i < len(rep.Results); {
		c := rep.Results[i].caseSpec
		j := i
		for j < len(rep.Results) && rep.Results[j].caseSpec == c {
			j++
		}
		rows := rep.Results[i:j]
		i = j
		fmt.Fprintf(w, "\n%s — %s\n", caseTitle(c, rows), scenarioTitles[c.Scenario])
		cols := columnsFor(c.Scenario)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		head := []string{"ENGINE"}
		for _, col := range cols {
			head = append(head, col.title)
		}
		head = append(head, "x blocking", "x netpoll", "notes")
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, r := range rows {
			med, rng := []string{r.Engine}, []string{""}
			anyRange := false
			for _, col := range cols {
				s := col.get(r)
				if s == nil {
					med, rng = append(med, "-"), append(rng, "")
					continue
				}
				v := col.f(s.Median * col.scale)
				if col.title == "pkt/sys" && r.SyscallsCounted == "read/write only" {
					v = "≤" + v
				}
				med = append(med, v)
				lo, hi := col.f(s.Min*col.scale), col.f(s.Max*col.scale)
				if r.Runs > 1 {
					rng = append(rng, "["+lo+"-"+hi+"]")
					anyRange = true
				} else {
					rng = append(rng, "")
				}
			}
			// Every line has the same cells, the range lines' last ones
			// empty: tabwriter aligns a column only over lines that have it.
			med = append(med, ratio(r.VsBlocking), ratio(r.VsNetpoll), notes(r))
			rng = append(rng, "", "", "")
			fmt.Fprintln(tw, strings.Join(med, "\t"))
			if anyRange {
				fmt.Fprintln(tw, strings.Join(rng, "\t"))
			}
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\ncolumns: Mpps, Gbit/s = packets (IP bytes) the engine read (rx), wrote (tx) or forwarded (fwd) per second; CPU% = the engine's CPU time")
	fmt.Fprintln(w, "  over the window, 100 = one core (the process's, minus the generator's/sink's/client's threads); Mpkt/cpu-s = Mpps ÷ (CPU%/100),")
	fmt.Fprintln(w, "  packets per second of the engine's CPU time, the figure that compares queue counts on one core; pkt/sys = packets read + written per")
	fmt.Fprintln(w, "  system call (≤: the engine's calls go through Go's runtime, so only read/write-family calls are counted: an upper bound);")
	fmt.Fprintln(w, "  drop% = rx, fwd: what the device dropped (tx_dropped, qdisc drops) because the engine did not read in time, of what reached")
	fmt.Fprintln(w, "  it; tx: what the kernel refused of what it accepted (rx_dropped, bad checksums, no socket); gen Mpps = the generator's rate")
	fmt.Fprintln(w, "  in the same runs; recv Mpps = what reached the socket(s) behind the device; tool CPU% = the TCP sender and receiver;")
	fmt.Fprintln(w, "  tun2udp: Mpps = packets the relays moved (each packet once per relay, both directions), CPU% = both relays;")
	fmt.Fprintln(w, "  x blocking, x netpoll = the first column's median over that engine's.")
	fmt.Fprintln(w, "flags:")
	for _, k := range []string{"generator-bound", "noisy", "contended", "sender-bound"} {
		fmt.Fprintf(w, "  %s: %s\n", k, rep.Rules[k])
	}
	fmt.Fprintf(w, "wall time %s\n", time.Duration(rep.WallSeconds*float64(time.Second)).Round(100*time.Millisecond))
	if rep.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: the results above are partial")
	}
}

func caseTitle(c caseSpec, rows []*row) string {
	switch c.Scenario {
	case "fwd-tcp", "tun2udp":
		tool := "iperf3"
		if len(rows) > 0 && rows[0].TCPTool != "" {
			tool = rows[0].TCPTool
		}
		m := mtu
		if c.Scenario == "tun2udp" {
			m = relayMTU
		}
		return fmt.Sprintf("%s · one stream (%s), MTU %d", c.Scenario, tool, m)
	case "rr":
		return fmt.Sprintf("rr · %d-byte packets", c.Size)
	}
	flows := "1 flow"
	if c.Flows > 1 {
		flows = fmt.Sprintf("%d flows", c.Flows)
		if c.Scenario == "tx" {
			flows += " (IPv4 and IPv6 alternating)"
		}
	}
	return fmt.Sprintf("%s · %d-byte packets · %s", c.Scenario, c.Size, flows)
}

func ratio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v)
}

func notes(r *row) string {
	var parts []string
	parts = append(parts, r.Flags...)
	parts = append(parts, r.Notes...)
	if r.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d runs FAILED: %s", r.Failed, r.Failed+r.Runs, strings.Join(r.Errors, "; ")))
	}
	return strings.Join(parts, "; ")
}
