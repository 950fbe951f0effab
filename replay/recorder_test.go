package replay

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

func TestRecorder(t *testing.T) {
	var b bytes.Buffer
	r, err := newRecorder(&b, 64)
	if err != nil {
		t.Fatal(err)
	}
	long := udpPkt(t, tA6, tB6, 1, 2, strings.Repeat("x", 100))
	short := echoPkt(t, tA4, tB4, false, 1, 1)
	ts := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				p := short
				if (g+i)%2 == 0 {
					p = long
				}
				if !r.Record(ts, p) {
					t.Errorf("Record dropped a packet with room in the queue")
				}
			}
		}()
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, errRecorderClosed) {
		t.Errorf("second Close: %v", err)
	}
	if r.Record(ts, short) {
		t.Errorf("Record after Close reported success")
	}
	if st := r.Stats(); st.Packets != 100 || st.Dropped != 1 {
		t.Errorf("stats %+v, want 100 written, 1 dropped", st)
	}
	pr, err := pcapgo.NewReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	if pr.LinkType() != layers.LinkTypeRaw || pr.Snaplen() != 64 {
		t.Errorf("link type %v, snaplen %d", pr.LinkType(), pr.Snaplen())
	}
	n := 0
	for {
		data, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if !ci.Timestamp.Equal(ts) {
			t.Errorf("timestamp %v, want %v (nanoseconds kept)", ci.Timestamp, ts)
		}
		switch ci.Length {
		case len(long):
			if len(data) != 64 || !bytes.Equal(data, long[:64]) {
				t.Errorf("long packet kept %d bytes, want the first 64", len(data))
			}
		case len(short):
			if !bytes.Equal(data, short) {
				t.Errorf("short packet changed")
			}
		default:
			t.Errorf("record of original length %d", ci.Length)
		}
	}
	if n != 100 {
		t.Errorf("%d records in the file, want 100", n)
	}
	if _, err := newRecorder(&b, MaxRecordLen+1); err == nil {
		t.Errorf("snaplen above MaxRecordLen accepted")
	}
}

// A writer that does not keep up makes Record drop, never block.
func TestRecorderDropsWhenBehind(t *testing.T) {
	pr, pw := io.Pipe()
	headerRead := make(chan struct{})
	go func() {
		buf := make([]byte, 24)
		io.ReadFull(pr, buf) // the file header, written by NewRecorder
		close(headerRead)
	}()
	r, err := newRecorder(pw, 0)
	if err != nil {
		t.Fatal(err)
	}
	<-headerRead
	p := echoPkt(t, tA4, tB4, false, 1, 1)
	start := time.Now()
	// The writer takes what fits its 64 KiB buffer, then blocks on the
	// pipe; past that and the queue, packets are dropped.
	for range 3 * recorderQueue {
		r.Record(time.Now(), p)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Record blocked for %v", el)
	}
	if st := r.Stats(); st.Dropped < recorderQueue/2 {
		t.Errorf("dropped %d with the writer stuck, want at least %d", st.Dropped, recorderQueue/2)
	}
	go io.Copy(io.Discard, pr)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// A failing writer surfaces in Close.
func TestRecorderWriteError(t *testing.T) {
	r, err := newRecorder(&failAfter{n: 24}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Record(time.Now(), echoPkt(t, tA4, tB4, false, 1, 1))
	if err := r.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close: %v, want ENOSPC", err)
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n >= len(p) {
		f.n -= len(p)
		return len(p), nil
	}
	return 0, syscall.ENOSPC
}

func TestSummaryPrint(t *testing.T) {
	s := Summary{
		Name: "x.pcap", Device: "tun0", Format: formatPcap, LinkType: linkTypeEthernet, Records: 4,
		Written: 2, Answered: 1, Dropped: 1, Refused: 1, RefusedBy: map[string]int{"EINVAL": 1},
		Skipped: 1, SkippedBy: map[SkipReason]int{skipNonIP: 1}, DeviceRead: 3, Unsolicited: 2,
		Mappings: []AddrMapping{{tA6, tB6}},
		Counters: []Counter{{"Udp6InCsumErrors", 1}},
		Packets: []Outcome{
			{Number: 1, Verdict: VerdictSkipped, Skip: skipNonIP, Desc: "EN10MB record, 60 bytes"},
			{Number: 2, Verdict: VerdictAnswered, Desc: "IPv6 a > b", Fixed: ChecksumUDP, Answers: []Answer{{Kind: AnswerPortUnreachable, Desc: "IPv6 b > a ICMPv6 port-unreachable"}}},
			{Number: 3, Verdict: VerdictRefused, Errno: syscall.EINVAL, Err: syscall.EINVAL, Desc: "not IPv4/IPv6"},
			{Number: 4, Verdict: VerdictDropped, Counters: []Counter{{"Udp6InCsumErrors", 1}}, Desc: "IPv6 a > b UDP"},
		},
	}
	var b strings.Builder
	if err := s.Print(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"replay x.pcap (pcap, EN10MB) into tun0: 4 records",
		"written   2: answered 1, dropped 1, delivered 0, queued 0, accepted 0",
		"refused   1 (EINVAL 1)",
		"skipped   1 (non-ip 1)",
		"device read 3 packets, 2 answering nothing replayed",
		"addresses: 2001:db8::1 -> 2001:db8::2",
		"kernel counters: Udp6InCsumErrors +1",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Print lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := s.PrintPackets(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#1    skipped non-ip       EN10MB record, 60 bytes",
		"#2    answered             IPv6 a > b",
		"fixed checksums: udp",
		"<- port-unreachable after",
		"#3    refused EINVAL       not IPv4/IPv6",
		"counters: Udp6InCsumErrors +1",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("PrintPackets lacks %q:\n%s", want, b.String())
		}
	}
}
