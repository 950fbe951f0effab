//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/tundra-go/tundra/internal/netns"
	"github.com/tundra-go/tundra/internal/packet"
	"golang.org/x/sys/unix"
)

// Addressing. rx, tx and rr use one namespace with one device; fwd uses
// two namespaces joined only by the engine between their devices.
var (
	oneLocal4  = netip.MustParsePrefix("10.70.0.1/24")
	oneLocal6  = netip.MustParsePrefix("fd70::1/64")
	onePeer4   = netip.MustParseAddr("10.70.0.2") // routed out of the device
	onePeer6   = netip.MustParseAddr("fd70::2")
	fwdA       = netip.MustParsePrefix("10.80.0.1/24")
	fwdB       = netip.MustParsePrefix("10.80.0.2/24")
	discard    = uint16(9) // the port wake-up packets go to
	sinkPort   = 9000
	clientPort = uint16(6000)
	echoPort   = uint16(7000)
)

// mtu is every device's MTU: Ethernet's, what a TUN user most often has.
const mtu = 1500

// readBufSize is the read buffer of the engines that read one packet per
// buffer from devices without offloads (nothing longer than the MTU).
const readBufSize = 2048

// sample is one run's result: one engine, one repetition of one case.
// Rates are per second of the measured window.
type sample struct {
	Engine  string  `json:"engine"`
	Rep     int     `json:"rep"`
	Seconds float64 `json:"seconds"`
	// Packets the engine moved (rx: read; tx: written and accepted by the
	// kernel; fwd: written into the other device), and their IP bytes.
	PPS  float64 `json:"pps"`
	Gbps float64 `json:"gbps"`
	// CPU is the engine's CPU time over the window in percent of one CPU:
	// the process's (getrusage) minus the helper threads'.
	CPU float64 `json:"cpu_percent"`
	// PktsPerCPUSec is PPS over the engine's CPU (in CPUs): packets per
	// second of the engine's CPU time, its cost per packet inverted.
	PktsPerCPUSec float64 `json:"packets_per_cpu_second,omitempty"`
	// QueueShares is each queue's share of the packets, in percent (the
	// packets its loop read and wrote), for engines with several queues.
	QueueShares []float64 `json:"queue_shares_percent,omitempty"`
	// PktsPerSyscall is packets read plus written per system call; see
	// SyscallsCounted for what was counted.
	PktsPerSyscall  float64 `json:"packets_per_syscall"`
	SyscallsCounted string  `json:"syscalls_counted,omitempty"`
	// Drops are packets the kernel dropped on the way (see the scenario),
	// over the window; DropPct the same as a percentage of what reached
	// the device (rx, fwd) or of what the kernel accepted (tx).
	Drops   uint64  `json:"drops"`
	DropPct float64 `json:"drop_percent"`
	// GenPPS is the generator's rate during the run (rx, fwd), GenCPU its
	// thread's CPU.
	GenPPS float64 `json:"generator_pps,omitempty"`
	GenCPU float64 `json:"generator_cpu_percent,omitempty"`
	// RecvPPS is what arrived at the far end: the sink's count (tx), the
	// UDP layer of the far namespace (fwd).
	RecvPPS float64 `json:"received_pps,omitempty"`
	// Received is the sink's count over the whole run, warm-up and stop
	// included (tx): that the engine's packets were good enough to reach
	// a socket, which a window's rate cannot show when the sink's CPU was
	// taken by others for the whole window.
	Received uint64 `json:"received,omitempty"`
	// rr
	RPS    float64 `json:"requests_per_second,omitempty"`
	P50us  float64 `json:"p50_us,omitempty"`
	P99us  float64 `json:"p99_us,omitempty"`
	P999us float64 `json:"p999_us,omitempty"`
	Lost   uint64  `json:"lost,omitempty"`
	// fwd-tcp
	Retransmits uint64  `json:"retransmits,omitempty"`
	ToolCPU     float64 `json:"tcp_tool_cpu_percent,omitempty"`
	TCPTool     string  `json:"tcp_tool,omitempty"`
	// OtherLoadEngineCPU and OtherLoadHelperCPU are how much of the
	// engine's and the helpers' CPU, in percent, went to anything but
	// this run (other processes, kernel threads, interrupts), from
	// /proc/stat: a machine shared with other work shows here.
	OtherLoadEngineCPU float64 `json:"other_load_engine_cpu_percent"`
	OtherLoadHelperCPU float64 `json:"other_load_helper_cpu_percent"`
	// Allocs are the heap objects the whole process allocated during the
	// window (engine, helpers, runtime): a steady state allocates none
	// per packet.
	Allocs uint64 `json:"allocs"`
	// EngineErrors counts I/O errors the engine met and went past; Error
	// is why the run failed, if it did.
	EngineErrors uint64 `json:"engine_errors,omitempty"`
	Error        string `json:"error,omitempty"`
}

