package loop

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tests of a UDPConn's receives through a multishot recvmsg into a buffer
// ring on the io_uring backend (udp_ring_linux.go).

// sendSeqs sends test stream packets from..to-1 (seqPacket) from fd to
// addr, waiting while the socket's buffer is full.
func sendSeqs(t *testing.T, fd int, addr netip.AddrPort, from, to uint32) {
	t.Helper()
	sa := sockaddrOf(addr)
	sendEach(t, "datagram", from, to, func(b []byte) error { return unix.Sendto(fd, b, 0, sa) })
}

// udpLog collects a test stream as a UDPConn's callback reads it, and
// checks each datagram's sender.
type udpLog struct {
	seqLog
	from  netip.AddrPort
	batch int // buffers per RecvBatch
}

func newUDPLog(t *testing.T, from netip.AddrPort, batch int) *udpLog {
	return &udpLog{seqLog: seqLog{t: t}, from: from, batch: batch}
}

// drain reads u with RecvBatch until it runs dry, as a callback does.
// Loop-only.
func (s *udpLog) drain(u *UDPConn) {
	bufs := make([][]byte, s.batch)
	for i := range bufs {
		bufs[i] = make([]byte, 4+64)
	}
	sizes, addrs := make([]int, len(bufs)), make([]netip.AddrPort, len(bufs))
	for {
		n, err := u.RecvBatch(bufs, sizes, addrs, 4)
		s.mu.Lock()
		for i := range n {
			if seq, ok := s.add(bufs[i][4:4+sizes[i]], "datagram"); ok && addrs[i] != s.from {
				s.t.Errorf("datagram %d from %v, want %v", seq, addrs[i], s.from)
			}
		}
		s.mu.Unlock()
		if !s.more(n, len(bufs), err) {
			return
		}
	}
}

// attachUDP attaches fd to l as a UDPConn that drains into log (when
// reading says so; nil: always), closed at the end of the test.
func attachUDP(t *testing.T, l *Loop, fd int, cfg UDPConfig, log *udpLog, reading *atomic.Bool) *UDPConn {
	t.Helper()
	cfg.OnReady = func(u *UDPConn, ev Events) {
		if reading == nil || reading.Load() {
			log.drain(u)
		}
	}
	u, err := l.AttachUDP(fd, cfg)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("AttachUDP: %v", err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// bigReceiveBuffer lets fd queue the test's datagrams without the kernel
// dropping any while nobody reads.
func bigReceiveBuffer(t *testing.T, fd int) {
	t.Helper()
	const size = 8 << 20
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size) // capped at rmem_max
	}
}

// socketDrops is the kernel's count of datagrams fd's socket dropped
// (SK_MEMINFO_DROPS of SO_MEMINFO).
func socketDrops(t *testing.T, fd int) uint32 {
	t.Helper()
	var mem [9]uint32 // SK_MEMINFO_VARS
	size := uint32(unsafe.Sizeof(mem))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO, uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		t.Fatalf("getsockopt SO_MEMINFO: %v", e)
	}
	return mem[8]
}

// On io_uring a UDPConn's datagrams are received by the kernel into its
// ring and RecvBatch copies them out with their senders, in order and
// intact, with no system call per datagram: read one per RecvBatch, they
// cost fewer system calls than datagrams, where on epoll each RecvBatch
// is a recvmmsg.
func TestURingUDPThroughRing(t *testing.T) {
	const n = 50
	for _, c := range linuxBackends {
		for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
			t.Run(fmt.Sprint(c.name, "/", family), func(t *testing.T) {
				checkLeaks(t)
				l := c.new(t)
				fd, addr := udpSocket(t, family)
				sender, from := udpSocket(t, family)
				closeLater(t, sender)
				log := newUDPLog(t, from, 1)
				u := attachUDP(t, l, fd, UDPConfig{}, log, nil)
				onLoop(t, l, func() {
					p := u.p
					ring := p.ring != nil && p.ring.msgHead > 0 && p.ring.u != nil
					if c.name == "uring" && (!ring || p.pollIn != 0) {
						t.Errorf("on io_uring: recvmsg ring %v, pollIn %v; want a ring and no Readable poll", ring, p.pollIn)
					}
					if c.name == "epoll" && (p.ring != nil || p.pollIn != Readable) {
						t.Errorf("on epoll: ring %v, pollIn %v; want no ring and a Readable poll", p.ring != nil, p.pollIn)
					}
				})
				// All n queued before the loop looks.
				release := hold(t, l)
				sendSeqs(t, sender, addr, 0, n)
				release()
				log.wait(n)
				checkReadCalls(t, l, c.name, n, "datagrams")
			})
		}
	}
}

