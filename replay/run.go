package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/tun"
)

// Pace says when Run writes each packet.
type Pace int

const (
	// PaceCaptured keeps the gaps between packets that the capture
	// recorded, divided by Options.Speed and capped by Options.MaxGap.
	PaceCaptured Pace = iota
	// PaceFast writes every packet as soon as the device takes it.
	PaceFast
)

// String gives "captured" or "fast".
func (p Pace) String() string {
	if p == PaceFast {
		return "fast"
	}
	return "captured"
}

// ChecksumPolicy says what Run does with the checksums of the packets it
// writes.
type ChecksumPolicy int

const (
	// ChecksumFix recomputes every checksum that can be computed (the
	// IPv4 header, TCP, UDP, ICMP and ICMPv6), except in the packets
	// Options.KeepBadChecksums names, which are treated as under
	// ChecksumPreserve.
	ChecksumFix ChecksumPolicy = iota
	// ChecksumPreserve leaves checksums as captured; when addresses are
	// rewritten, it updates them so that right ones stay right and wrong
	// ones stay wrong.
	ChecksumPreserve
)

// String gives "fix" or "preserve", as expectation files spell them.
func (c ChecksumPolicy) String() string {
	if c == ChecksumPreserve {
		return "preserve"
	}
	return "fix"
}

// Verdict is what became of one record of the capture.
type Verdict string

// Verdicts, from the most to the least telling. A written packet gets the
// first that applies: answered, dropped, delivered, queued, accepted (or
// written, when the kernel's counters could not be read).
const (
	VerdictSkipped   Verdict = "skipped"   // not written (see Outcome.Skip)
	VerdictRefused   Verdict = "refused"   // write(2) on the device failed (see Outcome.Errno)
	VerdictAnswered  Verdict = "answered"  // the kernel sent something back (see Outcome.Answers)
	VerdictDropped   Verdict = "dropped"   // a drop or error counter rose (see Outcome.Counters)
	VerdictDelivered Verdict = "delivered" // a UDP datagram reached a socket
	VerdictQueued    Verdict = "queued"    // a fragment waits for the rest of its datagram
	VerdictAccepted  Verdict = "accepted"  // taken in, with no answer and no counted drop
	VerdictWritten   Verdict = "written"   // written; its fate is unknown (counters unavailable)
)

// skipCanceled marks records Run did not write because it was stopped.
const skipCanceled SkipReason = "canceled"

// Outcome is what became of one record of the capture. Run fills it on the
// loop's thread; the caller gets a copy in Summary.Packets.
type Outcome struct {
	Number    int        // 1-based record number in the capture
	Captured  time.Time  // the record's timestamp
	Sent      time.Time  // when it was written (zero if it was not)
	Desc      string     // a one-line description of the packet as written, or of the skipped record
	Skip      SkipReason // why it was not written
	Rewritten bool       // Options.Rewrite changed its addresses
	Fixed     Checksums  // checksums that were wrong in the capture and were fixed
	// Err is the write error of a refused packet, and Errno its system
	// error number when the kernel gave one (EINVAL for a TUN packet
	// whose version nibble is neither 4 nor 6).
	Err      error
	Errno    syscall.Errno
	Answers  []Answer  // what the kernel sent back in answer
	Counters []Counter // the kernel counters that changed while it was written
	Verdict  Verdict
	Data     []byte // the packet as written, when Options.KeepData is set

	proto uint8 // upper-layer protocol of the packet as written
}