// sleep waits d or until ctx is cancelled.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func countersDelta(a, b engineCounters) engineCounters {
	d := engineCounters{
		pktsIn: b.pktsIn - a.pktsIn, pktsOut: b.pktsOut - a.pktsOut,
		bytesIn: b.bytesIn - a.bytesIn, bytesOut: b.bytesOut - a.bytesOut,
		syscalls: b.syscalls - a.syscalls, syscallsKnown: b.syscallsKnown,
		errors: b.errors - a.errors,
	}
	if len(a.perQueue) == len(b.perQueue) {
		for i := range b.perQueue {
			d.perQueue = append(d.perQueue, b.perQueue[i]-a.perQueue[i])
		}
	}
	return d
}

// queueShares fills QueueShares: how the packets were spread over the
// queues' loops, in percent.
func (s *sample) queueShares(ec engineCounters) {
	var total uint64
	for _, n := range ec.perQueue {
		total += n
	}
	if total == 0 {
		return
	}
	for _, n := range ec.perQueue {
		s.QueueShares = append(s.QueueShares, pct(n, total))
	}
}

// efficiency fills PktsPerCPUSec from PPS and CPU.
func (s *sample) efficiency() {
	if s.CPU > 0 {
		s.PktsPerCPUSec = s.PPS / (s.CPU / 100)
	}
}

// syscallFigure fills the packets-per-syscall figure: the engine's own
// count when it keeps one, else the process's read/write-family calls
// (a lower bound on its system calls, so the figure is an upper bound).
func (s *sample) syscallFigure(ec engineCounters, sp span) {
	pkts := float64(ec.pktsIn + ec.pktsOut)
	switch {
	case ec.syscallsKnown && ec.syscalls > 0:
		s.PktsPerSyscall = pkts / float64(ec.syscalls)
		s.SyscallsCounted = "all"
	case !ec.syscallsKnown && sp.ioOK && sp.engineIO > 0:
		s.PktsPerSyscall = pkts / float64(sp.engineIO)
		s.SyscallsCounted = "read/write only"
	}
}

// otherLoads fills the other-load figures; tool is CPU the helpers'
// external processes (iperf3) used on the helper CPU.
func (s *sample) otherLoads(sp span, p pinPlan, tool time.Duration) {
	s.Allocs = sp.allocs
	s.OtherLoadEngineCPU = sp.otherLoad(p.engine, sp.engineCPU)
	s.OtherLoadHelperCPU = sp.otherLoad(p.helper, sp.helperCPU+tool)
}

// dropsOf fills the drops of a device the kernel sends through to the
// engine (rx, fwd): what its queue to the reader and its qdisc dropped,
// as a share of what reached it (read, at readRate, or dropped).
func (s *sample) dropsOf(d0, d1 devStats, sp span, readRate float64) {
	tx, _, qdisc := dropRates(d0, d1)
	drops := tx + qdisc
	s.Drops = uint64(drops * sp.elapsed.Seconds())
	if drops+readRate > 0 {
		s.DropPct = 100 * drops / (drops + readRate)
	}
}

func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// window says what a scenario reads at both ends of its measured window:
// the device's counters, UDP counters in a namespace (udpNS nil: none),
// the helper threads' CPU, the helper's own traffic count and the
// engine's counters.
type window struct {
	devNS   *netns.Namespace
	dev     string
	udpNS   *netns.Namespace
	helpers []*helperThread
	traffic func() uint64
	r       runner
}

// ends is one end of a measured window.
type ends struct {
	dev     devStats
	udp     udpStats
	use     usage
	traffic uint64
	eng     engineCounters
}

