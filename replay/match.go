package replay

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// AnswerKind names a packet the kernel sent back through the device in
// answer to a replayed one.
type AnswerKind string

// Kinds of answers.
const (
	AnswerEchoReply       AnswerKind = "echo-reply"       // ICMP or ICMPv6 echo reply with the request's id and sequence
	AnswerSynAck          AnswerKind = "syn-ack"          // TCP SYN|ACK
	AnswerRST             AnswerKind = "rst"              // TCP RST (with or without ACK)
	AnswerTCP             AnswerKind = "tcp"              // another TCP segment of the connection
	AnswerUDP             AnswerKind = "udp"              // a UDP datagram back to the sender
	AnswerPortUnreachable AnswerKind = "port-unreachable" // ICMP type 3 code 3, ICMPv6 type 1 code 4
	AnswerUnreachable     AnswerKind = "unreachable"      // another destination-unreachable code
	AnswerTooBig          AnswerKind = "packet-too-big"   // ICMPv6 type 2
	AnswerTimeExceeded    AnswerKind = "time-exceeded"    // ICMP type 11, ICMPv6 type 3 (reassembly timeouts too)
	AnswerParamProblem    AnswerKind = "param-problem"    // ICMP type 12, ICMPv6 type 4
)

// Answer is one packet the device read that answers a replayed packet.
type Answer struct {
	Time time.Time  // when the device read it
	Kind AnswerKind // what it is
	Desc string     // a one-line description, such as "IPv6 fd00::2 > fd00::1 ICMPv6 echo-request id=1 seq=1 (64 bytes)"
	Data []byte     // the packet, when Options.KeepData is set
}

// matcher pairs what the device reads with the packets written before.
// Loop-only state; the keys hold rewritten (as written) addresses.
type matcher struct {
	echo  map[echoKey]*Outcome
	tcp   map[flowKey][]tcpSent
	udp   map[flowKey]*Outcome
	quote map[quoteKey]*Outcome
}

type echoKey struct {
	src, dst netip.Addr
	id, seq  uint16
}

type flowKey struct {
	src, dst     netip.Addr
	sport, dport uint16
}

// quoteKey identifies a packet the way an ICMP error quoting it does:
// addresses, protocol and the first 8 bytes of the upper-layer header.
type quoteKey struct {
	src, dst netip.Addr
	proto    uint8
	head     [8]byte
	n        int
}

type tcpSent struct {
	next     uint32 // the sequence number that acknowledges this segment
	ack      uint32 // its own acknowledgement number (if it has ACK set)
	hasAck   bool
	consumes bool // it takes sequence space (data, SYN or FIN): only then does an ACK of next answer it
	o        *Outcome
}

const maxTCPSent = 64 // segments remembered per connection

func newMatcher() *matcher {
	return &matcher{
		echo:  map[echoKey]*Outcome{},
		tcp:   map[flowKey][]tcpSent{},
		udp:   map[flowKey]*Outcome{},
		quote: map[quoteKey]*Outcome{},
	}
}

func makeQuoteKey(ip *ipInfo, p []byte) (quoteKey, bool) {
	l4 := ip.l4(p)
	if ip.l4off < 0 || len(l4) == 0 {
		return quoteKey{}, false
	}
	k := quoteKey{src: ip.src, dst: ip.dst, proto: ip.proto}
	k.n = copy(k.head[:], l4)
	return k, true
}

