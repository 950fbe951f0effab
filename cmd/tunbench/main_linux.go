//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// init keeps the main goroutine on the main thread, so that no other
// goroutine ever runs there. A goroutine that joins a network namespace
// (netns.Do, netns.New) locks its thread and ends with it; but the main
// thread cannot end: the runtime parks it for good instead, and it would
// then hold that namespace, and /proc/self/ns/net would name it, for the
// rest of the process's life.
func init() { runtime.LockOSThread() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, the next one kills at once: everything
		// is held by file descriptors and children that die with the
		// process, so even that leaves nothing behind.
		<-ctx.Done()
		stop()
	}()
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is a subcommand: tunbench NAME [args].
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"bench", "run the benchmarks (the default when the first argument is a flag or absent)", runBench},
		{"replay", "replay a pcap/pcapng file into a fresh TUN device and show what the kernel did with each packet", runReplay},
		{"capture", "write what the kernel sends through a fresh TUN device (while a command runs) to a pcap file", runCapture},
		{"help", "show this help", runHelp},
	}
}

// dispatch picks the subcommand from the first argument, unless it is a
// flag (or absent): then it is bench. It returns the exit code.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "bench"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "tunbench: unknown command %q (try: tunbench help)\n", name)
	return 2
}

func runHelp(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "usage: tunbench [command] [flags]")
	fmt.Fprintln(stdout, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(stdout, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(stdout, "\nflags of bench:")
	fs, _ := newFlagSet(stdout)
	fs.PrintDefaults()
	fmt.Fprintln(stdout, "\ntunbench replay -h and tunbench capture -h show theirs.")
	return 0
}

// privilegeProblem says why this process cannot create namespaces and
// TUN devices, or "". It reads the effective capabilities rather than
// trusting the uid: root in a container may lack them, and a non-root
// process may have been given them.
func privilegeProblem() string {
	const (
		capNetAdmin = 12
		capSysAdmin = 21 // unshare(CLONE_NEWNET) and setns need it
	)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "cannot read /proc/self/status: " + err.Error()
	}
	var eff uint64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &eff); err == nil {
				found = true
			}
		}
	}
	if !found {
		return "cannot read the process's capabilities"
	}
	if eff&(1<<capNetAdmin) == 0 || eff&(1<<capSysAdmin) == 0 {
		return "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces and TUN devices"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "needs /dev/net/tun (modprobe tun)"
	}
	return ""
}

// runBench is the benchmark command.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt, err := parseOptions(args, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tunbench: %v\n", err)
		return 2
	}
	// First, before anything is made: without the privilege, one line and out.
	if p := privilegeProblem(); p != "" {
		fmt.Fprintf(stderr, "tunbench: %s; run it as root: go build -o /tmp/tunbench ./cmd/tunbench && sudo /tmp/tunbench\n", p)
		return 2
	}
	b := &bench{opt: opt, pins: planPins(), log: stderr, prog: newProgress(stderr)}
	defer prioritize()()
	if b.pins.engine >= 0 {
		restore, err := confine(b.pins.engine)
		if err != nil {
			fmt.Fprintf(stderr, "tunbench: %v\n", err)
			return 1
		}
		defer restore()
		// One P for the engine's CPU, as a process confined to one CPU
		// gets, and one for each helper thread that can run at once (they
		// stand for other programs and must not take the engine's).
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	}
	if opt.needsTCP() && opt.tcp != "builtin" {
		b.iperf3 = findIperf3(stderr)
		if b.iperf3 == "" && opt.tcp == "iperf3" {
			fmt.Fprintln(stderr, "tunbench: -tcp iperf3 asked for, and there is no iperf3")
			return 2
		}
	}
	start := time.Now()
	res := b.runAll(ctx)
	rep := b.report(res, time.Since(start), ctx.Err() != nil)
	if opt.json {
		if err := writeJSON(stdout, rep); err != nil {
			fmt.Fprintf(stderr, "tunbench: %v\n", err)
			return 1
		}
	} else {
		writeTable(stdout, rep)
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "tunbench: interrupted; the runs in progress were stopped and everything they set up removed")
		return 130
	case rep.failedRuns > 0:
		fmt.Fprintf(stderr, "tunbench: %d run(s) failed (see the errors in the results)\n", rep.failedRuns)
		return 1
	}
	return 0
}