// measure reads the window's start, waits the measured duration and reads
// its end. The CPU clocks and counters are read next to the wait, the
// device and UDP counters (which fork ip or read /proc) outside it.
func (b *bench) measure(ctx context.Context, w window) (start, end ends, err error) {
	readSlow := func(e *ends) error {
		if e.dev, err = readDevStats(w.devNS, w.dev); err != nil {
			return err
		}
		if w.udpNS != nil {
			if e.udp, err = readUDPStats(w.udpNS); err != nil {
				return err
			}
		}
		return nil
	}
	readFast := func(e *ends) {
		e.use, e.traffic, e.eng = takeUsage(w.helpers), w.traffic(), w.r.counters()
	}
	if err := readSlow(&start); err != nil {
		return start, end, err
	}
	readFast(&start)
	eng0 := engineClock(w.helpers)
	// A window must see what it measures. On a loaded machine the engine
	// or the helper can get no CPU for a whole short window (-duration
	// 200ms), and a rate of 0 would then say nothing about either: see
	// stretch.
	if err := b.stretch(ctx, func() bool {
		if _, idle := w.r.(idleRunner); !idle && !engineMoved(start.eng, w.r.counters(), eng0, w.helpers) {
			return false
		}
		return w.traffic == nil || w.traffic() != start.traffic
	}); err != nil {
		return start, end, err
	}
	readFast(&end)
	err = readSlow(&end)
	return start, end, err
}

// stretch ends a window: it waits the window's duration, then on, in
// steps, until moved says the window has seen what it measures, for at
// most maxStretch. Past that, nothing moving is the finding and the zeros
// are reported. The sample's seconds are the window's real length. moved
// runs every step, so it must be cheap and must not allocate (the window
// counts the process's allocations).
func (b *bench) stretch(ctx context.Context, moved func() bool) error {
	if err := sleep(ctx, b.opt.duration); err != nil {
		return err
	}
	for deadline := time.Now().Add(max(maxStretch, b.opt.duration)); !moved() && time.Now().Before(deadline); {
		if err := sleep(ctx, windowStep); err != nil {
			return err
		}
	}
	return nil
}

// How long a window may run on past its duration waiting for traffic
// (stretch), and in what steps; and the answers an rr window waits for.
const (
	maxStretch   = 5 * time.Second
	windowStep   = 20 * time.Millisecond
	minRRSamples = 1000
)

// engineClock is the process's CPU time less the helpers' (the engine's,
// as spanOf counts it).
func engineClock(helpers []*helperThread) time.Duration {
	d := processCPU()
	for _, h := range helpers {
		if tid := int(h.tid.Load()); tid != 0 {
			if c, err := threadCPU(tid); err == nil {
				d -= c
			}
		}
	}
	return d
}

// engineMoved reports whether the engine moved packets since c0 and its
// CPU time shows since clock0: the process's clock (getrusage) lags the
// helpers' own thread clocks by up to a tick, so an engine that ran for
// less than that read as 0% CPU.
func engineMoved(c0, c engineCounters, clock0 time.Duration, helpers []*helperThread) bool {
	return c.pktsIn+c.pktsOut != c0.pktsIn+c0.pktsOut && engineClock(helpers) > clock0
}

// generatorAlone fills in the "generator alone" row: the generator's own
// rate, CPU and packets per sendmmsg.
func (s *sample) generatorAlone(sp span, sent uint64, size int, gen *generator) {
	s.PPS, s.Gbps, s.CPU = s.GenPPS, sp.rate(sent*uint64(size))*8/1e9, s.GenCPU
	if calls := gen.calls.load(); calls > 0 {
		s.PktsPerSyscall, s.SyscallsCounted = float64(gen.sent.load())/float64(calls), "all"
	}
}

// oneDevice is the setting of rx, tx and rr: a namespace, one device of
// engine e in it (tb0, with addrs), both closed with en, and a waker that
// sends to the device's peer.
func (en *env) oneDevice(e engine, addrs ...netip.Prefix) (*netns.Namespace, device, *waker, error) {
	ns, err := en.newNS()
	if err != nil {
		return nil, nil, nil, err
	}
	dev, err := e.open(devSpec{ns: ns, name: "tb0", addrs: addrs, mtu: mtu})
	if err != nil {
		return nil, nil, nil, err
	}
	en.onClose(dev.close)
	wk, err := en.newWaker(ns, netip.AddrPortFrom(onePeer4, discard))
	if err != nil {
		return nil, nil, nil, err
	}
	return ns, dev, wk, nil
}

