package replay

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

const sampleExpect = `# a comment
capture x.pcap
local 2001:db8::1 192.0.2.1
listen udp 5301
listen tcp 80   # trailing comment
checksums preserve
keep-bad 3 4
1 skipped non-ip
2 answered echo-reply
3 dropped Udp6InCsumErrors Udp6InErrors
4 refused EINVAL
5 delivered udp 5301
6 queued
7 accepted
8 any
`

func TestParseExpect(t *testing.T) {
	e, err := ParseExpect(strings.NewReader(sampleExpect))
	if err != nil {
		t.Fatal(err)
	}
	if e.Capture != "x.pcap" || len(e.Local) != 2 || e.Local[1] != netip.MustParseAddr("192.0.2.1") ||
		!reflect.DeepEqual(e.Listen, []Listen{{"udp", 5301}, {"tcp", 80}}) ||
		e.Checksums != ChecksumPreserve || !reflect.DeepEqual(e.KeepBad, []int{3, 4}) || len(e.Packets) != 8 {
		t.Fatalf("parsed %+v", e)
	}
	if p := e.Packets[2]; p.Verdict != VerdictDropped || !reflect.DeepEqual(p.Args, []string{"Udp6InCsumErrors", "Udp6InErrors"}) || p.Line != 10 {
		t.Errorf("record 3: %+v", p)
	}
	// It writes back to something that parses to the same.
	var b bytes.Buffer
	if _, err := e.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	e2, err := ParseExpect(&b)
	if err != nil {
		t.Fatalf("reparse: %v\n%s", err, b.String())
	}
	for i := range e.Packets {
		e.Packets[i].Line, e2.Packets[i].Line = 0, 0
	}
	if !reflect.DeepEqual(e, e2) {
		t.Errorf("round trip:\n%+v\n%+v", e, e2)
	}
	var o Options
	e.Apply(&o)
	if len(o.Rewrite.Local) != 2 || o.Checksums != ChecksumPreserve || !reflect.DeepEqual(o.KeepBadChecksums, []int{3, 4}) {
		t.Errorf("Apply: %+v", o)
	}
}

func TestParseExpectErrors(t *testing.T) {
	for _, in := range []string{
		"bogus statement",
		"capture",
		"local not-an-address",
		"listen sctp 1",
		"listen udp 70000",
		"checksums maybe",
		"keep-bad zero",
		"1",
		"1 teleported",
		"1 answered",
		"1 answered hug",
		"1 delivered tcp 80",
		"1 delivered udp",
		"1 skipped because",
		"1 queued now",
		"1 any\n1 any",
		"2 any",
		"0 any",
	} {
		if _, err := ParseExpect(strings.NewReader(in)); !errors.Is(err, ErrExpectSyntax) {
			t.Errorf("%q: %v, want ErrExpectSyntax", in, err)
		}
	}
}

func TestExpectCheck(t *testing.T) {
	e, err := ParseExpect(strings.NewReader(sampleExpect))
	if err != nil {
		t.Fatal(err)
	}
	good := Summary{Packets: []Outcome{
		{Number: 1, Verdict: VerdictSkipped, Skip: skipNonIP},
		{Number: 2, Verdict: VerdictAnswered, Answers: []Answer{{Kind: AnswerEchoReply}}},
		{Number: 3, Verdict: VerdictDropped, Counters: []Counter{{"Udp6InCsumErrors", 1}, {"Udp6InErrors", 1}}},
		{Number: 4, Verdict: VerdictRefused, Errno: syscall.EINVAL},
		{Number: 5, Verdict: VerdictDelivered},
		{Number: 6, Verdict: VerdictQueued},
		{Number: 7, Verdict: VerdictAccepted},
		{Number: 8, Verdict: VerdictDropped},
	}}
	if err := e.Check(&good); err != nil {
		t.Fatalf("Check of a matching summary: %v", err)
	}
	mutations := []struct {
		name string
		f    func(s *Summary)
		msg  string
	}{
		{"skip reason", func(s *Summary) { s.Packets[0].Skip = skipShort }, "want skip reason non-ip"},
		{"answer kind", func(s *Summary) { s.Packets[1].Answers[0].Kind = AnswerRST }, "want an answer of kind echo-reply"},
		{"counter", func(s *Summary) { s.Packets[2].Counters = s.Packets[2].Counters[:1] }, "want counter Udp6InErrors to rise"},
		{"errno", func(s *Summary) { s.Packets[3].Errno = syscall.EIO }, "want refusal with EINVAL"},
		{"verdict", func(s *Summary) { s.Packets[4].Verdict = VerdictDropped }, "want delivered udp 5301, got dropped"},
		{"count", func(s *Summary) { s.Packets = s.Packets[:7] }, "the capture has 7 records, the expectation 8"},
	}
	for _, m := range mutations {
		s := good
		s.Packets = append([]Outcome(nil), good.Packets...)
		s.Packets[1].Answers = append([]Answer(nil), good.Packets[1].Answers...)
		m.f(&s)
		err := e.Check(&s)
		if err == nil || !strings.Contains(err.Error(), m.msg) {
			t.Errorf("%s: Check = %v, want it to say %q", m.name, err, m.msg)
		}
	}
}
