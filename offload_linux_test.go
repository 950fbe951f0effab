package tundra

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/vnet"
	"golang.org/x/sys/unix"
)

func TestOffloadsNegotiated(t *testing.T) {
	ns := netnstest.New(t)
	dev := createIn(t, ns, "10.82.0.1/24", Name("tdroff"), Offloads(AllOffloads))
	if dev.Offloads() != AllOffloads || len(dev.OffloadNotes()) != 0 {
		t.Errorf("offloads %+v, notes %v; want all on Linux 6.18", dev.Offloads(), dev.OffloadNotes())
	}
	if d := details(t, ns, "tdroff"); !d.LinkInfo.Data.VnetHdr {
		t.Errorf("ip -d: %+v, want vnet_hdr", d.LinkInfo.Data)
	}
	if dev.Queues()[0].HeaderLen() != vnet.HeaderLen {
		t.Errorf("HeaderLen %d, want the virtio-net header's %d", dev.Queues()[0].HeaderLen(), vnet.HeaderLen)
	}
	for _, opts := range [][]Option{{TAP()}, {PacketInfo()}} {
		if err := createErrIn(ns, "10.82.1.1/24", append(opts, Offloads(AllOffloads))...); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("offloads with %v: %v", opts, err)
		}
	}
}

// forwarder joins two namespaces with two devices with offloads and a loop
// moving packets between them, splitting and merging them (RecvBatch,
// SendBatch) or passing super-packets through (RecvGSO, SendGSO).
type forwarder struct {
	a, b         *netnstest.Namespace
	da, db       *Device
	l            *loop.Loop
	superPackets atomic.Int64 // super-packets seen on the way
	moved        atomic.Int64
	errs         atomic.Int64
	lastErr      atomic.Value
}

func newForwarder(t *testing.T, passthrough bool) *forwarder {
	t.Helper()
	f := &forwarder{a: netnstest.New(t), b: netnstest.New(t)}
	f.da = createIn(t, f.a, "10.81.0.1", Peer("10.81.0.2"), Name("fwda"), Offloads(AllOffloads))
	f.db = createIn(t, f.b, "10.81.0.2", Peer("10.81.0.1"), Name("fwdb"), Offloads(AllOffloads))
	var err error
	if f.l, err = loop.New(loop.Budget(1 << 20)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.l.Close() })
	// Attach both from the loop's thread, so that no callback runs before
	// the other device is attached too.
	var attachErr error
	f.l.Do(func() {
		for _, pair := range [][2]*Device{{f.da, f.db}, {f.db, f.da}} {
			from, to := pair[0], pair[1]
			var onReady ReadyFunc
			if passthrough {
				buf := make([]byte, MaxPacket)
				onReady = func(q *Queue, _ loop.Events) {
					for {
						n, h, err := q.RecvGSO(buf)
						if err != nil {
							f.note(err)
							return
						}
						if h.IsGSO() {
							f.superPackets.Add(1)
						}
						if err := to.Queues()[0].SendGSO(h, buf[:n]); err != nil {
							f.note(err)
						}
						f.moved.Add(1)
					}
				}
			} else {
				const batch, off = 64, vnet.HeaderLen
				bufs, sizes, out := make([][]byte, batch), make([]int, batch), make([][]byte, batch)
				for i := range bufs {
					bufs[i] = make([]byte, off+MaxPacket)
				}
				onReady = func(q *Queue, _ loop.Events) {
					for {
						n, err := q.RecvBatch(bufs, sizes, off)
						if err != nil {
							f.note(err)
							return
						}
						for i := range n {
							out[i] = bufs[i][:off+sizes[i]]
							if sizes[i] > 1500 {
								t.Errorf("RecvBatch returned a %d-byte packet: super-packets must be split", sizes[i])
							}
						}
						if st := q.Loop().Stats(); st.PacketsIn > st.Syscalls {
							f.superPackets.Store(int64(st.PacketsIn - st.Syscalls))
						}
						if _, err := to.Queues()[0].SendBatch(out[:n], off); err != nil {
							f.note(err)
						}
						f.moved.Add(int64(n))
						if n < batch {
							return
						}
					}
				}
			}
			if err := from.Attach(f.l, onReady); err != nil {
				attachErr = err
			}
		}
	})
	if attachErr != nil {
		t.Fatal(attachErr)
	}
	return f
}