// runRX: a generator in the namespace sends UDP to an address routed out
// of the device; the engine reads. Drops are the device's tx_dropped (its
// queue to the reader was full) and the qdisc's.
func (b *bench) runRX(ctx context.Context, c caseSpec, e engine) (s sample, err error) {
	var en env
	defer en.close()
	ns, dev, wk, err := en.oneDevice(e, oneLocal4)
	if err != nil {
		return s, err
	}
	gen, err := en.newGenerator(genConfig{ns: ns, dst: netip.AddrPortFrom(onePeer4, uint16(sinkPort)),
		size: c.Size, flows: c.Flows, gso: c.Scenario == "rx-gso", cpu: b.pins.helper})
	if err != nil {
		return s, err
	}
	r, err := e.start(job{kind: jobDrain, a: dev, wake: wk.wake}, b.pins.engine)
	if err != nil {
		return s, err
	}
	en.onClose(func() { r.stop() })
	if err := gen.start(); err != nil {
		return s, err
	}
	if err := sleep(ctx, b.opt.warmup); err != nil {
		return s, err
	}
	w0, w1, err := b.measure(ctx, window{devNS: ns, dev: dev.ifname(),
		helpers: []*helperThread{&gen.thread}, traffic: gen.sent.load, r: r})
	if err != nil {
		return s, err
	}
	gen.stop()
	if err := r.stop(); err != nil {
		return s, fmt.Errorf("engine: %w", err)
	}

	sp, ec, sent := spanOf(w0.use, w1.use), countersDelta(w0.eng, w1.eng), w1.traffic-w0.traffic
	s.Seconds = sp.elapsed.Seconds()
	s.otherLoads(sp, b.pins, 0)
	s.GenPPS, s.GenCPU = sp.rate(sent), sp.pct(sp.helperCPU)
	s.dropsOf(w0.dev, w1.dev, sp, sp.rate(ec.pktsIn))
	if _, ok := e.(ceilingEngine); ok {
		s.generatorAlone(sp, sent, c.Size, gen)
		return s, nil
	}
	s.PPS, s.Gbps = sp.rate(ec.pktsIn), sp.rate(ec.bytesIn)*8/1e9
	s.CPU = sp.pct(sp.engineCPU)
	s.EngineErrors = ec.errors
	s.syscallFigure(ec, sp)
	s.queueShares(ec)
	s.efficiency()
	return s, nil
}

// txPackets builds the packets tx writes: from the device's peer to the
// sink, flow i from source port 10000+i; with more than one flow, even
// flows are IPv4 and odd ones IPv6, interleaved. Every packet is size
// bytes long.
func txPackets(size, flows int) ([][]byte, error) {
	n := 64
	if flows > n {
		n = flows
	}
	pkts := make([][]byte, n)
	for i := range pkts {
		f := i % flows
		src, dst, hdr := onePeer4, oneLocal4.Addr(), ipv4UDPHeaders
		if flows > 1 && f%2 == 1 {
			src, dst, hdr = onePeer6, oneLocal6.Addr(), ipv6UDPHeaders
		}
		if size < hdr {
			return nil, fmt.Errorf("size %d is below the %d bytes of headers", size, hdr)
		}
		p, err := packet.UDP(netip.AddrPortFrom(src, uint16(10000+f)), netip.AddrPortFrom(dst, uint16(sinkPort)), make([]byte, size-hdr))
		if err != nil {
			return nil, err
		}
		pkts[i] = p
	}
	return pkts, nil
}