// Options configures Run. It is read once, when Run starts.
type Options struct {
	// Device is the TUN device (layer 3) to write into, already up and
	// addressed. Run uses its first queue and reads from it too, so
	// nothing else may read that queue while Run runs. Run does not close
	// it.
	Device *tun.Device
	// Loop is the event loop that does the I/O. Nil makes Run start its
	// own and close it when done.
	Loop *loop.Loop
	// Input is the capture (pcap or pcapng, possibly gzipped). If nil, Run
	// opens File.
	Input io.Reader
	File  string
	// Name labels the capture in the summary; it defaults to File.
	Name string

	Pace Pace
	// Speed divides the captured gaps (2 replays twice as fast); <= 0
	// means 1. MaxGap, if positive, caps each gap (after Speed).
	Speed  float64
	MaxGap time.Duration

	// Rewrite moves the capture's addresses into the device's prefix; see
	// RewriteConfig. Empty Prefixes writes addresses as
	// captured.
	Rewrite RewriteConfig

	Checksums ChecksumPolicy
	// KeepBadChecksums lists record numbers whose wrong checksums stay
	// wrong under ChecksumFix.
	KeepBadChecksums []int

	// Linger is how long Run keeps reading answers after the last write;
	// 0 means 250ms.
	Linger time.Duration
	// Capture, if set, receives a pcap (link type RAW) of every packet the
	// device read during the run: the kernel's answers and its own
	// traffic. Snaplen bounds each record (0: DefaultSnaplen).
	Capture io.Writer
	Snaplen int
	// KeepData keeps the bytes of written packets and answers in the
	// outcomes.
	KeepData bool
	// NoCounters skips reading the kernel's counters before and after each
	// write: faster, but then drops and deliveries cannot be told apart.
	NoCounters bool
}

// Summary is the result of Run: a plain value that belongs to the caller
// once Run returns (Print and PrintPackets only read it).
type Summary struct {
	Name     string
	Device   string
	Format   Format
	LinkType LinkType // of the file, or of its first interface
	Started  time.Time
	Duration time.Duration

	Records   int                // records read from the capture
	Skipped   int                // records not written
	SkippedBy map[SkipReason]int // by reason
	Written   int                // packets the device took
	Refused   int                // packets the kernel refused on write
	RefusedBy map[string]int     // by errno name ("EINVAL"), or "other"

	// Fates of the written packets, by Verdict.
	Answered, Dropped, Delivered, Queued, Accepted, Unknown int

	// DeviceRead counts the packets the device read during the run;
	// Unsolicited those of them that answer no written packet (router
	// solicitations, MLD reports, ...).
	DeviceRead, Unsolicited int

	Mappings []AddrMapping // addresses Options.Rewrite moved
	Counters []Counter     // kernel counters that changed over the whole run
	// CountersNote says why counters are missing, when they are.
	CountersNote string
	Capture      RecorderStats
	// ReadErr is the error that stopped reading from the device, if any.
	ReadErr error

	Packets []Outcome // one per record, in order
}

// Run replays a capture into a TUN device: it reads each record, takes
// off the link-layer header, optionally rewrites the addresses and fixes
// checksums, and writes the packet into the device on the event loop's
// thread, paced as captured or as fast as the device takes it. Meanwhile
// it reads everything the device carries back out, on the same loop, and
// matches the kernel's answers to the packets that caused them. Around
// each write it reads the kernel's counters in the device's network
// namespace, to tell drops from deliveries.
//
// Run returns when every record has been written and Linger has passed, or
// when ctx is done (then with ctx's error and the summary so far). A
// malformed record stops the replay with an error wrapping ErrMalformed;
// packets the kernel refuses are outcomes, not errors. Run blocks its
// caller and is safe to call from any goroutine, but not twice at once on
// one device.
func Run(ctx context.Context, opts Options) (Summary, error) {
	s := Summary{Name: opts.Name, SkippedBy: map[SkipReason]int{}, RefusedBy: map[string]int{}, Started: time.Now()}
	ss := &session{opts: opts, s: &s}
	defer ss.release()
	if err := ss.setUp(); err != nil {
		return s, err
	}
	runErr := ss.produce(ctx)
	runErr = ss.drain(ctx, runErr)
	ss.summarize()
	return s, runErr
}

// session is one Run: set-up opens what it needs, produce hands the
// records to the loop, drain waits for the loop to write them and detaches,
// and summarize fills the Summary. It lives on Run's goroutine; what the
// loop touches is in runner.
type session struct {
	opts     Options
	s        *Summary
	rd       *captureReader
	rw       *rewriter // nil: addresses written as captured
	keepBad  map[int]bool
	speed    float64
	linger   time.Duration
	l        *loop.Loop
	r        *runner
	p        *loop.PacketFD
	outcomes []*Outcome
	closers  []func() // run by release, last first

	// Pacing state of produce (Options.Pace == PaceCaptured).
	start, prevTS time.Time
	offset        time.Duration
}