func (f *forwarder) note(err error) {
	if err != nil && !errors.Is(err, ErrWouldBlock) {
		f.errs.Add(1)
		f.lastErr.Store(err.Error())
	}
}

// transferTCP sends size bytes from A to B through the forwarder, byte for
// byte, and logs what crossed.
func transferTCP(t *testing.T, f *forwarder, size int) {
	t.Helper()
	el, err := netnstest.TransferTCP(f.a, f.b, "10.81.0.2:7001", size, 120*time.Second)
	if err != nil {
		t.Fatalf("%v (forwarder errors %d, last %v)", err, f.errs.Load(), f.lastErr.Load())
	}
	t.Logf("%d MiB in %v (%.2f Gbit/s), SHA-256 identical; %d packets moved, %d super-packets seen, %d forwarder errors",
		size>>20, el.Round(time.Millisecond), float64(size)*8/el.Seconds()/1e9, f.moved.Load(), f.superPackets.Load(), f.errs.Load())
}

// A TCP transfer through a TUN↔TUN forwarder arrives byte-identical, with
// the kernel handing over super-packets, whether the forwarder splits and
// re-merges them or passes them through.
func TestOffloadForwarderTCP(t *testing.T) {
	for _, passthrough := range []bool{false, true} {
		t.Run(map[bool]string{false: "split and merge", true: "passthrough"}[passthrough], func(t *testing.T) {
			f := newForwarder(t, passthrough)
			transferTCP(t, f, 256<<20)
			if f.superPackets.Load() == 0 {
				t.Error("no super-packet crossed the forwarder: offloads did not engage")
			}
			// Everything read was written: the loop counts segments and
			// their IP bytes the same on both sides.
			var st loop.Stats
			f.l.Do(func() { st = f.l.Stats() })
			t.Logf("loop: %d packets / %d bytes in, %d / %d out, %d system calls", st.PacketsIn, st.BytesIn, st.PacketsOut, st.BytesOut, st.Syscalls)
			if st.PacketsIn != st.PacketsOut || st.BytesIn != st.BytesOut || st.BytesIn < 256<<20 {
				t.Errorf("in %d packets %d bytes, out %d packets %d bytes: the counts disagree", st.PacketsIn, st.BytesIn, st.PacketsOut, st.BytesOut)
			}
		})
	}
}

// UDP, sent with and without UDP_SEGMENT, crosses the forwarder complete
// and in order per flow.
func TestOffloadForwarderUDP(t *testing.T) {
	for _, passthrough := range []bool{false, true} {
		for _, gso := range []bool{false, true} {
			name := fmt.Sprintf("passthrough=%v gso=%v", passthrough, gso)
			t.Run(name, func(t *testing.T) {
				f := newForwarder(t, passthrough)
				udpFlows(t, f, gso)
			})
		}
	}
}

func udpFlows(t *testing.T, f *forwarder, gso bool) {
	const flows, perFlow, size = 4, 400, 1200
	var rx *net.UDPConn
	if err := f.b.Do(func() error {
		var err error
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 81, 0, 2), Port: 9100})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetReadBuffer(8 << 20)
	var mu sync.Mutex
	next := map[uint32]uint32{}
	var outOfOrder, received int
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for received < flows*perFlow {
			rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := rx.ReadFrom(buf)
			if err != nil {
				return
			}
			if n != size {
				continue
			}
			flow, seq := binary.BigEndian.Uint32(buf), binary.BigEndian.Uint32(buf[4:])
			mu.Lock()
			if seq != next[flow] {
				outOfOrder++
			}
			next[flow] = seq + 1
			received++
			mu.Unlock()
		}
	}()
	if err := f.a.Do(func() error {
		for flow := range flows {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{10, 81, 0, 2}, Port: 9100}); err != nil {
				return err
			}
			batch := 1
			if gso {
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT, size); err != nil {
					return err
				}
				batch = 20
			}
			buf := make([]byte, batch*size)
			for seq := 0; seq < perFlow; seq += batch {
				for k := range batch {
					binary.BigEndian.PutUint32(buf[k*size:], uint32(flow))
					binary.BigEndian.PutUint32(buf[k*size+4:], uint32(seq+k))
				}
				if _, err := unix.Write(fd, buf); err != nil {
					return err
				}
				time.Sleep(200 * time.Microsecond) // a pace the receiver keeps up with
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d of %d datagrams, %d out of order, %d super-packets seen, forwarder errors %d (%v)",
		received, flows*perFlow, outOfOrder, f.superPackets.Load(), f.errs.Load(), f.lastErr.Load())
	if received != flows*perFlow || outOfOrder != 0 {
		t.Fatalf("received %d of %d, %d out of order", received, flows*perFlow, outOfOrder)
	}
	if gso && f.superPackets.Load() == 0 {
		t.Error("UDP_SEGMENT sends crossed without one super-packet: USO did not engage")
	}
}