// sent records a packet that was written.
func (m *matcher) sent(p []byte, o *Outcome) {
	ip, ok := parseIP(p)
	if !ok {
		return
	}
	if k, ok := makeQuoteKey(&ip, p); ok {
		m.quote[k] = o
	}
	l4 := ip.l4(p)
	switch ip.proto {
	case protoICMP, protoICMPv6:
		req := uint8(8)
		if ip.version == 6 {
			req = 128
		}
		if len(l4) >= 8 && l4[0] == req && (ip.proto == protoICMPv6) == (ip.version == 6) {
			m.echo[echoKey{ip.src, ip.dst, be16(l4[4:]), be16(l4[6:])}] = o
		}
	case protoTCP:
		if len(l4) >= 20 {
			k := flowKey{ip.src, ip.dst, be16(l4[0:]), be16(l4[2:])}
			hl := int(l4[12]>>4) * 4
			data := max(len(l4)-hl, 0)
			ts := tcpSent{next: binary.BigEndian.Uint32(l4[4:8]) + uint32(data), consumes: data > 0, o: o}
			if l4[13]&0x02 != 0 { // SYN
				ts.next++
				ts.consumes = true
			}
			if l4[13]&0x01 != 0 { // FIN
				ts.next++
				ts.consumes = true
			}
			if l4[13]&0x10 != 0 {
				ts.ack, ts.hasAck = binary.BigEndian.Uint32(l4[8:12]), true
			}
			s := append(m.tcp[k], ts)
			if len(s) > maxTCPSent {
				s = s[len(s)-maxTCPSent:]
			}
			m.tcp[k] = s
		}
	case protoUDP:
		if len(l4) >= 8 {
			m.udp[flowKey{ip.src, ip.dst, be16(l4[0:]), be16(l4[2:])}] = o
		}
	}
}

// answer finds the written packet p answers, if any.
func (m *matcher) answer(p []byte) (*Outcome, AnswerKind) {
	ip, ok := parseIP(p)
	if !ok {
		return nil, ""
	}
	l4 := ip.l4(p)
	switch {
	case ip.proto == protoICMP && ip.version == 4 && len(l4) >= 8:
		switch l4[0] {
		case 0:
			return m.echo[echoKey{ip.dst, ip.src, be16(l4[4:]), be16(l4[6:])}], AnswerEchoReply
		case 3:
			if l4[1] == 3 {
				return m.quoted(l4[8:]), AnswerPortUnreachable
			}
			return m.quoted(l4[8:]), AnswerUnreachable
		case 11:
			return m.quoted(l4[8:]), AnswerTimeExceeded
		case 12:
			return m.quoted(l4[8:]), AnswerParamProblem
		}
	case ip.proto == protoICMPv6 && ip.version == 6 && len(l4) >= 8:
		switch l4[0] {
		case 129:
			return m.echo[echoKey{ip.dst, ip.src, be16(l4[4:]), be16(l4[6:])}], AnswerEchoReply
		case 1:
			if l4[1] == 4 {
				return m.quoted(l4[8:]), AnswerPortUnreachable
			}
			return m.quoted(l4[8:]), AnswerUnreachable
		case 2:
			return m.quoted(l4[8:]), AnswerTooBig
		case 3:
			return m.quoted(l4[8:]), AnswerTimeExceeded
		case 4:
			return m.quoted(l4[8:]), AnswerParamProblem
		}
	case ip.proto == protoTCP && len(l4) >= 20:
		sent := m.tcp[flowKey{ip.dst, ip.src, be16(l4[2:]), be16(l4[0:])}]
		if len(sent) == 0 {
			return nil, ""
		}
		flags := l4[13]
		kind := AnswerTCP
		switch {
		case flags&0x04 != 0:
			kind = AnswerRST
		case flags&0x12 == 0x12:
			kind = AnswerSynAck
		}
		// The latest segment this one acknowledges; or, for a RST without
		// ACK, whose sequence number is the acknowledgement number of the
		// segment that provoked it (RFC 9293 3.10.7.1), the latest segment
		// with that acknowledgement number; failing both, the latest.
		if flags&0x10 != 0 {
			ack := binary.BigEndian.Uint32(l4[8:12])
			for i := len(sent) - 1; i >= 0; i-- {
				if sent[i].consumes && sent[i].next == ack {
					return sent[i].o, kind
				}
			}
		} else if flags&0x04 != 0 {
			seq := binary.BigEndian.Uint32(l4[4:8])
			for i := len(sent) - 1; i >= 0; i-- {
				if sent[i].hasAck && sent[i].ack == seq {
					return sent[i].o, kind
				}
			}
		}
		return sent[len(sent)-1].o, kind
	case ip.proto == protoUDP && len(l4) >= 8:
		if o := m.udp[flowKey{ip.dst, ip.src, be16(l4[2:]), be16(l4[0:])}]; o != nil {
			return o, AnswerUDP
		}
	}
	return nil, ""
}