// release closes what set-up opened (the input file, a loop of Run's own,
// the counter files), in reverse order. It is Run's deferred cleanup.
func (ss *session) release() {
	for i := len(ss.closers) - 1; i >= 0; i-- {
		ss.closers[i]()
	}
}

// setUp checks the options, opens the capture, the loop, the kernel
// counters and the capture file, and attaches the device to the loop.
// Whatever it opened before failing is closed by release.
func (ss *session) setUp() error {
	opts, s := ss.opts, ss.s
	if opts.Device == nil || opts.Device.Fd() < 0 {
		return errors.New("replay: Options.Device must be an open TUN device")
	}
	s.Device = opts.Device.Name()
	if err := ss.openInput(); err != nil {
		return err
	}
	ss.keepBad = map[int]bool{}
	for _, n := range opts.KeepBadChecksums {
		ss.keepBad[n] = true
	}
	ss.speed = opts.Speed
	if ss.speed <= 0 {
		ss.speed = 1
	}
	ss.linger = opts.Linger
	if ss.linger <= 0 {
		ss.linger = 250 * time.Millisecond
	}
	var err error
	ss.l = opts.Loop
	if ss.l == nil {
		if ss.l, err = loop.New(); err != nil {
			return fmt.Errorf("replay: starting a loop: %w", err)
		}
		ss.closers = append(ss.closers, func() { ss.l.Close() })
	}
	ss.r = &runner{l: ss.l, m: newMatcher(), keep: opts.KeepData, sem: make(chan struct{}, 1024), rbuf: make([]byte, 65536)}
	ss.openCounters()
	if opts.Capture != nil {
		if ss.r.rec, err = newRecorder(opts.Capture, opts.Snaplen); err != nil {
			return err
		}
	}
	if err := ss.attach(); err != nil {
		ss.closeRecorder()
		return err
	}
	return nil
}

// openInput opens the capture (Options.Input, or else Options.File) and
// reads its file header.
func (ss *session) openInput() error {
	opts, s := ss.opts, ss.s
	in := opts.Input
	if in == nil {
		if opts.File == "" {
			return errors.New("replay: Options.Input or Options.File is required")
		}
		f, err := os.Open(opts.File)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		ss.closers = append(ss.closers, func() { f.Close() })
		in = f
	}
	if s.Name == "" {
		s.Name = opts.File
	}
	rd, err := newReader(in)
	if err != nil {
		return err
	}
	ss.rd = rd
	s.Format, s.LinkType = rd.Format(), rd.LinkType()
	if len(opts.Rewrite.Prefixes) > 0 {
		if ss.rw, err = newRewriter(opts.Rewrite); err != nil {
			return err
		}
	}
	return nil
}

// openCounters opens the kernel's counters of the device's namespace,
// unless Options.NoCounters; a failure is a note in the Summary, not an
// error.
func (ss *session) openCounters() {
	if ss.opts.NoCounters {
		ss.s.CountersNote = "kernel counters not read (Options.NoCounters)"
		return
	}
	kc, err := openCounters(ss.opts.Device.Fd(), ss.s.Device)
	if err != nil {
		ss.s.CountersNote = "kernel counters unavailable: " + err.Error()
		return
	}
	ss.r.kc = kc
	ss.closers = append(ss.closers, kc.close)
}

// attach takes the first reading of the counters and attaches the
// device's first queue to the loop, framed with the packet-information
// header when the device has it.
func (ss *session) attach() error {
	r := ss.r
	cfg := loop.PacketConfig{OnReady: r.onReady, Close: func() error { return nil }}
	if on, _ := ss.opts.Device.PacketInfo(); on {
		cfg.Framer = piFramer{}
	}
	if derr := ss.l.Do(func() { r.base = r.readCounters() }); derr != nil {
		return fmt.Errorf("replay: %w", derr)
	}
	p, err := ss.l.AttachPacketFD(ss.opts.Device.Fd(), cfg)
	if err != nil {
		return fmt.Errorf("replay: attaching %s to the loop: %w", ss.s.Device, err)
	}
	if derr := ss.l.Do(func() { r.p = p }); derr != nil {
		p.Close()
		return fmt.Errorf("replay: %w", derr)
	}
	ss.p = p
	return nil
}

