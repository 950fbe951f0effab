package replay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// VerdictAny, in an expectation, accepts whatever became of the record.
const VerdictAny Verdict = "any"

// Expect is a machine-readable statement of what the kernel must do with
// each record of a capture, and of the setup that makes it so. Its text
// form, one statement per line, with "#" starting a comment:
//
//	capture icmp6-echo.pcapng      the capture, relative to this file
//	local 2001:db8:2::1            an address standing for the device's host (Options.Rewrite.Local)
//	listen udp 5301                a socket the test must open (udp or tcp, port)
//	checksums fix                  fix or preserve (Options.Checksums)
//	keep-bad 4 5                   records whose bad checksums stay bad
//	1 skipped non-ip               record 1 is skipped, for this reason
//	2 answered echo-reply          answered, with at least these kinds of answer
//	3 delivered udp 5301           a UDP datagram reached the socket on that port
//	4 dropped Udp6InCsumErrors     dropped, and these counters rose
//	5 refused EINVAL               write(2) failed with this errno
//	6 queued                       a fragment waiting for the rest
//	7 accepted                     taken in without answer or counted drop
//	8 any                          no expectation
//
// Every record of the capture must have a line. Check compares a Summary
// with the expectation; the details that only a test harness can observe
// (which socket got the datagram) are kept in PacketExpect.Args for it.
//
// An Expect is a plain value: safe to read from several goroutines.
type Expect struct {
	Capture   string
	Local     []netip.Addr
	Listen    []Listen
	Checksums ChecksumPolicy
	KeepBad   []int
	Packets   []PacketExpect // in record order
}

// Listen is a socket a test must open before the replay.
type Listen struct {
	Proto string // "udp" or "tcp"
	Port  int
}

// PacketExpect is the expectation for one record.
type PacketExpect struct {
	Number  int
	Verdict Verdict
	Args    []string // answer kinds, counter names, errno, skip reason, or "udp PORT"
	Line    int      // where it was read, for messages
}

// ErrExpectSyntax is wrapped by ParseExpect's errors.
var ErrExpectSyntax = errors.New("expectation syntax")

// ParseExpect reads an expectation file.
func ParseExpect(r io.Reader) (*Expect, error) {
	e := &Expect{}
	sc := bufio.NewScanner(r)
	seen := map[int]int{}
	ln := 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("replay: expectation line %d: %w: %s", ln, ErrExpectSyntax, fmt.Sprintf(format, args...))
	}
	for sc.Scan() {
		ln++
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "capture":
			if len(f) != 2 {
				return nil, bad("capture takes one file name")
			}
			e.Capture = f[1]
		case "local":
			if len(f) < 2 {
				return nil, bad("local takes addresses")
			}
			for _, s := range f[1:] {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return nil, bad("local: %v", err)
				}
				e.Local = append(e.Local, a)
			}
		case "listen":
			if len(f) != 3 || (f[1] != "udp" && f[1] != "tcp") {
				return nil, bad("listen takes udp or tcp and a port")
			}
			port, err := strconv.Atoi(f[2])
			if err != nil || port <= 0 || port > 65535 {
				return nil, bad("listen: bad port %q", f[2])
			}
			e.Listen = append(e.Listen, Listen{f[1], port})
		case "checksums":
			if len(f) != 2 {
				return nil, bad("checksums takes fix or preserve")
			}
			switch f[1] {
			case "fix":
				e.Checksums = ChecksumFix
			case "preserve":
				e.Checksums = ChecksumPreserve
			default:
				return nil, bad("checksums takes fix or preserve, not %q", f[1])
			}
		case "keep-bad":
			for _, s := range f[1:] {
				n, err := strconv.Atoi(s)
				if err != nil || n <= 0 {
					return nil, bad("keep-bad: bad record number %q", s)
				}
				e.KeepBad = append(e.KeepBad, n)
			}
		default:
			n, err := strconv.Atoi(f[0])
			if err != nil || n <= 0 {
				return nil, bad("unknown statement %q", f[0])
			}
			if prev, dup := seen[n]; dup {
				return nil, bad("record %d already has an expectation (line %d)", n, prev)
			}
			seen[n] = ln
			if len(f) < 2 {
				return nil, bad("record %d: no verdict", n)
			}
			pe := PacketExpect{Number: n, Verdict: Verdict(f[1]), Args: f[2:], Line: ln}
			if err := pe.validate(); err != nil {
				return nil, bad("record %d: %v", n, err)
			}
			e.Packets = append(e.Packets, pe)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("replay: reading expectation: %w", err)
	}
	slices.SortFunc(e.Packets, func(a, b PacketExpect) int { return a.Number - b.Number })
	for i, p := range e.Packets {
		if p.Number != i+1 {
			return nil, fmt.Errorf("replay: expectation: %w: no line for record %d", ErrExpectSyntax, i+1)
		}
	}
	return e, nil
}

var answerKinds = []AnswerKind{AnswerEchoReply, AnswerSynAck, AnswerRST, AnswerTCP, AnswerUDP,
	AnswerPortUnreachable, AnswerUnreachable, AnswerTooBig, AnswerTimeExceeded, AnswerParamProblem}

var skipReasons = []SkipReason{skipNonIP, skipShort, skipEmpty, skipWrongFamily, skipLinkType, skipCanceled}

