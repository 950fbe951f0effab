package loop

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groCase lays messages (each a list of segment lengths, all but the last
// equal) into nbufs buffers as recvmmsg would, runs spread, then drains
// the pending segments into fresh buffers, and checks that every segment
// came out once, in order, with its bytes and sender.
func checkSpread(t *testing.T, offset, nbufs int, segLens [][]int) {
	t.Helper()
	var want [][]byte
	var wantFrom []netip.AddrPort
	bufs := make([][]byte, nbufs)
	for i := range bufs {
		bufs[i] = bytes.Repeat([]byte{0xee}, offset+600)
	}
	msgs := make([]groMsg, len(segLens))
	for j, lens := range segLens {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(j)}), uint16(1000+j))
		var payload []byte
		for s, n := range lens {
			seg := make([]byte, n)
			for k := range seg {
				seg[k] = byte(j*31 + s*7 + k)
			}
			want = append(want, seg)
			wantFrom = append(wantFrom, from)
			payload = append(payload, seg...)
		}
		copy(bufs[j][offset:], payload)
		msgs[j] = groMsg{length: len(payload), from: from}
		if len(lens) > 1 {
			msgs[j].seg = lens[0]
		}
	}
	sizes, addrs := make([]int, nbufs), make([]netip.AddrPort, nbufs)
	var pending groPending
	n, total := spread(msgs, bufs, sizes, addrs, offset, &pending)
	var got [][]byte
	var gotFrom []netip.AddrPort
	gotBytes := 0
	for i := range n {
		got = append(got, append([]byte(nil), bufs[i][offset:offset+sizes[i]]...))
		gotFrom = append(gotFrom, addrs[i])
		gotBytes += sizes[i]
	}
	if gotBytes != total {
		t.Errorf("spread reported %d bytes, the buffers hold %d", total, gotBytes)
	}
	for round := 0; !pending.empty(); round++ {
		if round > len(want) {
			t.Fatal("pending never drains")
		}
		fresh := make([][]byte, len(sizes))
		for i := range fresh {
			fresh[i] = make([]byte, offset+600)
		}
		k, b := pending.deliver(fresh, sizes, addrs, offset, 0)
		if k == 0 {
			t.Fatal("pending delivered nothing")
		}
		for i := range k {
			got = append(got, append([]byte(nil), fresh[i][offset:offset+sizes[i]]...))
			gotFrom = append(gotFrom, addrs[i])
			b -= sizes[i]
		}
		if b != 0 {
			t.Errorf("deliver miscounted bytes by %d", b)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d segments out, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) || gotFrom[i] != wantFrom[i] {
			t.Fatalf("segment %d: %d bytes from %v, want %d from %v", i, len(got[i]), gotFrom[i], len(want[i]), wantFrom[i])
		}
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		name   string
		nbufs  int
		offset int
		lens   [][]int
	}{
		{"single datagrams", 4, 0, [][]int{{10}, {20}, {30}}},
		{"one train fills all", 4, 10, [][]int{{100, 100, 100, 40}}},
		{"trains after singles", 8, 4, [][]int{{5}, {50, 50, 50}, {7}, {60, 60, 1}}},
		{"train overflows", 4, 0, [][]int{{9}, {30, 30, 30, 30, 30, 30}}},
		{"messages after the cut kept whole", 4, 2, [][]int{{40, 40, 40}, {8}, {20, 20}, {3}}},
		{"cut exactly at a message", 3, 0, [][]int{{40, 40, 40}, {8}}},
		{"empty datagram", 2, 0, [][]int{{0}, {5}}},
	} {
		t.Run(c.name, func(t *testing.T) { checkSpread(t, c.offset, c.nbufs, c.lens) })
	}
}

func TestSpreadRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		nbufs := 1 + r.IntN(12)
		nmsgs := 1 + r.IntN(nbufs)
		lens := make([][]int, nmsgs)
		for j := range lens {
			segs, size := 1+r.IntN(9), 1+r.IntN(60)
			for range segs - 1 {
				lens[j] = append(lens[j], size)
			}
			lens[j] = append(lens[j], 1+r.IntN(size))
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkSpread(t, r.IntN(16), nbufs, lens) })
		if t.Failed() {
			return
		}
	}
}

func TestGROSegment(t *testing.T) {
	msg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	seg := binary.NativeEndian.AppendUint32(nil, 1460)
	other := msg(unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16))
	for _, c := range []struct {
		name string
		c    []byte
		want int
	}{
		{"none", nil, 0},
		{"gro", msg(unix.IPPROTO_UDP, unix.UDP_GRO, seg), 1460},
		{"after another", append(append([]byte(nil), other...), msg(unix.IPPROTO_UDP, unix.UDP_GRO, seg)...), 1460},
		{"other only", other, 0},
		{"length past the buffer", msg(unix.IPPROTO_UDP, unix.UDP_GRO, seg)[:unix.CmsgLen(2)], 0},
		{"negative", msg(unix.IPPROTO_UDP, unix.UDP_GRO, []byte{0xff, 0xff, 0xff, 0xff}), 0},
	} {
		if got := groSegment(c.c); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// TestUDPRecvBatchGRO sends UDP_SEGMENT trains over loopback to a socket
// with GRO on, reading with fewer buffers than a train carries: every
// datagram arrives once, in order, whole, from its sender, and with far
// fewer recvmmsg calls than datagrams, which only coalescing gives.
func TestUDPRecvBatchGRO(t *testing.T) {
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		t.Run(fmt.Sprint(family), func(t *testing.T) {
			checkLeaks(t)
			l := newLoop(t)
			fd, addr := udpSocket(t, family)
			const nbufs, off = 8, 12
			bufs, sizes, addrs := make([][]byte, nbufs), make([]int, nbufs), make([]netip.AddrPort, nbufs)
			for i := range bufs {
				bufs[i] = make([]byte, off+MaxGROBytes)
			}
			var mu sync.Mutex
			var got [][]byte
			var from []netip.AddrPort
			var reading atomic.Bool
			var recvCalls uint64 // system calls made inside RecvBatch
			u, err := l.AttachUDP(fd, UDPConfig{GRO: true, OnReady: func(u *UDPConn, ev Events) {
				if !reading.Load() {
					return // until every train is queued; Notify starts it
				}
				for {
					before := l.Stats().Syscalls
					n, err := u.RecvBatch(bufs, sizes, addrs, off)
					mu.Lock()
					recvCalls += l.Stats().Syscalls - before
					mu.Unlock()
					if err != nil {
						return
					}
					mu.Lock()
					for i := range n {
						got = append(got, append([]byte(nil), bufs[i][off:off+sizes[i]]...))
						from = append(from, addrs[i])
					}
					mu.Unlock()
					if n < nbufs {
						return
					}
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if !u.GRO() {
				t.Fatal("the kernel refused UDP_GRO (Linux 5.0+ has it)")
			}
			sfd, saddr := udpSocket(t, family)
			defer unix.Close(sfd)
			// Five trains of 40 datagrams of 200 bytes, the last one short,
			// each one sendmsg with UDP_SEGMENT.
			var want [][]byte
			for train := range 5 {
				var payload []byte
				for k := range 40 {
					size := 200
					if k == 39 {
						size = 77
					}
					d := bytes.Repeat([]byte{byte(train*40 + k)}, size)
					want = append(want, d)
					payload = append(payload, d...)
				}
				if err := sendTrain(sfd, addr, payload, 200); err != nil {
					t.Fatalf("UDP_SEGMENT send: %v", err)
				}
			}
			reading.Store(true)
			onLoop(t, l, func() {
				if err := u.Notify(Readable); err != nil {
					t.Error(err)
				}
			})
			waitFor(t, "200 datagrams", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= len(want) })
			mu.Lock()
			defer mu.Unlock()
			if len(got) != len(want) {
				t.Fatalf("%d datagrams, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) || from[i] != saddr {
					t.Fatalf("datagram %d: %d bytes of %x from %v, want %d of %x from %v", i, len(got[i]), got[i][:1], from[i], len(want[i]), want[i][0], saddr)
				}
			}
			s := l.Stats()
			if s.PacketsIn != uint64(len(want)) {
				t.Errorf("stats: %d packets in, want %d (datagrams, not messages)", s.PacketsIn, len(want))
			}
			// Without coalescing, 200 datagrams into 8 buffers take at least
			// 25 recvmmsg calls; the five queued trains take one (the rest
			// come from what was kept) and one more to find the socket dry.
			if recvCalls >= uint64(len(want)/nbufs) {
				t.Errorf("%d recvmmsg calls for %d datagrams in %d-buffer batches: not coalesced", recvCalls, len(want), nbufs)
			}
			t.Logf("%d datagrams, %d recvmmsg calls", len(got), recvCalls)
		})
	}
}

func TestUDPRecvBatchGROSmallBuffers(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fd, _ := udpSocket(t, unix.AF_INET)
	u, err := l.AttachUDP(fd, UDPConfig{GRO: true, OnReady: func(*UDPConn, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	onLoop(t, l, func() {
		_, err = u.RecvBatch([][]byte{make([]byte, 2048)}, []int{0}, nil, 0)
	})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("with GRO each needs")) {
		t.Fatalf("a 2 KiB buffer with GRO on: %v, want an error naming the size needed", err)
	}
}

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// After a train, plain datagrams queued behind it all come in one call: a
// short return says the socket ran dry, and the caller stops reading.
func TestUDPRecvBatchGROReadsOn(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fd, addr := udpSocket(t, unix.AF_INET)
	const nbufs = 16
	bufs, sizes := make([][]byte, nbufs), make([]int, nbufs)
	for i := range bufs {
		bufs[i] = make([]byte, MaxGROBytes)
	}
	u, err := l.AttachUDP(fd, UDPConfig{GRO: true, OnReady: func(*UDPConn, Events) {}})
	if err != nil {
		t.Fatal(err)
	}
	sfd, _ := udpSocket(t, unix.AF_INET)
	defer unix.Close(sfd)
	// A train of 16 datagrams of 10 bytes.
	var train []byte
	for k := range 16 {
		train = append(train, fmt.Sprintf("train %3d.", k)...)
	}
	if err := sendTrain(sfd, addr, train, 10); err != nil {
		t.Fatal(err)
	}
	recv := func() (int, error) {
		var n int
		var err error
		onLoop(t, l, func() { n, err = u.RecvBatch(bufs, sizes, nil, 0) })
		return n, err
	}
	// Loopback delivers within the send, on this host; the pause covers a
	// softirq deferred to ksoftirqd.
	time.Sleep(50 * time.Millisecond)
	if n, err := recv(); n != 16 || err != nil || string(bufs[15][:sizes[15]]) != "train  15." {
		t.Fatalf("the train: %d datagrams, %v", n, err)
	}
	// Then 5 plain datagrams, all queued before the next call.
	for k := range 5 {
		if err := unix.Sendto(sfd, []byte(fmt.Sprintf("plain %d", k)), 0, sockaddrOf(addr)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	n, err := recv()
	if err != nil || n != 5 {
		t.Fatalf("5 datagrams queued, one call returned %d (%v): a short return with more waiting", n, err)
	}
	for k := range 5 {
		if got := string(bufs[k][:sizes[k]]); got != fmt.Sprintf("plain %d", k) {
			t.Fatalf("datagram %d: %q", k, got)
		}
	}
}

// Segments kept back for the next call are not lost by a Handoff: the new
// loop's callback runs once on arrival and gets them, with no new traffic.
func TestUDPGROHandoffKeepsPending(t *testing.T) {
	checkLeaks(t)
	l1, l2 := newLoop(t), newLoop(t)
	fd, addr := udpSocket(t, unix.AF_INET)
	const nbufs = 8
	bufs, sizes := make([][]byte, nbufs), make([]int, nbufs)
	for i := range bufs {
		bufs[i] = make([]byte, MaxGROBytes)
	}
	var mu sync.Mutex
	var got []string
	var handedOff atomic.Bool
	read := func(u *UDPConn) (n int, err error) {
		n, err = u.RecvBatch(bufs, sizes, nil, 0)
		mu.Lock()
		for i := range n {
			got = append(got, string(bufs[i][:sizes[i]]))
		}
		mu.Unlock()
		return n, err
	}
	onL2 := func(u *UDPConn, _ Events) {
		for {
			if n, err := read(u); err != nil || n < nbufs {
				return
			}
		}
	}
	_, err := l1.AttachUDP(fd, UDPConfig{GRO: true, OnReady: func(u *UDPConn, _ Events) {
		if handedOff.Load() {
			return
		}
		// One batch here, then the rest is the other loop's.
		if n, err := read(u); err != nil || n == 0 {
			return
		}
		handedOff.Store(true)
		if err := u.Handoff(l2, onL2); err != nil {
			t.Errorf("Handoff: %v", err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sfd, _ := udpSocket(t, unix.AF_INET)
	defer unix.Close(sfd)
	var train []byte
	for k := range 64 {
		train = append(train, fmt.Sprintf("train %3d.", k)...)
	}
	if err := sendTrain(sfd, addr, train, 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all 64 datagrams, 8 on the first loop and 56 kept back for the second", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 64
	})
	mu.Lock()
	defer mu.Unlock()
	for k := range 64 {
		if want := fmt.Sprintf("train %3d.", k); got[k] != want {
			t.Fatalf("datagram %d: %q, want %q", k, got[k], want)
		}
	}
}

// Kept segments count against the registration's budget: a callback that
// reads until told to stop gets at most Budget datagrams per round, and
// the rest come in later rounds.
func TestUDPGROPendingKeepsTheBudget(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	fd, addr := udpSocket(t, unix.AF_INET)
	const nbufs, budget = 8, 12
	bufs, sizes := make([][]byte, nbufs), make([]int, nbufs)
	for i := range bufs {
		bufs[i] = make([]byte, MaxGROBytes)
	}
	var mu sync.Mutex
	total, most := 0, 0
	if _, err := l.AttachUDP(fd, UDPConfig{GRO: true, Budget: budget, OnReady: func(u *UDPConn, _ Events) {
		this := 0
		for {
			n, err := u.RecvBatch(bufs, sizes, nil, 0)
			this += n
			if err != nil || n < nbufs {
				break
			}
		}
		mu.Lock()
		total += this
		most = max(most, this)
		mu.Unlock()
	}}); err != nil {
		t.Fatal(err)
	}
	sfd, _ := udpSocket(t, unix.AF_INET)
	defer unix.Close(sfd)
	for range 4 {
		if err := sendTrain(sfd, addr, make([]byte, 64*100), 100); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "256 datagrams", func() bool { mu.Lock(); defer mu.Unlock(); return total >= 256 })
	mu.Lock()
	defer mu.Unlock()
	if total != 256 || most > budget {
		t.Errorf("%d datagrams, at most %d in one callback; want 256, at most the budget of %d", total, most, budget)
	}
}

// sendTrain sends payload from fd to addr as one UDP_SEGMENT message of
// seg-byte datagrams (the last may be shorter).
func sendTrain(fd int, addr netip.AddrPort, payload []byte, seg uint16) error {
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], seg)
	return unix.Sendmsg(fd, payload, oob, sockaddrOf(addr), 0)
}