// GRO trains come through the ring coalesced, their segment size in the
// UDP_GRO control message of each record, and RecvBatch splits them as on
// epoll: every segment its own datagram, with its sender, in order, the
// ones beyond the caller's buffers kept for the next call.
func TestURingUDPGROSplit(t *testing.T) {
	for _, c := range linuxBackends {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			l := c.new(t)
			fd, addr := udpSocket(t, unix.AF_INET)
			sender, from := udpSocket(t, unix.AF_INET)
			closeLater(t, sender)
			// Three trains: 11 segments of 100 bytes, the last 37; a
			// lone datagram; 5 segments of 300.
			var want [][]byte
			train := func(segs, size, last int, mark byte) []byte {
				var b []byte
				for i := range segs {
					n := size
					if i == segs-1 && last > 0 {
						n = last
					}
					seg := make([]byte, n)
					for j := range seg {
						seg[j] = mark + byte(i) + byte(j*7)
					}
					want = append(want, seg)
					b = append(b, seg...)
				}
				return b
			}
			t1, t2, t3 := train(11, 100, 37, 1), train(1, 50, 0, 60), train(5, 300, 0, 90)
			var mu atomic.Pointer[[][]byte]
			mu.Store(&[][]byte{})
			var froms atomic.Int32
			const nbufs, off = 4, 8
			bufs, sizes, addrs := make([][]byte, nbufs), make([]int, nbufs), make([]netip.AddrPort, nbufs)
			for i := range bufs {
				bufs[i] = make([]byte, off+MaxGROBytes)
			}
			var reading atomic.Bool
			u, err := l.AttachUDP(fd, UDPConfig{GRO: true, OnReady: func(u *UDPConn, ev Events) {
				if !reading.Load() {
					return
				}
				for {
					n, err := u.RecvBatch(bufs, sizes, addrs, off)
					if err != nil {
						if !errors.Is(err, ErrWouldBlock) {
							t.Errorf("RecvBatch: %v", err)
						}
						return
					}
					got := append([][]byte(nil), *mu.Load()...)
					for i := range n {
						got = append(got, append([]byte(nil), bufs[i][off:off+sizes[i]]...))
						if addrs[i] != from {
							froms.Add(1)
						}
					}
					mu.Store(&got)
					if n < len(bufs) {
						return
					}
				}
			}})
			if err != nil {
				unix.Close(fd)
				t.Fatal(err)
			}
			t.Cleanup(func() { u.Close() })
			if !u.GRO() {
				t.Fatal("the kernel refused UDP_GRO")
			}
			for _, tr := range []struct {
				b   []byte
				seg uint16
			}{{t1, 100}, {t2, 0}, {t3, 300}} {
				var err error
				if tr.seg == 0 {
					err = unix.Sendto(sender, tr.b, 0, sockaddrOf(addr))
				} else {
					err = sendTrain(sender, addr, tr.b, tr.seg)
				}
				if err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			if c.name == "uring" {
				waitPending(t, l, u.p, 3)
			}
			reading.Store(true)
			onLoop(t, l, func() { u.Notify(Readable) })
			// By bytes, not datagrams: a train left whole is fewer of them.
			wantBytes := len(t1) + len(t2) + len(t3)
			waitFor(t, "every byte sent", func() bool {
				n := 0
				for _, b := range *mu.Load() {
					n += len(b)
				}
				return n >= wantBytes
			})
			got := *mu.Load()
			if len(got) != len(want) {
				t.Fatalf("%d datagrams, want %d", len(got), len(want))
			}
			for i := range want {
				if string(got[i]) != string(want[i]) {
					t.Errorf("datagram %d: %d bytes % x..., want %d bytes % x...", i, len(got[i]), got[i][:min(8, len(got[i]))], len(want[i]), want[i][:8])
				}
			}
			if k := froms.Load(); k != 0 {
				t.Errorf("%d datagrams with a sender other than %v", k, from)
			}
			if s := l.Stats(); s.PacketsIn != uint64(len(want)) {
				t.Errorf("stats count %d datagrams in, want %d", s.PacketsIn, len(want))
			}
		})
	}
}