// runTX: the engine writes prebuilt packets into the device, addressed to
// a sink socket in the namespace. The figure is what the kernel accepted;
// the sink's count says the packets were good. Drops: the device's
// rx_dropped, bad checksums and packets for no socket.
func (b *bench) runTX(ctx context.Context, c caseSpec, e engine) (s sample, err error) {
	var en env
	defer en.close()
	ns, dev, wk, err := en.oneDevice(e, oneLocal4, oneLocal6)
	if err != nil {
		return s, err
	}
	pkts, err := txPackets(c.Size, c.Flows)
	if err != nil {
		return s, err
	}
	sk, err := en.newSink(ns, sinkPort, b.pins.helper)
	if err != nil {
		return s, err
	}
	if err := sk.start(); err != nil {
		return s, err
	}
	r, err := e.start(job{kind: jobBlast, a: dev, pkts: pkts, flows: c.Flows, wake: wk.wake}, b.pins.engine)
	if err != nil {
		return s, err
	}
	en.onClose(func() { r.stop() })
	if err := sleep(ctx, b.opt.warmup); err != nil {
		return s, err
	}
	w0, w1, err := b.measure(ctx, window{devNS: ns, dev: dev.ifname(), udpNS: ns,
		helpers: []*helperThread{&sk.thread}, traffic: sk.recv.load, r: r})
	if err != nil {
		return s, err
	}
	if err := r.stop(); err != nil {
		return s, fmt.Errorf("engine: %w", err)
	}
	sk.stop()
	s.Received = sk.recv.load()

	sp, ec := spanOf(w0.use, w1.use), countersDelta(w0.eng, w1.eng)
	_, rxDrops, _ := dropRates(w0.dev, w1.dev)
	nd := w1.udp.sub(w0.udp)
	k0, k1 := w0.traffic, w1.traffic
	s.Seconds = sp.elapsed.Seconds()
	s.otherLoads(sp, b.pins, 0)
	s.PPS, s.Gbps = sp.rate(ec.pktsOut), sp.rate(ec.bytesOut)*8/1e9
	s.CPU = sp.pct(sp.engineCPU)
	s.RecvPPS = sp.rate(k1 - k0)
	// Drops are what the kernel refused of what it accepted: the
	// device's, bad checksums, no socket. A sink too slow to read them
	// all (receive-buffer errors) is not the engine's doing: it shows as
	// the gap between the accepted and the received rate.
	s.Drops = uint64(rxDrops*s.Seconds) + nd.InCsumErrors + nd.NoPorts
	s.DropPct = pct(s.Drops, ec.pktsOut)
	s.EngineErrors = ec.errors
	s.syscallFigure(ec, sp)
	s.queueShares(ec)
	s.efficiency()
	return s, nil
}

// fwdPair sets up the two namespaces, one device in each, and the engine
// forwarding between them. It returns the namespaces, the device in A,
// and the started runner.
func (b *bench) fwdPair(en *env, e engine) (nsA, nsB *netns.Namespace, devA device, r runner, err error) {
	if nsA, err = en.newNS(); err != nil {
		return
	}
	if nsB, err = en.newNS(); err != nil {
		return
	}
	a, bb := nsA, nsB
	devA, err = e.open(devSpec{ns: a, name: "tbA", addrs: []netip.Prefix{fwdA}, mtu: mtu})
	if err != nil {
		return
	}
	en.onClose(devA.close)
	devB, err := e.open(devSpec{ns: bb, name: "tbB", addrs: []netip.Prefix{fwdB}, mtu: mtu})
	if err != nil {
		return
	}
	en.onClose(devB.close)
	wa, err := en.newWaker(a, netip.AddrPortFrom(fwdB.Addr(), discard))
	if err != nil {
		return
	}
	wb, err := en.newWaker(bb, netip.AddrPortFrom(fwdA.Addr(), discard))
	if err != nil {
		return
	}
	r, err = e.start(job{kind: jobForward, a: devA, b: devB, wake: func() { wa.wake(); wb.wake() }}, b.pins.engine)
	if err != nil {
		return
	}
	en.onClose(func() { r.stop() })
	return
}

