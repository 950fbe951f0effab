//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tundra-go/tundra/internal/netns"
	"github.com/tundra-go/tundra/replay"
	"golang.org/x/sys/unix"
)

// tunbench replay and tunbench capture: package replay behind a command
// line, each in a private namespace with a device of its own that
// disappears when the command ends.

// The device's default addresses, those the replay tests use: the
// benchmarking range and a unique local prefix.
const defaultReplayAddrs = "198.18.0.1/24,fd00:7e57::1/64"

// prefixList is a flag holding IP prefixes, comma-separated.
func parsePrefixes(s, flagName string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: give address/length, e.g. 198.18.0.1/24", flagName, f)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	return out, nil
}

// parseListen reads "udp:5301,tcp:80".
func parseListen(s string) ([]replay.Listen, error) {
	var out []replay.Listen
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		proto, port, ok := strings.Cut(f, ":")
		n, err := strconv.Atoi(port)
		if !ok || (proto != "udp" && proto != "tcp") || err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("-listen: %q: give udp:PORT or tcp:PORT, comma-separated", f)
		}
		out = append(out, replay.Listen{Proto: proto, Port: n})
	}
	return out, nil
}

// parseFlagsAnywhere parses fs's flags wherever they are among args
// (before and after positional ones) and returns the positional ones. A
// "--" ends the flags: everything after it is positional.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// The flag package stops at the first positional argument, or
		// after a "--", which it swallows: tell them apart.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noPrivilege prints the one line and says so, before anything is made.
func noPrivilege(stderr io.Writer, usage string) bool {
	p := privilegeProblem()
	if p == "" {
		return false
	}
	fmt.Fprintf(stderr, "tunbench: %s; run it as root: go build -o /tmp/tunbench ./cmd/tunbench && sudo /tmp/tunbench %s\n", p, usage)
	return true
}