// More datagrams than the ring has buffers, while nobody reads: the ring
// fills, the request ends for want of a buffer (ENOBUFS), the rest wait in
// the socket (whose buffer is large enough for the kernel to drop none).
// Once RecvBatch gives buffers back the request is armed again and every
// datagram arrives, in order, none lost or duplicated.
func TestURingUDPENOBUFSRecovery(t *testing.T) {
	checkLeaks(t)
	l := newURingLoop(t)
	fd, addr := udpSocket(t, unix.AF_INET)
	bigReceiveBuffer(t, fd)
	sender, from := udpSocket(t, unix.AF_INET)
	closeLater(t, sender)
	const total = 600
	log := newUDPLog(t, from, 8)
	var reading atomic.Bool
	u := attachUDP(t, l, fd, UDPConfig{}, log, &reading)
	sendSeqs(t, sender, addr, 0, total)
	starved := waitRingStarved(t, l, u.p)
	if d := socketDrops(t, fd); d != 0 {
		t.Fatalf("the kernel dropped %d datagrams: the test's receive buffer is too small", d)
	}
	reading.Store(true)
	onLoop(t, l, func() { u.Notify(Readable) })
	log.wait(total)
	onLoop(t, l, func() {
		r := u.p.ring
		if r.starved || r.req == 0 || r.plen != 0 {
			t.Errorf("after the drain: starved %v, request %d, %d pending; want the request armed, nothing pending", r.starved, r.req, r.plen)
		}
	})
	if s := l.Stats(); s.PacketsIn != total {
		t.Errorf("stats count %d datagrams in, want %d", s.PacketsIn, total)
	}
	if d := socketDrops(t, fd); d != 0 {
		t.Errorf("the kernel dropped %d datagrams", d)
	}
	t.Logf("starved %d times", starved)
	sendSeqs(t, sender, addr, total, total+5)
	log.wait(total + 5)
}

// pendingUDP sends n datagrams to a UDPConn on l and waits until they
// are in its ring.
func pendingUDP(t *testing.T, l *Loop, u *UDPConn, sender int, addr netip.AddrPort, n uint32) {
	t.Helper()
	sendSeqs(t, sender, addr, 0, n)
	waitPending(t, l, u.p, int(n))
}

// A handoff takes the datagrams already in the ring along: the new owner,
// on io_uring or on epoll, reads them first, in order, with their
// senders, then those that came during the handoff and later.
func TestURingUDPHandoffKeepsPending(t *testing.T) {
	for _, to := range handoffTargets {
		t.Run(to.name, func(t *testing.T) {
			checkLeaks(t)
			la := newURingLoop(t)
			lb := to.new(t)
			fd, addr := udpSocket(t, unix.AF_INET6)
			sender, from := udpSocket(t, unix.AF_INET6)
			closeLater(t, sender)
			const early, late, later = 20, 30, 10
			var readOnA atomic.Int32
			u, err := la.AttachUDP(fd, UDPConfig{OnReady: func(*UDPConn, Events) { readOnA.Add(1) }})
			if err != nil {
				unix.Close(fd)
				t.Fatal(err)
			}
			t.Cleanup(func() { u.Close() })
			pendingUDP(t, la, u, sender, addr, early)
			log := newUDPLog(t, from, 8)
			release := hold(t, lb)
			onLoop(t, la, func() { err = u.Handoff(lb, func(u *UDPConn, ev Events) { log.drain(u) }) })
			if err != nil {
				release()
				t.Fatalf("Handoff: %v", err)
			}
			sendSeqs(t, sender, addr, early, early+late)
			release()
			log.wait(early + late)
			sendSeqs(t, sender, addr, early+late, early+late+later)
			log.wait(early + late + later)
			checkHandedOff(t, la, lb, u.p, early+late+later, u.Close, fd)
		})
	}
}

