//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenarios, in the order they run and print.
var scenarioNames = []string{"rx", "rx-gso", "tx", "fwd", "fwd-tcp", "tun2udp", "rr"}

var scenarioTitles = map[string]string{
	"rx":      "the kernel sends UDP out through the TUN device (sendmmsg); the engine reads",
	"rx-gso":  "the same, the generator sending 64-segment UDP GSO trains (UDP_SEGMENT)",
	"tx":      "the engine writes prebuilt UDP packets into the TUN device, to a socket behind it",
	"fwd":     "UDP from namespace A to namespace B, through two TUN devices and the engine between them",
	"fwd-tcp": "one TCP stream from A to B through the engine (the tun-rs benchmark's method)",
	"tun2udp": "one TCP stream through two UDP relays (tun2udp) joined by a veth pair: tundra's internal/relay against os.File + net.UDPConn",
	"rr":      "one UDP request in flight; the engine turns each packet around (reflector)",
}

// caseSpec is one scenario with one traffic shape.
type caseSpec struct {
	Scenario string `json:"scenario"`
	Size     int    `json:"size,omitempty"`  // IP packet length in bytes
	Flows    int    `json:"flows,omitempty"` // UDP flows
}

func (c caseSpec) String() string {
	if streamScenario(c.Scenario) {
		return c.Scenario
	}
	s := fmt.Sprintf("%s %dB", c.Scenario, c.Size)
	if c.Flows > 1 {
		s += fmt.Sprintf(" %d flows", c.Flows)
	}
	return s
}

// defaultCases is the suite with no -sizes or -flows: 64-byte packets
// everywhere (the packet rate is the point), 1400-byte ones for tx (near
// the MTU: the byte rate; rx at 1400 bytes left the suite when tun2udp
// came in, to keep it under two minutes: every engine but wireguard-go
// kept up with the generator there), and 16 flows for tx.
var defaultCases = []caseSpec{
	{"rx", 64, 1},
	{"rx-gso", 64, 1},
	{"tx", 64, 1}, {"tx", 64, 16}, {"tx", 1400, 1},
	{"fwd", 64, 1},
	{"fwd-tcp", 0, 0},
	{"tun2udp", 0, 0},
	{"rr", 64, 1},
}

// streamScenario says whether a scenario is one TCP stream, without sizes
// or flows of its own.
func streamScenario(s string) bool { return s == "fwd-tcp" || s == "tun2udp" }

// options are the bench command's flags, checked.
type options struct {
	cases    []caseSpec
	engines  []engine
	duration time.Duration
	warmup   time.Duration
	reps     int
	queues   []int // device queues, each count a run of its own for the engines that can use it
	json     bool
	verbose  bool
	tcp      string
	budget   int // the tundra loop's read budget; 0: the library's default
	// singleOnly names the chosen engines that cannot use more than one
	// queue, when -queues asks for more: they run with one queue (if 1 is
	// among the counts) or not at all.
	singleOnly []string
}

func (o options) needsTCP() bool {
	return slices.ContainsFunc(o.cases, func(c caseSpec) bool { return streamScenario(c.Scenario) })
}

var errHelp = errors.New("help")

type flagValues struct {
	scenarios, engines, sizes, flows, tcp, queues *string
	duration, warmup                              *time.Duration
	reps, budget                                  *int
	json, verbose                                 *bool
}