// replayDevice makes a private namespace with IP forwarding off (so a
// packet for someone else is dropped and counted, never forwarded) and a
// TUN device in it, up, with addrs (IPv6 ones without duplicate address
// detection). It waits until the kernel has installed the local route of
// each IPv6 address, which it does a moment after the address is added;
// until then packets for it are not for this host.
func replayDevice(en *env, name string, addrs []netip.Prefix, mtu int) (*netns.Namespace, *tundraDev, error) {
	ns, err := en.newNS()
	if err != nil {
		return nil, nil, err
	}
	for _, sysctl := range []string{"net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"} {
		if err := ns.WriteSysctl(sysctl, "0"); err != nil {
			return nil, nil, err
		}
	}
	dev, err := openTundraDev(devSpec{ns: ns, name: name, addrs: addrs, mtu: mtu}, false, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("device %s: %w", name, err)
	}
	en.onClose(dev.close)
	for _, p := range addrs {
		if !p.Addr().Is6() {
			continue
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, err := ns.Output("ip", "-j", "-6", "route", "show", "table", "local", p.Addr().String())
			var routes []json.RawMessage
			if err == nil && json.Unmarshal(out, &routes) == nil && len(routes) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("the local route of %v did not appear within 5s", p.Addr())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return ns, dev, nil
}

// listener is a socket in the namespace that packets may be delivered to:
// UDP datagrams are read and counted, TCP connections accepted, counted
// and closed.
type listener struct {
	replay.Listen
	got  atomic.Uint64
	stop func()
}

func (l *listener) String() string {
	what := "datagrams received"
	if l.Proto == "tcp" {
		what = "connections accepted"
	}
	return fmt.Sprintf("%s %d: %d %s", l.Proto, l.Port, l.got.Load(), what)
}

// listen opens the sockets in ns (dual-stack: one takes IPv4 and IPv6).
func (e *env) listen(ns *netns.Namespace, ls []replay.Listen) ([]*listener, error) {
	var out []*listener
	for _, spec := range ls {
		l := &listener{Listen: spec}
		err := ns.Do(func() error {
			addr := "[::]:" + strconv.Itoa(spec.Port)
			done := make(chan struct{})
			if spec.Proto == "udp" {
				c, err := net.ListenPacket("udp", addr)
				if err != nil {
					return err
				}
				go func() {
					defer close(done)
					buf := make([]byte, 65536)
					for {
						if _, _, err := c.ReadFrom(buf); err != nil {
							return
						}
						l.got.Add(1)
					}
				}()
				l.stop = func() { c.Close(); <-done }
				return nil
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			go func() {
				defer close(done)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					l.got.Add(1)
					c.Close()
				}
			}()
			l.stop = func() { ln.Close(); <-done }
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("listen %s %d: %w", spec.Proto, spec.Port, err)
		}
		e.onClose(l.stop)
		out = append(out, l)
	}
	return out, nil
}

func prefixStrings(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

const replayUsage = "replay [flags] FILE"

// runReplay is tunbench replay: a capture written into a fresh device,
// with what the kernel did with each packet.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tunbench replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addrs     = fs.String("addrs", defaultReplayAddrs, "the device's addresses with their prefix lengths, comma-separated; the capture's addresses are moved into these prefixes")
		devName   = fs.String("dev", "replay0", "the device's name (in the private namespace)")
		mtu       = fs.Int("mtu", 1500, "the device's MTU")
		pace      = fs.String("pace", "captured", "captured: keep the capture's gaps between packets (divided by -speed, capped by -max-gap); fast: write each packet as soon as the device takes it")
		speed     = fs.Float64("speed", 1, "with -pace captured, divide the gaps by this (2 replays twice as fast)")
		maxGap    = fs.Duration("max-gap", time.Second, "with -pace captured, the longest gap kept (0: no cap)")
		rewrite   = fs.Bool("rewrite", true, "move the capture's addresses into the device's prefixes (the host under test becomes the device's address, each peer gets one of its own); -rewrite=false writes them as captured")
		local     = fs.String("local", "", "addresses of the capture that stand for the host under test, comma-separated (default: guessed per conversation)")
		checksums = fs.String("checksums", "fix", "fix: recompute the checksums (but see -keep-bad-checksums); preserve: keep them as captured, right or wrong")
		keepBad   = fs.String("keep-bad-checksums", "", "record numbers whose wrong checksums stay wrong under -checksums fix, comma-separated")
		linger    = fs.Duration("linger", 300*time.Millisecond, "how long to keep reading the kernel's answers after the last write")
		listen    = fs.String("listen", "", "sockets to open in the namespace first, so that packets can be delivered and SYNs answered: udp:PORT,tcp:PORT,... (dual-stack)")
		capture   = fs.String("capture", "", "write what the device read (the kernel's answers and its own traffic) to this pcap file")
		expect    = fs.String("expect", "", "an expectation file (see package replay's Expect): its capture, listeners, local addresses and checksum settings are used, and every verdict is checked (exit status 1 on a difference); FILE then may be left out")
		verbose   = fs.Bool("v", false, "print every record's outcome: verdict, answers, the kernel counters that changed")
		noCount   = fs.Bool("no-counters", false, "do not read the kernel's counters around each write (faster, but drops and deliveries cannot be told apart)")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tunbench "+replayUsage+"   (run as root)")
		fmt.Fprintln(stderr, "\nReplays a capture (pcap or pcapng, possibly gzipped; Ethernet, raw IP, Linux cooked or BSD loopback) into a TUN")
		fmt.Fprintln(stderr, "device of its own, in a private network namespace that is removed afterwards, and prints what the kernel did with")
		fmt.Fprintln(stderr, "each packet: refused on write (with the errno), answered, dropped (with the counter that says why), delivered to")
		fmt.Fprintln(stderr, "a socket, queued for reassembly, or taken in silently.")
		fmt.Fprintln(stderr, "\nexample: sudo tunbench replay -v -listen udp:53 -capture answers.pcap capture.pcapng")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	pos, err := parseFlagsAnywhere(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tunbench replay: "+format+"\n", a...)
		return 2
	}
	prefixes, err := parsePrefixes(*addrs, "-addrs")
	if err != nil {
		return usageErr("%v", err)
	}
	opts := replay.Options{Speed: *speed, MaxGap: *maxGap, Linger: *linger, NoCounters: *noCount}
	switch *pace {
	case "captured":
		opts.Pace = replay.PaceCaptured
	case "fast":
		opts.Pace = replay.PaceFast
	default:
		return usageErr("-pace %q: give captured or fast", *pace)
	}
	switch *checksums {
	case "fix":
		opts.Checksums = replay.ChecksumFix
	case "preserve":
		opts.Checksums = replay.ChecksumPreserve
	default:
		return usageErr("-checksums %q: give fix or preserve", *checksums)
	}
	if *speed <= 0 || *maxGap < 0 || *linger < 0 || *mtu < 68 || *mtu > 65535 {
		return usageErr("-speed must be positive, -max-gap and -linger not negative, -mtu 68..65535")
	}
	if *keepBad != "" {
		if opts.KeepBadChecksums, err = parseInts(*keepBad, "-keep-bad-checksums", 1, 1<<30); err != nil {
			return usageErr("%v", err)
		}
	}
	if *rewrite {
		opts.Rewrite.Prefixes = prefixes
	}
	for _, f := range strings.Split(*local, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return usageErr("-local: %q is not an IP address", f)
		}
		opts.Rewrite.Local = append(opts.Rewrite.Local, a)
	}
	listens, err := parseListen(*listen)
	if err != nil {
		return usageErr("%v", err)
	}
	var exp *replay.Expect
	if *expect != "" {
		f, err := os.Open(*expect)
		if err != nil {
			return usageErr("-expect: %v", err)
		}
		exp, err = replay.ParseExpect(f)
		f.Close()
		if err != nil {
			return usageErr("-expect %s: %v", *expect, err)
		}
		exp.Apply(&opts)
		listens = append(listens, exp.Listen...)
		if len(pos) == 0 && exp.Capture != "" {
			c := exp.Capture // relative to the expectation file
			if !filepath.IsAbs(c) {
				c = filepath.Join(filepath.Dir(*expect), c)
			}
			pos = append(pos, c)
		}
	}
	switch {
	case len(pos) == 0:
		return usageErr("which capture? usage: tunbench %s (tunbench replay -h for the flags)", replayUsage)
	case len(pos) > 1:
		return usageErr("one capture at a time (got %q)", pos)
	}
	opts.File = pos[0]
	opts.Name = filepath.Base(opts.File)
	if noPrivilege(stderr, replayUsage) {
		return 2
	}
	if _, err := os.Stat(opts.File); err != nil {
		fmt.Fprintf(stderr, "tunbench replay: %v\n", err)
		return 1
	}

	var en env
	defer en.close()
	ns, dev, err := replayDevice(&en, *devName, prefixes, *mtu)
	if err != nil {
		fmt.Fprintf(stderr, "tunbench replay: %v\n", err)
		return 1
	}
	ls, err := en.listen(ns, listens)
	if err != nil {
		fmt.Fprintf(stderr, "tunbench replay: %v\n", err)
		return 1
	}
	var capFile *os.File
	if *capture != "" {
		if capFile, err = os.Create(*capture); err != nil {
			fmt.Fprintf(stderr, "tunbench replay: %v\n", err)
			return 1
		}
		defer capFile.Close()
		opts.Capture = capFile
	}
	opts.Device = dev.d.TUN()
	fmt.Fprintf(stdout, "tunbench replay: %s into %s (%s) in a private namespace, pace %s", opts.Name, *devName, prefixStrings(prefixes), opts.Pace)
	if opts.Pace == replay.PaceCaptured {
		fmt.Fprintf(stdout, " ×%g, gaps capped at %v", *speed, *maxGap)
	}
	if len(ls) > 0 {
		var s []string
		for _, l := range ls {
			s = append(s, fmt.Sprintf("%s %d", l.Proto, l.Port))
		}
		fmt.Fprintf(stdout, "; listening on %s", strings.Join(s, ", "))
	}
	fmt.Fprintln(stdout)

	sum, runErr := replay.Run(ctx, opts)
	time.Sleep(20 * time.Millisecond) // let the listeners count what reached them
	if *verbose {
		sum.PrintPackets(stdout)
	}
	sum.Print(stdout)
	for _, l := range ls {
		fmt.Fprintf(stdout, "  listener %s\n", l)
	}
	if capFile != nil {
		if err := capFile.Close(); err != nil && runErr == nil {
			runErr = err
		}
		fmt.Fprintf(stdout, "  capture: %d packets in %s (tcpdump -r %s)\n", sum.Capture.Packets, *capture, *capture)
	}
	code := 0
	if exp != nil && runErr == nil {
		if err := exp.Check(&sum); err != nil {
			fmt.Fprintf(stdout, "expectation %s: DIFFERENT:\n%v\n", *expect, err)
			code = 1
		} else {
			fmt.Fprintf(stdout, "expectation %s: every record as expected (%d)\n", *expect, len(exp.Packets))
		}
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "tunbench replay: interrupted; the summary is of what was replayed so far, and the namespace and device are removed")
		return 130
	case runErr != nil:
		fmt.Fprintf(stderr, "tunbench replay: %v\n", runErr)
		return 1
	}
	return code
}

const captureUsage = "capture -o FILE [flags] [-- COMMAND [ARGS]]"

// runCapture is tunbench capture: what the kernel sends through a fresh
// device, while a command runs in its namespace, into a pcap file.
func runCapture(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tunbench capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		out      = fs.String("o", "", "the pcap file to write (link type RAW, nanosecond timestamps); - for standard output")
		count    = fs.Int("count", 0, "stop after this many packets were written (0: no limit)")
		duration = fs.Duration("duration", 0, "stop after this long (0: no limit)")
		addrs    = fs.String("addrs", defaultReplayAddrs, "the device's addresses with their prefix lengths, comma-separated; the rest of each prefix is routed out of the device")
		devName  = fs.String("dev", "capture0", "the device's name (in the private namespace)")
		mtu      = fs.Int("mtu", 1500, "the device's MTU")
		snaplen  = fs.Int("snaplen", 0, "bytes kept of each packet (0: all of it)")
		linger   = fs.Duration("linger", 200*time.Millisecond, "after COMMAND exits, how long to go on capturing what it set off")
		noNDP    = fs.Bool("no-ndp", false, "leave out the IPv6 neighbour discovery and multicast listener messages (ICMPv6 130-137, 143) the kernel sends on its own")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tunbench "+captureUsage+"   (run as root)")
		fmt.Fprintln(stderr, "\nCreates a TUN device in a private network namespace (removed afterwards) and writes every packet the kernel sends")
		fmt.Fprintln(stderr, "through it to a pcap file that tcpdump -r, tshark -r and Wireshark open. COMMAND, if given, runs inside the namespace")
		fmt.Fprintln(stderr, "(its own output passes through), and the capture ends when it exits (after -linger), at -count packets, after")
		fmt.Fprintln(stderr, "-duration, or on Ctrl-C, whichever comes first; a command still running then is stopped. Nothing answers what goes")
		fmt.Fprintln(stderr, "out of the device: the peers are only addresses routed to it.")
		fmt.Fprintln(stderr, "\nexample: sudo tunbench capture -o ping.pcap -no-ndp -- ping -6 -c 3 fd00:7e57::2 && tcpdump -r ping.pcap")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	command, err := parseFlagsAnywhere(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tunbench capture: "+format+"\n", a...)
		return 2
	}
	prefixes, err := parsePrefixes(*addrs, "-addrs")
	if err != nil {
		return usageErr("%v", err)
	}
	switch {
	case *out == "":
		return usageErr("-o FILE is required (- for standard output); usage: tunbench %s", captureUsage)
	case *count < 0 || *duration < 0 || *linger < 0 || *snaplen < 0:
		return usageErr("-count, -duration, -linger and -snaplen cannot be negative")
	case *mtu < 68 || *mtu > 65535:
		return usageErr("-mtu %d: give 68..65535", *mtu)
	case *snaplen > replay.MaxRecordLen:
		return usageErr("-snaplen %d: at most %d", *snaplen, replay.MaxRecordLen)
	}
	if noPrivilege(stderr, captureUsage) {
		return 2
	}
	// What the command prints goes where tunbench's own lines go, unless
	// the capture itself is on standard output.
	msgs := stdout
	var w io.Writer = stdout
	created := ""
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "tunbench capture: %v\n", err)
			return 1
		}
		defer f.Close()
		w, created = f, *out
	} else {
		msgs = stderr
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tunbench capture: %v\n", err)
		if created != "" {
			os.Remove(created) // nothing was captured: leave nothing behind
		}
		return 1
	}

	var en env
	defer en.close()
	ns, dev, err := replayDevice(&en, *devName, prefixes, *mtu)
	if err != nil {
		return fail(err)
	}
	copts := replay.CaptureOptions{Device: dev.d.TUN(), Output: w, Snaplen: *snaplen, Count: *count}
	if *noNDP {
		copts.Filter = func(p []byte) bool { return !isNDP(p) }
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *duration > 0 {
		cctx, cancel = context.WithTimeout(cctx, *duration)
		defer cancel()
	}
	ready := make(chan struct{})
	copts.Ready = ready
	type result struct {
		st  replay.CaptureStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := replay.Capture(cctx, copts)
		done <- result{st, err}
	}()
	select {
	case <-ready:
	case r := <-done:
		return fail(r.err)
	}
	fmt.Fprintf(msgs, "tunbench capture: %s (%s) in a private namespace", *devName, prefixStrings(prefixes))
	if len(command) == 0 {
		// No command: the user can bring traffic in with nsenter while it
		// runs.
		fmt.Fprintf(msgs, " (nsenter --net=%s to run commands in it)", ns.Path())
	}
	fmt.Fprintln(msgs)

	var res result
	cmdNote := ""
	if len(command) > 0 {
		cmd, exited, err := startInNamespace(ns, command, msgs, stderr)
		if err != nil {
			cancel()
			<-done
			return fail(err)
		}
		select {
		case <-exited:
			// Go on a moment for what the command's last packets set off.
			select {
			case res = <-done:
			case <-time.After(*linger):
				cancel()
				res = <-done
			}
			cmdNote = describeExit(command[0], cmd.ProcessState)
		case res = <-done:
			cmdNote = fmt.Sprintf("%s %s", command[0], stopProcess(cmd, exited))
		}
	} else {
		res = <-done
	}
	if res.err != nil {
		fmt.Fprintf(stderr, "tunbench capture: %v\n", res.err)
	}
	dest := *out
	if dest == "-" {
		dest = "standard output"
	}
	why := "stopped"
	switch {
	case *count > 0 && res.st.Recorder.Packets >= uint64(*count):
		why = fmt.Sprintf("-count %d reached", *count)
	case ctx.Err() != nil:
		why = "interrupted"
	case *duration > 0 && cctx.Err() == context.DeadlineExceeded:
		why = fmt.Sprintf("-duration %v over", *duration)
	case len(command) > 0 && cmdNote != "" && !strings.Contains(cmdNote, "stopped"):
		why = command[0] + " ended"
	}
	fmt.Fprintf(msgs, "tunbench capture: %d packets written to %s (%s; the device read %d", res.st.Recorder.Packets, dest, why, res.st.Read)
	if res.st.Filtered > 0 {
		fmt.Fprintf(msgs, ", %d left out by -no-ndp", res.st.Filtered)
	}
	if res.st.Recorder.Dropped > 0 {
		fmt.Fprintf(msgs, ", %d dropped because the file writer fell behind", res.st.Recorder.Dropped)
	}
	fmt.Fprintln(msgs, ")")
	if cmdNote != "" {
		fmt.Fprintf(msgs, "tunbench capture: %s\n", cmdNote)
	}
	if res.err != nil {
		return 1
	}
	return 0
}