// runFwd: UDP from a generator in A to sockets in B, through the engine.
// The sockets are never read: the far end's UDP layer counts what arrived
// (receive-buffer errors once the buffers are full), without a reader
// taking CPU from the generator. Drops are device A's tx_dropped and
// qdisc drops: what the engine did not read in time.
func (b *bench) runFwd(ctx context.Context, c caseSpec, e engine) (s sample, err error) {
	var en env
	defer en.close()
	nsA, nsB, devA, r, err := b.fwdPair(&en, e)
	if err != nil {
		return s, err
	}
	for i := range c.Flows {
		fd, err := udpSocket(nsB, unix.AF_INET, sockaddr(netip.AddrPortFrom(fwdB.Addr(), uint16(sinkPort+i))), nil)
		if err != nil {
			return s, fmt.Errorf("far socket: %w", err)
		}
		en.onClose(func() { unix.Close(fd) })
	}
	gen, err := en.newGenerator(genConfig{ns: nsA, dst: netip.AddrPortFrom(fwdB.Addr(), uint16(sinkPort)),
		size: c.Size, flows: c.Flows, cpu: b.pins.helper})
	if err != nil {
		return s, err
	}
	if err := gen.start(); err != nil {
		return s, err
	}
	if err := sleep(ctx, b.opt.warmup); err != nil {
		return s, err
	}
	w0, w1, err := b.measure(ctx, window{devNS: nsA, dev: devA.ifname(), udpNS: nsB,
		helpers: []*helperThread{&gen.thread}, traffic: gen.sent.load, r: r})
	if err != nil {
		return s, err
	}
	gen.stop()
	if err := r.stop(); err != nil {
		return s, fmt.Errorf("engine: %w", err)
	}

	sp, ec, sent := spanOf(w0.use, w1.use), countersDelta(w0.eng, w1.eng), w1.traffic-w0.traffic
	nd := w1.udp.sub(w0.udp)
	s.Seconds = sp.elapsed.Seconds()
	s.otherLoads(sp, b.pins, 0)
	s.GenPPS, s.GenCPU = sp.rate(sent), sp.pct(sp.helperCPU)
	s.dropsOf(w0.dev, w1.dev, sp, sp.rate(ec.pktsIn))
	if _, ok := e.(ceilingEngine); ok {
		s.generatorAlone(sp, sent, c.Size, gen)
		return s, nil
	}
	s.PPS, s.Gbps = sp.rate(ec.pktsOut), sp.rate(ec.bytesOut)*8/1e9
	s.CPU = sp.pct(sp.engineCPU)
	s.RecvPPS = sp.rate(nd.RcvbufErrors + nd.InDatagrams)
	s.EngineErrors = ec.errors
	s.syscallFigure(ec, sp)
	s.queueShares(ec)
	s.efficiency()
	return s, nil
}

// runFwdTCP: one TCP stream from A to B through the engine, with iperf3
// or the built-in sender and receiver.
func (b *bench) runFwdTCP(ctx context.Context, _ caseSpec, e engine) (s sample, err error) {
	var en env
	defer en.close()
	nsA, nsB, devA, r, err := b.fwdPair(&en, e)
	if err != nil {
		return s, err
	}
	return b.runStream(ctx, &en, streamPath{nsA: nsA, nsB: nsB, devA: devA.ifname(), server: fwdB.Addr(), r: r})
}

// streamPath is where a TCP stream runs: from nsA to server in nsB,
// through devA (in nsA, whose drops are counted) and the engine r.
type streamPath struct {
	nsA, nsB *netns.Namespace
	devA     string
	server   netip.Addr
	r        runner
}

// runStream measures one TCP stream over p, with iperf3 or the built-in
// sender and receiver.
func (b *bench) runStream(ctx context.Context, en *env, p streamPath) (s sample, err error) {
	nsA, nsB, server, r := p.nsA, p.nsB, p.server, p.r
	var helpers []*helperThread
	var stream *tcpStream
	if b.iperf3 != "" {
		s.TCPTool = "iperf3"
		if err := en.startIperf3Server(ctx, b.iperf3, nsB, server, b.pins.helper); err != nil {
			return s, err
		}
	} else {
		s.TCPTool = "built-in"
		stream, err = en.newTCPStream(nsA, nsB, netip.AddrPortFrom(server, tcpPort), b.pins.helper)
		if err != nil {
			return s, err
		}
		helpers = stream.helpers()
		if err := sleep(ctx, b.opt.warmup); err != nil {
			return s, err
		}
	}
	d0, err := readDevStats(nsA, p.devA)
	if err != nil {
		return s, err
	}
	u0, c0 := takeUsage(helpers), r.counters()
	var rcv0 uint64
	var res iperf3Result
	if stream != nil {
		rcv0 = stream.recvd.load()
		eng0 := engineClock(helpers)
		if err := b.stretch(ctx, func() bool {
			return stream.recvd.load() != rcv0 && engineMoved(c0, r.counters(), eng0, helpers)
		}); err != nil {
			return s, err
		}
	} else {
		res, err = runIperf3Client(ctx, b.iperf3, nsA, server, b.iperf3Secs(), b.pins.helper)
		if err != nil {
			return s, err
		}
	}
	u1, c1 := takeUsage(helpers), r.counters()
	var rcv1 uint64
	if stream != nil {
		rcv1 = stream.recvd.load()
		stream.stop()
	}
	d1, err := readDevStats(nsA, p.devA)
	if err != nil {
		return s, err
	}
	if err := r.stop(); err != nil {
		return s, fmt.Errorf("engine: %w", err)
	}

	sp, ec := spanOf(u0, u1), countersDelta(c0, c1)
	s.Seconds = sp.elapsed.Seconds()
	s.PPS = sp.rate(ec.pktsOut)
	if stream != nil {
		s.Gbps = sp.rate(rcv1-rcv0) * 8 / 1e9
		s.ToolCPU = sp.pct(sp.helperCPU)
		if err := stream.errs.err(); err != nil {
			return s, err
		}
	} else {
		s.Gbps = res.End.SumReceived.BitsPerSecond / 1e9
		s.Retransmits = res.End.SumSent.Retransmits
		// Both ends run on the helper CPU: together, how much of it they
		// took.
		s.ToolCPU = res.End.CPU.HostTotal + res.End.CPU.RemoteTotal
	}
	s.otherLoads(sp, b.pins, time.Duration(s.ToolCPU/100*float64(sp.elapsed)))
	s.dropsOf(d0, d1, sp, sp.rate(ec.pktsIn))
	s.CPU = sp.pct(sp.engineCPU)
	s.EngineErrors = ec.errors
	s.syscallFigure(ec, sp)
	s.queueShares(ec)
	s.efficiency()
	return s, nil
}