// Buffers too small for a super-packet and a device without offloads give
// errors that say so.
func TestOffloadRefusals(t *testing.T) {
	ns := netnstest.New(t)
	l := newLoop(t)
	dev := createIn(t, ns, "10.83.0.1/24", Offloads(AllOffloads))
	if err := dev.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	plain := createIn(t, ns, "10.84.0.1/24")
	if err := plain.Attach(l, func(*Queue, loop.Events) {}); err != nil {
		t.Fatal(err)
	}
	l.Do(func() {
		_, err := dev.Queues()[0].RecvBatch([][]byte{make([]byte, 2000)}, []int{0}, vnet.HeaderLen)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "65535") {
			t.Errorf("small buffer: %v", err)
		}
		if _, err := dev.Queues()[0].RecvBatch([][]byte{make([]byte, 70000)}, []int{0}, 4); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("offset below the header: %v", err)
		}
		if _, err := dev.Queues()[0].Recv(make([]byte, 2000)); err == nil || !strings.Contains(err.Error(), "RecvBatch") {
			t.Errorf("Recv on a device with offloads: %v", err)
		}
		if _, _, err := plain.Queues()[0].RecvGSO(make([]byte, MaxPacket)); err == nil || !strings.Contains(err.Error(), "without offloads") {
			t.Errorf("RecvGSO without offloads: %v", err)
		}
	})
}

