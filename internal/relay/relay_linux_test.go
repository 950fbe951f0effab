package relay

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/internal/packet"
)

// tunnel builds two namespaces joined by a veth pair, 192.168.100.1 and .2,
// and a relay in each: 10.99.0.1/24 in A, 10.99.0.2/24 in B.
type tunnel struct {
	a, b   *netnstest.Namespace
	ra, rb *Relay
}

func newTunnel(t *testing.T, queues int, observeA func(lane int, toUDP bool, pkt []byte)) *tunnel {
	return newTunnelWith(t, queues, false, false, observeA)
}

// newTunnelWith is newTunnel with device offloads and UDP GRO (tun2udp's
// defaults) or without, and a port per lane or one shared port.
func newTunnelWith(t *testing.T, queues int, offloads, portPerLane bool, observeA func(lane int, toUDP bool, pkt []byte)) *tunnel {
	t.Helper()
	tn := &tunnel{a: netnstest.New(t), b: netnstest.New(t)}
	for _, cmd := range [][]string{
		{"link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", tn.b.Path()},
		{"addr", "add", "192.168.100.1/24", "dev", "va"},
		{"link", "set", "va", "up"},
	} {
		if out, err := tn.a.Output("ip", cmd...); err != nil {
			t.Fatalf("ip %v: %v: %s", cmd, err, out)
		}
	}
	for _, cmd := range [][]string{{"addr", "add", "192.168.100.2/24", "dev", "vb"}, {"link", "set", "vb", "up"}} {
		if out, err := tn.b.Output("ip", cmd...); err != nil {
			t.Fatalf("ip %v: %v: %s", cmd, err, out)
		}
	}
	start := func(ns *netnstest.Namespace, cfg Config) *Relay {
		var r *Relay
		if err := ns.Do(func() error {
			var err error
			r, err = Start(cfg)
			return err
		}); err != nil {
			t.Fatalf("relay %s: %v", cfg.Addr, err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	tn.ra = start(tn.a, Config{Addr: "10.99.0.1/24", Name: "t2u", MTU: 1420, Queues: queues, PortPerLane: portPerLane, GSO: true, GRO: offloads, Offloads: offloads, Observe: observeA,
		Local: netip.MustParseAddrPort("192.168.100.1:5555"), Remote: netip.MustParseAddrPort("192.168.100.2:5555")})
	tn.rb = start(tn.b, Config{Addr: "10.99.0.2/24", Name: "t2u", MTU: 1420, Queues: queues, PortPerLane: portPerLane, GSO: true, GRO: offloads, Offloads: offloads,
		Local: netip.MustParseAddrPort("192.168.100.2:5555"), Remote: netip.MustParseAddrPort("192.168.100.1:5555")})
	return tn
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func ping(t *testing.T, ns *netnstest.Namespace, count int, dst string) (sent, got int) {
	t.Helper()
	out, _ := ns.Output("ping", "-n", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "2", dst)
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("ping printed no summary:\n%s", out)
	}
	sent, _ = strconv.Atoi(string(m[1]))
	got, _ = strconv.Atoi(string(m[2]))
	return sent, got
}

func TestTunnelPing(t *testing.T) {
	tn := newTunnel(t, 1, nil)
	if sent, got := ping(t, tn.a, 10, "10.99.0.2"); got != sent {
		t.Fatalf("%d of %d pings answered through the tunnel", got, sent)
	}
	s := tn.ra.Stats()[0]
	t.Logf("relay A: %+v", s)
	if s.TunToUDP < 10 || s.UDPToTun < 10 {
		t.Errorf("relay A moved %d out and %d in; 10 echoes need at least 10 each way", s.TunToUDP, s.UDPToTun)
	}
}

// A transfer through the tunnel arrives byte for byte, with and without
// device offloads.
func TestTunnelTransferIsIdentical(t *testing.T) {
	for _, offloads := range []bool{false, true} {
		t.Run(fmt.Sprintf("offloads=%v", offloads), func(t *testing.T) {
			tn := newTunnelWith(t, 1, offloads, false, nil)
			if got := tn.ra.Device().Offloads(); offloads && !got.TCP4 {
				t.Fatalf("offloads asked, device has %+v (%v)", got, tn.ra.Device().OffloadNotes())
			}
			if gso, gro := tn.rb.UDPOffloads(); !gso || gro != offloads {
				t.Fatalf("relay B's socket: GSO %v, GRO %v; want GSO and GRO %v", gso, gro, offloads)
			}
			el, err := netnstest.TransferTCP(tn.a, tn.b, "10.99.0.2:7000", 64<<20, 60*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			s := tn.ra.Stats()[0]
			t.Logf("64 MiB through the tunnel in %v (%.2f Gbit/s), SHA-256 identical; relay A: %+v",
				el.Round(time.Millisecond), float64(64<<20)*8/el.Seconds()/1e9, s)
		})
	}
}

// iperf3, TCP and UDP, through the tunnel.
func TestTunnelIperf3(t *testing.T) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatal("iperf3 is not installed (Debian: iperf3); scripts/test installs it")
	}
	tn := newTunnel(t, 1, nil)
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"tcp", nil},
		{"udp", []string{"-u", "-b", "20M", "-l", "1300"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			server := exec.Command("iperf3", "-s", "-1", "-B", "10.99.0.2")
			if err := tn.b.Spawn(server); err != nil {
				t.Fatal(err)
			}
			defer func() { server.Process.Kill(); server.Wait() }()
			// Wait for the listen, without a probe connection: -1 would
			// take it for its one client.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				up, err := tn.b.TCPListening(5201)
				if err != nil {
					t.Fatal(err)
				}
				if up {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("iperf3 server did not listen on port 5201 within 10s")
				}
			}
			args := append([]string{"-c", "10.99.0.2", "-t", "2", "-J"}, mode.args...)
			out, err := tn.a.Output("iperf3", args...)
			if err != nil {
				t.Fatalf("iperf3 %v: %v\n%s", args, err, out)
			}
			var rep struct {
				End struct {
					SumReceived struct {
						BitsPerSecond float64 `json:"bits_per_second"`
						Bytes         int64   `json:"bytes"`
					} `json:"sum_received"`
					Sum struct {
						BitsPerSecond float64 `json:"bits_per_second"`
						LostPercent   float64 `json:"lost_percent"`
						Packets       int64   `json:"packets"`
					} `json:"sum"`
				} `json:"end"`
			}
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("iperf3 JSON: %v\n%s", err, out)
			}
			if mode.name == "tcp" {
				t.Logf("iperf3 TCP through the tunnel: %.2f Gbit/s received (%d bytes)", rep.End.SumReceived.BitsPerSecond/1e9, rep.End.SumReceived.Bytes)
				if rep.End.SumReceived.Bytes <= 0 {
					t.Error("nothing received")
				}
			} else {
				t.Logf("iperf3 UDP through the tunnel: %.1f Mbit/s, %d packets, %.2f%% lost", rep.End.Sum.BitsPerSecond/1e6, rep.End.Sum.Packets, rep.End.Sum.LostPercent)
				if rep.End.Sum.Packets <= 0 || rep.End.Sum.LostPercent >= 50 {
					t.Errorf("UDP: %d packets, %.1f%% lost", rep.End.Sum.Packets, rep.End.Sum.LostPercent)
				}
			}
		})
	}
}