func (p *PacketExpect) validate() error {
	switch p.Verdict {
	case VerdictAnswered:
		if len(p.Args) == 0 {
			return errors.New("answered needs the kind of answer")
		}
		for _, a := range p.Args {
			if !slices.Contains(answerKinds, AnswerKind(a)) {
				return fmt.Errorf("unknown answer kind %q", a)
			}
		}
	case VerdictDelivered:
		if len(p.Args) != 0 && len(p.Args) != 2 {
			return errors.New("delivered takes nothing or a protocol and a port")
		}
		if len(p.Args) == 2 {
			if p.Args[0] != "udp" {
				return fmt.Errorf("delivered: only udp deliveries can be observed, not %q", p.Args[0])
			}
			if n, err := strconv.Atoi(p.Args[1]); err != nil || n <= 0 || n > 65535 {
				return fmt.Errorf("delivered: bad port %q", p.Args[1])
			}
		}
	case VerdictRefused:
		if len(p.Args) > 1 {
			return errors.New("refused takes one errno name")
		}
	case VerdictSkipped:
		if len(p.Args) > 1 {
			return errors.New("skipped takes one reason")
		}
		if len(p.Args) == 1 && !slices.Contains(skipReasons, SkipReason(p.Args[0])) {
			return fmt.Errorf("unknown skip reason %q", p.Args[0])
		}
	case VerdictDropped:
	case VerdictQueued, VerdictAccepted, VerdictAny, VerdictWritten:
		if len(p.Args) != 0 {
			return fmt.Errorf("%s takes no arguments", p.Verdict)
		}
	default:
		return fmt.Errorf("unknown verdict %q", p.Verdict)
	}
	return nil
}

// Apply sets the options the expectation asks for: the local addresses,
// the checksum policy and the records whose bad checksums stay bad.
func (e *Expect) Apply(o *Options) {
	o.Rewrite.Local = append(o.Rewrite.Local, e.Local...)
	o.Checksums = e.Checksums
	o.KeepBadChecksums = append(o.KeepBadChecksums, e.KeepBad...)
}

// Check compares what Run observed with the expectation and returns every
// difference, joined, or nil.
func (e *Expect) Check(s *Summary) error {
	var errs []error
	if len(s.Packets) != len(e.Packets) {
		errs = append(errs, fmt.Errorf("the capture has %d records, the expectation %d", len(s.Packets), len(e.Packets)))
	}
	for i := range min(len(s.Packets), len(e.Packets)) {
		if err := e.Packets[i].check(&s.Packets[i]); err != nil {
			errs = append(errs, fmt.Errorf("record %d (%s): %w", s.Packets[i].Number, s.Packets[i].Desc, err))
		}
	}
	return errors.Join(errs...)
}

func (p *PacketExpect) check(o *Outcome) error {
	if p.Verdict == VerdictAny {
		return nil
	}
	if o.Verdict != p.Verdict {
		return fmt.Errorf("want %s, got %s", p.String(), describeOutcome(o))
	}
	switch p.Verdict {
	case VerdictAnswered:
		for _, k := range p.Args {
			if !slices.ContainsFunc(o.Answers, func(a Answer) bool { return string(a.Kind) == k }) {
				return fmt.Errorf("want an answer of kind %s, got %s", k, describeOutcome(o))
			}
		}
	case VerdictDropped:
		for _, c := range p.Args {
			if Delta(o.Counters, c) <= 0 {
				return fmt.Errorf("want counter %s to rise, got %s", c, describeOutcome(o))
			}
		}
	case VerdictRefused:
		if len(p.Args) == 1 && (o.Errno == 0 || errnoName(o.Errno) != p.Args[0]) {
			return fmt.Errorf("want refusal with %s, got %v", p.Args[0], o.Err)
		}
	case VerdictSkipped:
		if len(p.Args) == 1 && string(o.Skip) != p.Args[0] {
			return fmt.Errorf("want skip reason %s, got %s", p.Args[0], o.Skip)
		}
	}
	return nil
}

// String gives the expectation as it is written after the record number.
func (p *PacketExpect) String() string {
	return strings.TrimSpace(string(p.Verdict) + " " + strings.Join(p.Args, " "))
}

func describeOutcome(o *Outcome) string {
	var b strings.Builder
	b.WriteString(string(o.Verdict))
	if o.Skip != "" {
		b.WriteString(" " + string(o.Skip))
	}
	if o.Errno != 0 {
		b.WriteString(" " + errnoName(o.Errno))
	}
	for _, a := range o.Answers {
		b.WriteString(" [" + string(a.Kind) + "]")
	}
	if len(o.Counters) > 0 {
		b.WriteString(" {" + counters(o.Counters) + "}")
	}
	return b.String()
}

// WriteTo writes the expectation in its text form, as ParseExpect reads it.
func (e *Expect) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	if e.Capture != "" {
		fmt.Fprintf(&b, "capture %s\n", e.Capture)
	}
	for _, a := range e.Local {
		fmt.Fprintf(&b, "local %v\n", a)
	}
	for _, l := range e.Listen {
		fmt.Fprintf(&b, "listen %s %d\n", l.Proto, l.Port)
	}
	fmt.Fprintf(&b, "checksums %s\n", e.Checksums)
	if len(e.KeepBad) > 0 {
		parts := make([]string, len(e.KeepBad))
		for i, n := range e.KeepBad {
			parts[i] = strconv.Itoa(n)
		}
		fmt.Fprintf(&b, "keep-bad %s\n", strings.Join(parts, " "))
	}
	for _, p := range e.Packets {
		fmt.Fprintf(&b, "%d %s\n", p.Number, p.String())
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