// closeRecorder closes the capture file, if any, and keeps its counts.
func (ss *session) closeRecorder() error {
	if ss.r.rec == nil {
		return nil
	}
	err := ss.r.rec.Close()
	ss.s.Capture = ss.r.rec.Stats()
	return err
}

// produce reads every record, prepares it and hands it to the loop,
// waiting while 1024 packets are already on their way. It stops at the end
// of the capture, at the first error, or when ctx is done.
func (ss *session) produce(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pkt, err := ss.rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		it, err := ss.prepare(pkt)
		if err != nil {
			return err
		}
		if it == nil {
			continue // skipped
		}
		select {
		case ss.r.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := post(ss.l, func() { ss.r.schedule(it) }); err != nil {
			<-ss.r.sem
			return fmt.Errorf("replay: %w", err)
		}
	}
}

// prepare records the outcome of one record and, unless it is skipped
// (then it returns nil), rewrites it, fixes its checksums and gives it its
// time to be written.
func (ss *session) prepare(pkt record) (*item, error) {
	o := &Outcome{Number: pkt.Number, Captured: pkt.Timestamp}
	ss.outcomes = append(ss.outcomes, o)
	if ss.s.LinkType == 0 {
		ss.s.LinkType = pkt.LinkType
	}
	if pkt.Skip != skipNone {
		o.Skip, o.Verdict, o.Desc = pkt.Skip, VerdictSkipped, fmt.Sprintf("%s record, %d bytes", pkt.LinkType, len(pkt.Frame))
		return nil, nil
	}
	data := pkt.IP // pcapgo allocated the record for us alone
	if ss.rw != nil {
		var err error
		if o.Rewritten, err = ss.rw.Rewrite(data); err != nil {
			return nil, err
		}
	}
	if ss.opts.Checksums == ChecksumFix && !ss.keepBad[pkt.Number] {
		o.Fixed = fixChecksums(data)
	}
	o.Desc = describe(data)
	if ip, ok := parseIP(data); ok {
		o.proto = ip.proto
	}
	if ss.opts.KeepData {
		o.Data = append([]byte(nil), data...)
	}
	it := &item{o: o, data: data}
	if ss.opts.Pace == PaceCaptured {
		it.due = ss.due(pkt.Timestamp)
	}
	return it, nil
}

// due gives the wall-clock time at which the record captured at ts is
// written: the captured gap since the previous record, divided by Speed
// and capped by MaxGap, after the previous one's time.
func (ss *session) due(ts time.Time) time.Time {
	if ss.start.IsZero() {
		ss.start, ss.prevTS = time.Now(), ts
	}
	gap := max(ts.Sub(ss.prevTS), 0)
	ss.prevTS = ts
	gap = time.Duration(float64(gap) / ss.speed)
	if ss.opts.MaxGap > 0 && gap > ss.opts.MaxGap {
		gap = ss.opts.MaxGap
	}
	ss.offset += gap
	return ss.start.Add(ss.offset)
}