// iperf3Secs is the duration in whole seconds, at least one.
func (b *bench) iperf3Secs() int {
	return max(1, int(b.opt.duration.Round(time.Second)/time.Second))
}

// runRR: a client in the namespace sends one request at a time to an
// address routed out of the device; the engine turns each packet around
// and writes it back; the client times each round trip.
func (b *bench) runRR(ctx context.Context, c caseSpec, e engine) (s sample, err error) {
	var en env
	defer en.close()
	ns, dev, wk, err := en.oneDevice(e, oneLocal4)
	if err != nil {
		return s, err
	}
	r, err := e.start(job{kind: jobReflect, a: dev, wake: wk.wake}, b.pins.engine)
	if err != nil {
		return s, err
	}
	en.onClose(func() { r.stop() })
	// Started after the engine, so that no request times out waiting for it.
	expect := int(b.opt.duration.Seconds()*100_000) + 1024
	cl, err := en.newRRClient(ns, netip.AddrPortFrom(oneLocal4.Addr(), clientPort), netip.AddrPortFrom(onePeer4, echoPort), c.Size, b.pins.helper, expect)
	if err != nil {
		return s, err
	}
	cl.waitStarted()
	if err := sleep(ctx, b.opt.warmup); err != nil {
		return s, err
	}
	helpers := []*helperThread{&cl.thread}
	u0, c0, l0 := takeUsage(helpers), r.counters(), cl.lost.load()
	cl.recording.Store(true)
	// Percentiles up to p99.9 need samples: on a machine so loaded that a
	// round trip takes milliseconds, the window runs on (see stretch)
	// until minRRSamples answers came back.
	if err := b.stretch(ctx, func() bool { return cl.answered.load() >= minRRSamples }); err != nil {
		return s, err
	}
	cl.recording.Store(false)
	u1, c1, l1 := takeUsage(helpers), r.counters(), cl.lost.load()
	cl.stop()
	if err := r.stop(); err != nil {
		return s, fmt.Errorf("engine: %w", err)
	}

	sp, ec := spanOf(u0, u1), countersDelta(c0, c1)
	s.Seconds = sp.elapsed.Seconds()
	s.otherLoads(sp, b.pins, 0)
	rtts := cl.rtts
	if len(rtts) == 0 {
		return s, fmt.Errorf("no request came back in %v (%d timed out after 200ms)", b.opt.duration, l1-l0)
	}
	slices.Sort(rtts)
	at := func(q float64) float64 {
		return float64(rtts[min(len(rtts)-1, int(q*float64(len(rtts))))].Nanoseconds()) / 1e3
	}
	s.RPS = sp.rate(uint64(len(rtts)))
	s.P50us, s.P99us, s.P999us = at(0.50), at(0.99), at(0.999)
	s.Lost = l1 - l0
	s.PPS, s.Gbps = sp.rate(ec.pktsOut), sp.rate(ec.bytesOut)*8/1e9
	s.CPU = sp.pct(sp.engineCPU)
	s.EngineErrors = ec.errors
	s.syscallFigure(ec, sp)
	s.queueShares(ec)
	s.efficiency()
	return s, nil
}