// With two queues, flows spread over more than one queue, each flow stays
// on one queue, and closing one queue's loop leaves the tunnel working.
// With one shared port, what arrives from the peer enters through one
// lane; with a port per lane (and offloads and UDP GRO, tun2udp's
// defaults) it spreads too.
func TestMultiQueueFlows(t *testing.T) {
	for _, c := range []struct{ offloads, portPerLane bool }{{false, false}, {true, true}} {
		t.Run(fmt.Sprintf("offloads=%v,portPerLane=%v", c.offloads, c.portPerLane), func(t *testing.T) {
			multiQueueFlows(t, c.offloads, c.portPerLane)
		})
	}
}

func multiQueueFlows(t *testing.T, offloads, portPerLane bool) {
	var mu sync.Mutex
	lanesOf := map[string]map[int]bool{}
	observe := func(lane int, toUDP bool, pkt []byte) {
		in, err := packet.Parse(pkt)
		if !toUDP || err != nil || in.Proto != packet.ProtoUDP || in.DstPort != 9000 {
			return
		}
		key := fmt.Sprintf("%v:%d", in.Src, in.SrcPort)
		mu.Lock()
		if lanesOf[key] == nil {
			lanesOf[key] = map[int]bool{}
		}
		lanesOf[key][lane] = true
		mu.Unlock()
	}
	tn := newTunnelWith(t, 2, offloads, portPerLane, observe)
	sink := make(chan int, 1)
	var ln *net.UDPConn
	if err := tn.b.Do(func() error {
		var err error
		ln, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 99, 0, 2), Port: 9000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		n := 0
		buf := make([]byte, 2048)
		for {
			ln.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, _, err := ln.ReadFrom(buf); err != nil {
				sink <- n
				return
			}
			n++
		}
	}()
	const flows, each = 32, 20
	if err := tn.a.Do(func() error {
		for f := range flows {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 99, 0, 1), Port: 20000 + f}, &net.UDPAddr{IP: net.IPv4(10, 99, 0, 2), Port: 9000})
			if err != nil {
				return err
			}
			for range each {
				c.Write([]byte("flow"))
				time.Sleep(100 * time.Microsecond)
			}
			c.Close()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	received := <-sink
	mu.Lock()
	used := map[int]int{}
	for key, lanes := range lanesOf {
		if len(lanes) != 1 {
			t.Errorf("flow %s crossed queues %v", key, lanes)
		}
		for lane := range lanes {
			used[lane]++
		}
	}
	mu.Unlock()
	t.Logf("%d flows over queues %v; %d of %d datagrams arrived", len(lanesOf), used, received, flows*each)
	if len(lanesOf) != flows {
		t.Errorf("saw %d flows, sent %d", len(lanesOf), flows)
	}
	if len(used) < 2 {
		t.Errorf("all flows on one queue: %v", used)
	}
	// Relay B's lanes: which took what A sent.
	var inB []uint64
	for _, s := range tn.rb.Stats() {
		inB = append(inB, s.UDPToTun)
	}
	t.Logf("relay B's lanes took %v from the peer", inB)
	if portPerLane && (inB[0] == 0 || inB[1] == 0) {
		t.Errorf("with a port per lane, relay B's lanes took %v: not spread", inB)
	}
	if received < flows*each*9/10 {
		t.Errorf("%d of %d datagrams arrived", received, flows*each)
	}

	if err := tn.ra.CloseLane(0); err != nil {
		t.Fatal(err)
	}
	if err := tn.rb.CloseLane(0); err != nil {
		t.Fatal(err)
	}
	if sent, got := ping(t, tn.a, 10, "10.99.0.2"); got < sent-1 {
		t.Fatalf("after closing queue 0 on both sides: %d of %d pings answered", got, sent)
	}
}