// A super-packet with more segments than the caller's buffers comes out
// over several calls, in order and whole, and the queue reads on after it.
func TestOffloadSuperPacketOverManyCalls(t *testing.T) {
	ns := netnstest.New(t)
	l := newLoop(t)
	dev := createIn(t, ns, "10.85.0.1", Peer("10.85.0.2"), Offloads(AllOffloads))
	if !dev.Offloads().UDP {
		t.Fatalf("no UDP segmentation offload (%v); Linux 6.2+ has it", dev.OffloadNotes())
	}
	const nbufs, segs, size = 4, 30, 100
	var mu sync.Mutex
	var payloads [][]byte
	var calls, errs, packets, bytes int
	before := l.Stats()
	bufs, sizes := make([][]byte, nbufs), make([]int, nbufs)
	for i := range bufs {
		bufs[i] = make([]byte, vnet.HeaderLen+MaxPacket)
	}
	if err := dev.Attach(l, func(q *Queue, _ loop.Events) {
		for {
			n, err := q.RecvBatch(bufs, sizes, vnet.HeaderLen)
			mu.Lock()
			if err != nil {
				if !errors.Is(err, ErrWouldBlock) {
					errs++
					t.Errorf("RecvBatch: %v", err)
				}
				mu.Unlock()
				return
			}
			calls++
			packets += n
			for i := range n {
				bytes += sizes[i]
				pkt := bufs[i][vnet.HeaderLen : vnet.HeaderLen+sizes[i]]
				if len(pkt) >= 28 && pkt[0]>>4 == 4 && pkt[9] == unix.IPPROTO_UDP && binary.BigEndian.Uint16(pkt[22:]) == 9 {
					if int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) || int(binary.BigEndian.Uint16(pkt[24:])) != len(pkt)-20 || vnet.Checksum(pkt[:20], 0) != 0xffff {
						t.Errorf("segment %d: IPv4 length %d, UDP length %d for %d bytes, or a bad header checksum", len(payloads), binary.BigEndian.Uint16(pkt[2:]), binary.BigEndian.Uint16(pkt[24:]), len(pkt))
					}
					payloads = append(payloads, append([]byte(nil), pkt[28:]...))
				}
			}
			mu.Unlock()
			if n < len(bufs) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	send := func() {
		t.Helper()
		if err := ns.Do(func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT, size); err != nil {
				return err
			}
			buf := make([]byte, segs*size)
			for k := range segs {
				for j := range size {
					buf[k*size+j] = byte(k)
				}
			}
			return unix.Sendto(fd, buf, 0, &unix.SockaddrInet4{Addr: [4]byte{10, 85, 0, 2}, Port: 9})
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Two trains: the second shows the queue reads on after the first.
	for train := range 2 {
		send()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			got, failed := len(payloads), errs > 0
			mu.Unlock()
			if got >= (train+1)*segs || failed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("train %d: %d of %d datagrams after 5s", train, got-train*segs, segs)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(payloads) != 2*segs {
		t.Fatalf("%d datagrams, want %d", len(payloads), 2*segs)
	}
	for i, p := range payloads {
		if len(p) != size || p[0] != byte(i%segs) || p[size-1] != byte(i%segs) {
			t.Fatalf("datagram %d: %d bytes starting %d, want %d bytes of %d", i, len(p), p[0], size, i%segs)
		}
	}
	if calls < 2*segs/nbufs {
		t.Errorf("%d calls for %d datagrams in %d buffers", calls, 2*segs, nbufs)
	}
	// The loop counts packets handed out, not reads: each segment of a
	// super-packet is one, with its own headers.
	mu.Unlock()
	if err := l.Do(func() {
		mu.Lock()
		defer mu.Unlock()
		s := l.Stats()
		if in := s.PacketsIn - before.PacketsIn; in != uint64(packets) || s.BytesIn-before.BytesIn != uint64(bytes) {
			t.Errorf("Stats: %d packets, %d bytes in; RecvBatch handed out %d, %d", in, s.BytesIn-before.BytesIn, packets, bytes)
		}
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock() // for the deferred Unlock
}

// A kernel that refuses USO in TUNSETOFFLOAD, or a coalesced write the
// offloads allow, gets that offload turned off, with a note saying why;
// the device works on without it.
func TestOffloadFallbacks(t *testing.T) {
	ns := netnstest.New(t)
	t.Run("USO refused", func(t *testing.T) {
		sys := realSystem
		var asked []tun.Offload
		sys.setOffload = func(d *tun.Device, o tun.Offload) error {
			asked = append(asked, o)
			if o&(tun.OffloadUSO4|tun.OffloadUSO6) != 0 {
				return unix.EINVAL
			}
			return realSystem.setOffload(d, o)
		}
		dev := createIn(t, ns, "10.86.0.1/24", Name("tdrfb1"), Offloads(AllOffloads), withSystem(sys))
		got := dev.Offloads()
		if got.UDP || !got.TCP4 || !got.TCP6 {
			t.Errorf("offloads %+v, want TCP without UDP", got)
		}
		if notes := strings.Join(dev.OffloadNotes(), "; "); !strings.Contains(notes, "UDP segmentation off") || !strings.Contains(notes, "USO4|USO6") {
			t.Errorf("notes %q do not say UDP segmentation was refused", notes)
		}
		if len(asked) != 2 || asked[1]&(tun.OffloadUSO4|tun.OffloadUSO6) != 0 || asked[1]&tun.OffloadTSO4 == 0 {
			t.Errorf("TUNSETOFFLOAD asked %v, want all, then all but USO", asked)
		}
		if d := details(t, ns, "tdrfb1"); !d.LinkInfo.Data.VnetHdr {
			t.Errorf("ip -d: %+v, want vnet_hdr", d.LinkInfo.Data)
		}
	})
	t.Run("coalesced TCP write refused", func(t *testing.T) {
		sys := realSystem
		sys.probeWrite = func(fd int, iovs [][]byte) (int, error) {
			if len(iovs) > 0 && len(iovs[0]) >= vnet.HeaderLen {
				if h, err := vnet.DecodeHeader(iovs[0]); err == nil && (h.GSOType == vnet.GSOTCPv4 || h.GSOType == vnet.GSOTCPv6) {
					return 0, unix.EINVAL
				}
			}
			return realSystem.probeWrite(fd, iovs)
		}
		dev := createIn(t, ns, "10.87.0.1/24", Name("tdrfb2"), Offloads(AllOffloads), withSystem(sys))
		got := dev.Offloads()
		if got.TCP4 || !got.TCP6 || !got.UDP {
			t.Errorf("offloads %+v, want TCP over IPv4 off (the family probed), the rest on", got)
		}
		if notes := strings.Join(dev.OffloadNotes(), "; "); !strings.Contains(notes, "TCP coalescing off: the kernel refused a coalesced write") {
			t.Errorf("notes %q do not say the TCP write was refused", notes)
		}
	})
}