// startInNamespace starts command inside ns as a child that dies with
// tunbench, its output going to stdout and stderr; exited closes when it
// has been waited for.
func startInNamespace(ns *netns.Namespace, command []string, stdout, stderr io.Writer) (*exec.Cmd, chan struct{}, error) {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin = os.Stdin
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := ns.Spawn(cmd); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", command[0], err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	return cmd, exited, nil
}

// describeExit says how a command that ended by itself ended.
func describeExit(name string, ps *os.ProcessState) string {
	if ps == nil {
		return name + " did not run"
	}
	if ps.Success() {
		return name + " exited with status 0"
	}
	return fmt.Sprintf("%s ended: %v", name, ps)
}

// stopProcess ends a command still running when the capture is over as
// Ctrl-C would (SIGINT: ping, tcpdump, iperf3 print their summaries), then
// with SIGTERM and SIGKILL if it is still there a second after each. It
// says what happened.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) string {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		cmd.Process.Signal(sig)
		select {
		case <-exited:
			return fmt.Sprintf("was still running: stopped with %s", unix.SignalName(sig.(syscall.Signal)))
		case <-time.After(time.Second):
		}
	}
	cmd.Process.Kill()
	<-exited
	return "was still running: killed (it outlived SIGINT and SIGTERM by a second each)"
}

// isNDP reports whether p is an IPv6 neighbour discovery or multicast
// listener message (ICMPv6 130-137, 143), behind a hop-by-hop options
// header or not (MLD reports carry one, for the router alert).
func isNDP(p []byte) bool {
	if len(p) < 40 || p[0]>>4 != 6 {
		return false
	}
	nh, off := p[6], 40
	if nh == 0 && len(p) >= off+8 {
		nh, off = p[off], off+(int(p[off+1])+1)*8
	}
	if nh != 58 || len(p) <= off {
		return false
	}
	t := p[off]
	return (t >= 130 && t <= 137) || t == 143
}