// quoted finds the written packet an ICMP error quotes.
func (m *matcher) quoted(q []byte) *Outcome {
	ip, ok := parseIP(q)
	if !ok {
		return nil
	}
	k, ok := makeQuoteKey(&ip, q)
	if !ok {
		return nil
	}
	return m.quote[k]
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// describe gives a one-line description of an IP packet, such as
// "IPv6 fd00::2 > fd00::1 ICMPv6 echo-request id=4660 seq=1 (64 bytes)".
// It never fails: bytes that are not an IP packet are described as such.
// Pure; safe from any goroutine.
func describe(p []byte) string {
	ip, ok := parseIP(p)
	if !ok {
		if len(p) == 0 {
			return "empty packet"
		}
		return fmt.Sprintf("not IPv4/IPv6 (version nibble %d, %d bytes)", p[0]>>4, len(p))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "IPv%d %v > %v ", ip.version, ip.src, ip.dst)
	if ip.fragment {
		fmt.Fprintf(&b, "fragment id=%#x off=%d", ip.fragID, ip.fragOff)
		if ip.fragMore {
			b.WriteString("+")
		}
		b.WriteString(" ")
	}
	l4 := ip.l4(p)
	switch {
	case ip.l4off < 0:
		fmt.Fprintf(&b, "proto %d", ip.proto)
	case ip.proto == protoTCP && len(l4) >= 20:
		fmt.Fprintf(&b, "TCP %d > %d [%s] seq=%d", be16(l4[0:]), be16(l4[2:]), tcpFlags(l4[13]), binary.BigEndian.Uint32(l4[4:8]))
		if l4[13]&0x10 != 0 {
			fmt.Fprintf(&b, " ack=%d", binary.BigEndian.Uint32(l4[8:12]))
		}
	case ip.proto == protoUDP && len(l4) >= 8:
		fmt.Fprintf(&b, "UDP %d > %d len=%d", be16(l4[0:]), be16(l4[2:]), be16(l4[4:]))
	case ip.proto == protoICMP && len(l4) >= 4:
		fmt.Fprintf(&b, "ICMP %s", icmpName(4, l4))
	case ip.proto == protoICMPv6 && len(l4) >= 4:
		fmt.Fprintf(&b, "ICMPv6 %s", icmpName(6, l4))
	default:
		fmt.Fprintf(&b, "proto %d", ip.proto)
	}
	fmt.Fprintf(&b, " (%d bytes)", len(p))
	return b.String()
}

func tcpFlags(f uint8) string {
	const names = "FSRPAUEC"
	var b []byte
	for i := range 8 {
		if f&(1<<i) != 0 {
			b = append(b, names[i])
		}
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

func icmpName(v int, l4 []byte) string {
	typ, code := l4[0], l4[1]
	echo := func(name string) string {
		if len(l4) >= 8 {
			return fmt.Sprintf("%s id=%d seq=%d", name, be16(l4[4:]), be16(l4[6:]))
		}
		return name
	}
	if v == 4 {
		switch typ {
		case 0:
			return echo("echo-reply")
		case 8:
			return echo("echo-request")
		case 3:
			if code == 3 {
				return "port-unreachable"
			}
			return fmt.Sprintf("unreachable code=%d", code)
		case 11:
			return fmt.Sprintf("time-exceeded code=%d", code)
		case 12:
			return "param-problem"
		}
	} else {
		switch typ {
		case 128:
			return echo("echo-request")
		case 129:
			return echo("echo-reply")
		case 1:
			if code == 4 {
				return "port-unreachable"
			}
			return fmt.Sprintf("unreachable code=%d", code)
		case 2:
			return "packet-too-big"
		case 3:
			return fmt.Sprintf("time-exceeded code=%d", code)
		case 4:
			return fmt.Sprintf("param-problem code=%d", code)
		case 133:
			return "router-solicitation"
		case 134:
			return "router-advertisement"
		case 135:
			return "neighbor-solicitation"
		case 136:
			return "neighbor-advertisement"
		case 143:
			return "mldv2-report"
		case 131:
			return "mld-report"
		}
	}
	return fmt.Sprintf("type=%d code=%d", typ, code)
}
