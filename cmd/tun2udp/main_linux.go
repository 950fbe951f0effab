package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tundra-go/tundra/internal/relay"
)

func main() {
	var (
		addr    = flag.String("addr", "", "the device's address and prefix, e.g. 10.99.0.1/24 (required)")
		peer    = flag.String("peer", "", "point-to-point peer address (optional)")
		name    = flag.String("name", "", "interface name (default: the kernel's choice)")
		mtu     = flag.Int("mtu", 1420, "device MTU: leave room for the outer IP and UDP headers")
		queues  = flag.Int("queues", 1, "device queues, one loop and one UDP socket each")
		perLane = flag.Bool("port-per-lane", true, "queue i uses -local's port + i and sends to -remote's port + i, so traffic from the peer spreads over the queues too (both ends need the same -queues); false: the queues share -local's port and everything from the peer enters through one")
		local   = flag.String("local", "", "local UDP address:port to bind (required)")
		remote  = flag.String("remote", "", "the peer's UDP address:port (required)")
		gso     = flag.Bool("gso", true, "coalesce runs to the peer with UDP segmentation offload")
		gro     = flag.Bool("gro", true, "have the kernel coalesce datagrams from the peer (UDP GRO)")
		offload = flag.Bool("offloads", true, "give the device TCP/UDP segmentation offloads (super-packets in and out)")
		pin     = flag.Bool("pin", false, "pin queue i's loop to CPU i")
		every   = flag.Duration("stats", 0, "print statistics at this interval (0: only on SIGUSR1)")
	)
	flag.Parse()
	var missing []string
	for _, f := range []struct {
		name, value string
	}{{"-addr", *addr}, {"-local", *local}, {"-remote", *remote}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "tun2udp: missing %s (-addr, -local and -remote are required)\n", strings.Join(missing, ", "))
		flag.Usage()
		os.Exit(2)
	}
	usage := func(flagName string, err error) {
		fmt.Fprintf(os.Stderr, "tun2udp: %s: %v (want address:port, e.g. 192.0.2.1:5555 or [2001:db8::1]:5555)\n", flagName, err)
		os.Exit(2)
	}
	l, err := netip.ParseAddrPort(*local)
	if err != nil {
		usage("-local", err)
	}
	rm, err := netip.ParseAddrPort(*remote)
	if err != nil {
		usage("-remote", err)
	}
	// Signals are caught from before the device exists: a SIGTERM that
	// arrives as soon as the start line is printed still closes the relay
	// cleanly.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	r, err := relay.Start(relay.Config{Addr: *addr, Peer: *peer, Name: *name, MTU: *mtu, Queues: *queues,
		Local: l, Remote: rm, PortPerLane: *perLane, GSO: *gso, GRO: *gro, Offloads: *offload, Pin: *pin})
	if err != nil {
		fmt.Fprintf(os.Stderr, "tun2udp: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "tun2udp: %s (%s) <-> udp %s -> %s, %d queue(s)\n", r.Device().Name(), *addr, l, rm, *queues)

	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGUSR1 {
				printStats(r)
				continue
			}
			printStats(r)
			if err := r.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "tun2udp: close: %v\n", err)
				os.Exit(1)
			}
			return
		case <-tick:
			printStats(r)
		}
	}
}

func printStats(r *relay.Relay) {
	for i, s := range r.Stats() {
		fmt.Fprintf(os.Stderr, "queue %d: tun->udp %d (dropped %d, refused %d), udp->tun %d (dropped %d)\n",
			i, s.TunToUDP, s.DroppedToUDP, s.UDPSendErrors, s.UDPToTun, s.DroppedToTun)
	}
}