func newFlagSet(out io.Writer) (*flag.FlagSet, flagValues) {
	fs := flag.NewFlagSet("tunbench", flag.ContinueOnError)
	fs.SetOutput(out)
	v := flagValues{
		scenarios: fs.String("scenarios", strings.Join(scenarioNames, ","), "scenarios to run, comma-separated"),
		engines:   fs.String("engines", defaultEngines, "engines to compare, comma-separated"),
		sizes:     fs.String("sizes", "", "IP packet sizes in bytes, comma-separated, 48..1500 (default: 64, and 1400 for tx)"),
		flows:     fs.String("flows", "", "UDP flows, comma-separated, 1..256 (default: 1, and 16 for tx); with more than one, tx mixes IPv4 and IPv6"),
		duration:  fs.Duration("duration", 500*time.Millisecond, "measured time of each run (fwd-tcp and tun2udp with iperf3: whole seconds, at least 1)"),
		warmup:    fs.Duration("warmup", 150*time.Millisecond, "traffic before each run's measurement starts"),
		reps:      fs.Int("reps", 3, "repetitions of each run; figures are medians with min and max"),
		queues:    fs.String("queues", "1", "device queues, 1..256, comma-separated to compare counts in one run (1,2): tundra and tundra-gso get one loop per queue, all on the engine's CPU; the other engines are single-queue and run only with 1"),
		json:      fs.Bool("json", false, "print one JSON document instead of the table"),
		verbose:   fs.Bool("v", false, "print every run's result on stderr as it finishes"),
		tcp:       fs.String("tcp", "auto", "fwd-tcp traffic: auto (iperf3, installed from Debian if missing, else built-in), iperf3, builtin"),
		budget:    fs.Int("tundra-budget", 0, "the tundra engine's loop.Budget, packets per device per loop round (0: the library's default)"),
	}
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: tunbench [bench] [flags]   (run as root; tunbench help lists the commands)")
		fmt.Fprintln(out, "\nscenarios:")
		for _, s := range scenarioNames {
			fmt.Fprintf(out, "  %-8s %s\n", s, scenarioTitles[s])
		}
		fmt.Fprintln(out, "\nflags:")
		fs.PrintDefaults()
	}
	return fs, v
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs, v := newFlagSet(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, errHelp
		}
		return options{}, err // the flag package has printed why
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := options{duration: *v.duration, warmup: *v.warmup, reps: *v.reps,
		json: *v.json, verbose: *v.verbose, tcp: *v.tcp, budget: *v.budget}
	switch {
	case o.duration < 50*time.Millisecond || o.duration > 10*time.Minute:
		return o, fmt.Errorf("-duration %v: give 50ms..10m", o.duration)
	case o.warmup < 0 || o.warmup > time.Minute:
		return o, fmt.Errorf("-warmup %v: give 0..1m", o.warmup)
	case o.reps < 1 || o.reps > 1000:
		return o, fmt.Errorf("-reps %d: give 1..1000", o.reps)
	case o.tcp != "auto" && o.tcp != "iperf3" && o.tcp != "builtin":
		return o, fmt.Errorf("-tcp %q: give auto, iperf3 or builtin", o.tcp)
	case o.budget < 0:
		return o, fmt.Errorf("-tundra-budget %d: give 0 (the default) or more", o.budget)
	}

	var err error
	if o.queues, err = parseInts(*v.queues, "-queues", 1, 256); err != nil {
		return o, err
	}
	if o.queues == nil {
		return o, errors.New("-queues: empty")
	}
	slices.Sort(o.queues)
	base, err := parseEngines(*v.engines)
	if err != nil {
		return o, err
	}
	// Each engine once per queue count it can serve, in table order.
	for _, e := range base {
		if te, ok := e.(tundraEngine); ok {
			e = tundraEngine{budget: o.budget, gso: te.gso, uring: te.uring}
		}
		mq, ok := e.(multiQueue)
		for _, q := range o.queues {
			switch {
			case ok:
				o.engines = append(o.engines, mq.withQueues(q))
			case q == 1:
				o.engines = append(o.engines, e)
			case !slices.Contains(o.singleOnly, e.name()):
				o.singleOnly = append(o.singleOnly, e.name())
			}
		}
	}
	if len(o.engines) == 0 {
		return o, fmt.Errorf("-queues %s: none of the chosen engines (%s) can use more than one queue; tundra and tundra-gso can",
			*v.queues, strings.Join(o.singleOnly, ", "))
	}
	scen, err := parseList(*v.scenarios, "-scenarios", func(s string) (string, error) {
		if !slices.Contains(scenarioNames, s) {
			return "", fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(scenarioNames, ", "))
		}
		return s, nil
	})
	if err != nil {
		return o, err
	}
	sizes, err := parseInts(*v.sizes, "-sizes", 48, 1500)
	if err != nil {
		return o, err
	}
	flows, err := parseInts(*v.flows, "-flows", 1, 256)
	if err != nil {
		return o, err
	}
	for _, s := range scenarioNames { // in the canonical order
		if !slices.Contains(scen, s) {
			continue
		}
		switch {
		case streamScenario(s):
			o.cases = append(o.cases, caseSpec{Scenario: s})
		case sizes == nil && flows == nil:
			for _, c := range defaultCases {
				if c.Scenario == s {
					o.cases = append(o.cases, c)
				}
			}
		default:
			ss, ff := sizes, flows
			if ss == nil {
				ss = []int{64}
			}
			if ff == nil || s == "rr" {
				ff = []int{1}
			}
			for _, size := range ss {
				for _, f := range ff {
					o.cases = append(o.cases, caseSpec{s, size, f})
				}
			}
		}
	}
	// tun2udp runs only the engines that have a relay.
	if !slices.ContainsFunc(o.engines, hasRelay) {
		o.cases = slices.DeleteFunc(o.cases, func(c caseSpec) bool { return c.Scenario == "tun2udp" })
		if len(o.cases) == 0 {
			return o, errors.New("-scenarios tun2udp: its engines are tundra and netpoll (relays), and neither is chosen")
		}
	}
	return o, nil
}

func parseEngines(s string) ([]engine, error) {
	names, err := parseList(s, "-engines", func(n string) (string, error) {
		switch n {
		case "wg", "wireguard":
			n = "wireguard-go"
		}
		for _, e := range engines {
			if e.name() == n {
				return n, nil
			}
		}
		return "", fmt.Errorf("unknown engine %q (have tundra, tundra-gso, blocking, epoll, netpoll, wireguard-go)", n)
	})
	if err != nil {
		return nil, err
	}
	var out []engine
	for _, e := range engines { // in the canonical order
		if slices.Contains(names, e.name()) {
			out = append(out, e)
		}
	}
	return out, nil
}

// parseList splits a comma-separated flag value, checks each item, and
// refuses an empty list and duplicates.
func parseList(s, flagName string, check func(string) (string, error)) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := check(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	return out, nil
}

// parseInts parses a comma-separated list of integers in lo..hi; "" is
// nil (the defaults).
func parseInts(s, flagName string, lo, hi int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	items, err := parseList(s, flagName, func(f string) (string, error) {
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			return "", fmt.Errorf("%q: give whole numbers in %d..%d", f, lo, hi)
		}
		return strconv.Itoa(n), nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]int, len(items))
	for i, it := range items {
		out[i], _ = strconv.Atoi(it)
	}
	return out, nil
}

// defaultEngines are the engines a run compares unless -engines names
// others (tundra-uring is opt-in: see docs/benchmarks.md).
const defaultEngines = "tundra,tundra-gso,blocking,epoll,netpoll,wireguard-go"
