package replay

import (
	"strings"
	"testing"
)

func TestMatcher(t *testing.T) {
	m := newMatcher()
	outs := map[string]*Outcome{}
	send := func(name string, p []byte) {
		o := &Outcome{Desc: name}
		outs[name] = o
		m.sent(p, o)
	}
	send("echo6", echoPkt(t, tA6, tB6, false, 7, 1))
	send("echo4", echoPkt(t, tA4, tB4, false, 7, 1))
	send("syn", tcpPkt(t, tA4, tB4, 40000, 80, 1000, 0, "S", ""))
	send("ack", tcpPkt(t, tA4, tB4, 40000, 80, 1001, 5000, "A", ""))
	send("data", tcpPkt(t, tA4, tB4, 40000, 80, 1001, 5000, "PA", "hello"))
	udpClosed := udpPkt(t, tA6, tB6, 40001, 9, "closed")
	send("udp6", udpClosed)
	udp4 := udpPkt(t, tA4, tB4, 40002, 9, "closed")
	send("udp4", udp4)

	tests := []struct {
		name   string
		answer []byte
		want   string
		kind   AnswerKind
	}{
		{"echo6 reply", echoPkt(t, tB6, tA6, true, 7, 1), "echo6", AnswerEchoReply},
		{"echo6 reply other seq", echoPkt(t, tB6, tA6, true, 7, 2), "", AnswerEchoReply},
		{"echo4 reply", echoPkt(t, tB4, tA4, true, 7, 1), "echo4", AnswerEchoReply},
		{"syn-ack acknowledges the SYN, not the pure ACK", tcpPkt(t, tB4, tA4, 80, 40000, 9, 1001, "SA", ""), "syn", AnswerSynAck},
		{"ack of the data", tcpPkt(t, tB4, tA4, 80, 40000, 5000, 1006, "A", ""), "data", AnswerTCP},
		{"rst without ack answers the segment whose ack it echoes", tcpPkt(t, tB4, tA4, 80, 40000, 5000, 0, "R", ""), "data", AnswerRST},
		{"rst of another connection", tcpPkt(t, tB4, tA4, 81, 40000, 5000, 0, "R", ""), "", ""},
		{"ICMPv6 port unreachable", icmpError(t, udpClosed, 1, 4), "udp6", AnswerPortUnreachable},
		{"ICMPv6 other unreachable", icmpError(t, udpClosed, 1, 3), "udp6", AnswerUnreachable},
		{"ICMPv6 parameter problem", icmpError(t, udpClosed, 4, 0), "udp6", AnswerParamProblem},
		{"ICMPv6 packet too big", icmpError(t, udpClosed, 2, 0), "udp6", AnswerTooBig},
		{"ICMPv6 time exceeded", icmpError(t, udpClosed, 3, 1), "udp6", AnswerTimeExceeded},
		{"ICMP port unreachable, 8 bytes quoted", icmpError(t, udp4[:28], 3, 3), "udp4", AnswerPortUnreachable},
		{"ICMP time exceeded", icmpError(t, udp4, 11, 0), "udp4", AnswerTimeExceeded},
		{"ICMP parameter problem", icmpError(t, udp4, 12, 0), "udp4", AnswerParamProblem},
		{"UDP back", udpPkt(t, tB6, tA6, 9, 40001, "reply"), "udp6", AnswerUDP},
		{"UDP elsewhere", udpPkt(t, tB6, tA6, 9, 40009, "reply"), "", ""},
		{"router solicitation", func() []byte { p := echoPkt(t, tB6, tA6, false, 0, 0); p[40] = 133; return p }(), "", ""},
		{"garbage", []byte{0x45, 0, 0}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, kind := m.answer(tc.answer)
			got := ""
			if o != nil {
				got = o.Desc
			}
			if got != tc.want || (tc.want != "" && kind != tc.kind) {
				t.Errorf("answer matched %q (%s), want %q (%s)", got, kind, tc.want, tc.kind)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		p    []byte
		want string
	}{
		{echoPkt(t, tA6, tB6, false, 4660, 1), "IPv6 2001:db8::1 > 2001:db8::2 ICMPv6 echo-request id=4660 seq=1 (52 bytes)"},
		{echoPkt(t, tA4, tB4, true, 1, 2), "IPv4 192.0.2.1 > 192.0.2.2 ICMP echo-reply id=1 seq=2 (32 bytes)"},
		{tcpPkt(t, tA4, tB4, 1, 80, 7, 9, "SA", ""), "IPv4 192.0.2.1 > 192.0.2.2 TCP 1 > 80 [SA] seq=7 ack=9 (40 bytes)"},
		{udpPkt(t, tA6, tB6, 5, 53, "q"), "IPv6 2001:db8::1 > 2001:db8::2 UDP 5 > 53 len=9 (49 bytes)"},
		{[]byte{0x05, 1}, "not IPv4/IPv6 (version nibble 0, 2 bytes)"},
		{nil, "empty packet"},
	}
	for _, tc := range tests {
		if got := describe(tc.p); got != tc.want {
			t.Errorf("Describe = %q\n            want %q", got, tc.want)
		}
	}
	frag := udpPkt(t, tA4, tB4, 1, 2, "x")
	frag[6], frag[7] = 0x20, 0x10 // MF, offset 128
	if got := describe(frag); !strings.Contains(got, "fragment id=0x7 off=128+ proto 17") {
		t.Errorf("fragment: %q", got)
	}
}