// drain waits, unless produce failed, until the loop has written every
// packet and Linger has passed; then it stops the runner, takes the last
// reading of the counters, detaches the device and closes the capture
// file. It returns the first error of the run.
func (ss *session) drain(ctx context.Context, runErr error) error {
	r := ss.r
	if runErr == nil {
		// Wait until every packet is written: the loop gives back a
		// token for each.
		for i := 0; i < cap(r.sem) && runErr == nil; i++ {
			select {
			case r.sem <- struct{}{}:
			case <-ctx.Done():
				runErr = ctx.Err()
			}
		}
		if runErr == nil {
			select {
			case <-time.After(ss.linger):
			case <-ctx.Done():
				runErr = ctx.Err()
			}
		}
	}
	derr := ss.l.Do(func() {
		r.stop()
		r.final = r.readCounters()
	})
	cerr := ss.p.Close()
	if derr != nil && runErr == nil {
		runErr = fmt.Errorf("replay: %w", derr)
	}
	if cerr != nil && runErr == nil {
		runErr = fmt.Errorf("replay: detaching from the loop: %w", cerr)
	}
	if err := ss.closeRecorder(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// summarize fills the Summary once the loop is done with the outcomes
// (drain's Do and Close returned).
func (ss *session) summarize() {
	s, r := ss.s, ss.r
	if r.kc != nil && r.base != nil && r.final != nil {
		s.Counters = diff(r.base, r.final)
	} else if r.kc != nil && s.CountersNote == "" {
		s.CountersNote = "kernel counters unavailable: " + fmt.Sprint(r.counterErr)
	}
	s.DeviceRead, s.Unsolicited, s.ReadErr = r.read, r.unsolicited, r.readErr
	if ss.rw != nil {
		s.Mappings = ss.rw.Mappings()
	}
	s.Packets = make([]Outcome, 0, len(ss.outcomes))
	for _, o := range ss.outcomes {
		s.tally(o, r.kc != nil && r.counterErr == nil)
		s.Packets = append(s.Packets, *o)
	}
	s.Records = len(ss.outcomes)
	s.Duration = time.Since(s.Started)
}

// tally settles a packet's verdict and counts it.
func (s *Summary) tally(o *Outcome, counters bool) {
	if o.Verdict == "" {
		switch {
		case o.Sent.IsZero():
			o.Verdict, o.Skip = VerdictSkipped, skipCanceled
		case len(o.Answers) > 0:
			o.Verdict = VerdictAnswered
		case !counters:
			o.Verdict = VerdictWritten
		default:
			o.Verdict = classify(o.Counters, o.proto)
		}
	}
	switch o.Verdict {
	case VerdictSkipped:
		s.Skipped++
		s.SkippedBy[o.Skip]++
		return
	case VerdictRefused:
		s.Refused++
		name := "other"
		if o.Errno != 0 {
			name = errnoName(o.Errno)
		}
		s.RefusedBy[name]++
		return
	}
	s.Written++
	switch o.Verdict {
	case VerdictAnswered:
		s.Answered++
	case VerdictDropped:
		s.Dropped++
	case VerdictDelivered:
		s.Delivered++
	case VerdictQueued:
		s.Queued++
	case VerdictAccepted:
		s.Accepted++
	default:
		s.Unknown++
	}
}

// post queues fn on the loop, waiting while the loop's queue is full.
func post(l *loop.Loop, fn func()) error {
	for {
		err := l.Post(fn)
		if !errors.Is(err, loop.ErrQueueFull) {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// item is a packet on its way to the device.
type item struct {
	o    *Outcome
	data []byte
	due  time.Time // zero: now
}

// runner is Run's state on the loop. Everything but sem is loop-only.
type runner struct {
	l           *loop.Loop
	p           *loop.PacketFD
	m           *matcher
	kc          *kernelCounters
	counterErr  error
	base, final counterSet // first and last reading of the run
	rec         *recorder
	keep        bool
	sem         chan struct{} // one token per packet between producer and device
	timeline    []*item       // scheduled for later, in due order
	timer       *loop.Timer
	queue       []*item // due, waiting for the device to take them
	stopped     bool
	rbuf        []byte
	read        int
	unsolicited int
	readErr     error
}

func (r *runner) readCounters() counterSet {
	if r.kc == nil || r.counterErr != nil {
		return nil
	}
	cs, err := r.kc.read()
	if err != nil {
		r.counterErr = err
		return nil
	}
	return cs
}

// schedule takes a packet from the producer. Loop-only.
func (r *runner) schedule(it *item) {
	if r.stopped {
		<-r.sem
		return
	}
	if len(r.timeline) == 0 && !it.due.After(time.Now()) {
		r.queue = append(r.queue, it)
		r.pump()
		return
	}
	r.timeline = append(r.timeline, it)
	if len(r.timeline) == 1 {
		r.arm()
	}
}

// arm sets the timer for the head of the timeline. Loop-only.
func (r *runner) arm() {
	if len(r.timeline) == 0 {
		return
	}
	d := time.Until(r.timeline[0].due)
	if r.timer == nil {
		t, err := r.l.AfterFunc(d, r.tick)
		if err != nil {
			r.stop() // the loop is closing
			return
		}
		r.timer = t
		return
	}
	if _, err := r.timer.Reset(d); err != nil {
		r.stop()
	}
}

// tick moves the packets that are due to the send queue. Loop-only.
func (r *runner) tick() {
	if r.stopped {
		return
	}
	now := time.Now()
	n := 0
	for n < len(r.timeline) && !r.timeline[n].due.After(now) {
		r.queue = append(r.queue, r.timeline[n])
		r.timeline[n] = nil
		n++
	}
	r.timeline = r.timeline[n:]
	r.pump()
	r.arm()
}

// pump writes queued packets until the queue is empty or the device is
// full. Loop-only.
func (r *runner) pump() {
	for len(r.queue) > 0 && !r.stopped {
		it := r.queue[0]
		before := r.readCounters()
		err := r.p.Send(it.data)
		if errors.Is(err, loop.ErrWouldBlock) {
			return // Writable is armed: onReady pumps again
		}
		o := it.o
		o.Sent = time.Now()
		if err != nil {
			o.Err, o.Verdict = err, VerdictRefused
			var errno syscall.Errno
			if errors.As(err, &errno) {
				o.Errno = errno
			}
		} else {
			r.m.sent(it.data, o)
		}
		if before != nil {
			if after := r.readCounters(); after != nil {
				o.Counters = diff(before, after)
			}
		}
		r.queue[0] = nil
		r.queue = r.queue[1:]
		<-r.sem
		// The kernel answers within the write(2) that brought the packet
		// in: read the answers now, so they are timed and matched before
		// the next packet.
		r.drain(r.p)
	}
}

// stop drops whatever is not written yet and gives its tokens back.
// Loop-only.
func (r *runner) stop() {
	if r.stopped {
		return
	}
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
	for range len(r.timeline) + len(r.queue) {
		<-r.sem
	}
	r.timeline, r.queue = nil, nil
}

// onReady is the PacketFD's readiness callback. Loop-only.
func (r *runner) onReady(p *loop.PacketFD, ev loop.Events) {
	if r.p == nil {
		r.p = p
	}
	if ev&loop.Writable != 0 {
		r.pump()
	}
	if ev&(loop.Readable|loop.Hangup|loop.Error) != 0 {
		r.drain(p)
	}
}

// drain reads what the device carries and matches it. Loop-only.
func (r *runner) drain(p *loop.PacketFD) {
	for {
		n, err := p.Recv(r.rbuf)
		if err != nil {
			if !errors.Is(err, loop.ErrWouldBlock) && r.readErr == nil {
				r.readErr = err
			}
			return
		}
		now := time.Now()
		pkt := r.rbuf[:n]
		r.read++
		if r.rec != nil {
			r.rec.Record(now, pkt)
		}
		o, kind := r.m.answer(pkt)
		if o == nil {
			r.unsolicited++
			continue
		}
		a := Answer{Time: now, Kind: kind, Desc: describe(pkt)}
		if r.keep {
			a.Data = append([]byte(nil), pkt...)
		}
		o.Answers = append(o.Answers, a)
	}
}

// piFramer is tun.PIFramer for a TUN device opened with
// tun.Config.PacketInfo, but for one difference: a packet whose version
// nibble is neither 4 nor 6, which tun.PIFramer refuses, gets protocol 0
// and goes to the kernel all the same, because what the kernel does with
// it is what a replay wants to see.
type piFramer struct{ tun.PIFramer }

func (f piFramer) PutHeader(hdr, packet []byte) error {
	if err := f.PIFramer.PutHeader(hdr, packet); err != nil {
		tun.PutPIHeader(hdr, tun.PIHeader{})
	}
	return nil
}

// errnoName gives the symbolic name of an errno ("EINVAL").
func errnoName(e syscall.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}