// Closing a UDPConn whose ring holds datagrams and whose request is
// armed, or closing its loop: the socket is closed, the buffers
// unmapped, and the uring holds no request for it.
func TestURingUDPClosePending(t *testing.T) {
	const pending = 5
	for _, how := range []string{"conn", "loop"} {
		t.Run(how, func(t *testing.T) {
			checkLeaks(t)
			l := newURingLoop(t)
			ur := l.p.(*uring)
			fd, addr := udpSocket(t, unix.AF_INET)
			sender, _ := udpSocket(t, unix.AF_INET)
			closeLater(t, sender)
			var before int
			onLoop(t, l, func() { before = ur.inflight })
			u, err := l.AttachUDP(fd, UDPConfig{OnReady: func(*UDPConn, Events) {}})
			if err != nil {
				unix.Close(fd)
				t.Fatal(err)
			}
			pendingUDP(t, l, u, sender, addr, pending)
			var buf, size uintptr
			var armed bool
			onLoop(t, l, func() {
				r := u.p.ring
				armed = r.req != 0 && r.u == ur
				buf, size = uintptr(unsafe.Pointer(&r.bufMem[0])), uintptr(len(r.bufMem))
			})
			if !armed || !mapped(t, buf, size) {
				t.Fatalf("before the close: request armed %v, buffers mapped %v", armed, mapped(t, buf, size))
			}
			if how == "conn" {
				if err := u.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				var now int
				waitFor(t, "the uring's requests for the UDPConn to end", func() bool {
					onLoop(t, l, func() { now = ur.inflight })
					return now == before
				})
			} else {
				if err := l.Close(); err != nil {
					t.Fatalf("loop Close: %v", err)
				}
				if ur.inflight != 0 {
					t.Errorf("%d requests in flight after the loop closed", ur.inflight)
				}
			}
			if isOpen(fd) {
				t.Error("socket open after the close")
			}
			if mapped(t, buf, size) {
				t.Error("the ring's buffers are still mapped after the close")
			}
			if r := u.p.ring; r.ringMem != nil || r.bufMem != nil || r.u != nil {
				t.Errorf("after the close: ring mapped %v, buffers mapped %v, attached %v", r.ringMem != nil, r.bufMem != nil, r.u != nil)
			}
		})
	}
}

// Without multishot recvmsg (a kernel before 6.0), or when the kernel
// refuses the request, a UDPConn on io_uring reads with recvmmsg after
// poll readiness, and every datagram still arrives: those queued before
// the refusal too.
func TestURingUDPFallback(t *testing.T) {
	const n = 20
	for _, how := range []string{"no multishot", "refused"} {
		t.Run(how, func(t *testing.T) {
			checkLeaks(t)
			savedNo, savedFlags := noRecvMultishot, recvmsgTestFlags
			t.Cleanup(func() { noRecvMultishot, recvmsgTestFlags = savedNo, savedFlags })
			if how == "no multishot" {
				noRecvMultishot = true
			} else {
				recvmsgTestFlags = 1 << 15 // no such flag: EINVAL
			}
			l := newURingLoop(t)
			fd, addr := udpSocket(t, unix.AF_INET)
			sender, from := udpSocket(t, unix.AF_INET)
			closeLater(t, sender)
			// Queued before the attach: in the socket when the kernel
			// refuses the request.
			sendSeqs(t, sender, addr, 0, n/2)
			log := newUDPLog(t, from, 1)
			u := attachUDP(t, l, fd, UDPConfig{}, log, nil)
			sendSeqs(t, sender, addr, n/2, n)
			log.wait(n)
			onLoop(t, l, func() {
				ur := l.p.(*uring)
				if ur.recvMultishot {
					t.Error("the uring still has multishot recvmsg")
				}
				if u.p.ring != nil || u.p.pollIn != Readable {
					t.Errorf("ring %v, pollIn %v; want no ring and a Readable poll", u.p.ring != nil, u.p.pollIn)
				}
			})
			if s := l.Stats(); s.Syscalls < n || s.PacketsIn != n {
				t.Errorf("%d system calls, %d datagrams in; want a recvmmsg per datagram and %d", s.Syscalls, s.PacketsIn, n)
			}
			sendSeqs(t, sender, addr, n, n+5)
			log.wait(n + 5)
		})
	}
}
