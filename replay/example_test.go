package replay_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"
	"time"

	"github.com/tundra-go/tundra/replay"
	"github.com/tundra-go/tundra/tun"
)

// Replay a capture into a TUN device and print what the kernel did with
// each packet (what `tunbench replay -v FILE` shows). The device must be up
// with 198.18.0.1/24 and fd00:7e57::1/64; needs CAP_NET_ADMIN.
func ExampleRun() {
	dev, err := tun.Open(tun.Config{Name: "replay0"})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	// ... bring replay0 up and give it its addresses (package nl) ...

	s, err := replay.Run(context.Background(), replay.Options{
		Device: dev,
		File:   "capture.pcapng",
		Pace:   replay.PaceCaptured,
		MaxGap: time.Second,
		Rewrite: replay.RewriteConfig{Prefixes: []netip.Prefix{
			netip.MustParsePrefix("198.18.0.1/24"),
			netip.MustParsePrefix("fd00:7e57::1/64"),
		}},
	})
	if err != nil {
		log.Print(err) // the summary holds what happened up to the error
	}
	s.PrintPackets(os.Stdout)
	s.Print(os.Stdout)
}

// Capture what a device reads into a file that tcpdump -r opens, until
// interrupted or 100 packets were recorded.
func ExampleCapture() {
	dev, err := tun.Open(tun.Config{Name: "capture0"})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	out, err := os.Create("capture0.pcap")
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	st, err := replay.Capture(ctx, replay.CaptureOptions{Device: dev, Output: out, Count: 100})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d packets written, %d dropped\n", st.Recorder.Packets, st.Recorder.Dropped)
}

// An expectation says what the kernel must do with each record; Check
// compares it with what Run saw.
func ExampleParseExpect() {
	f, err := os.Open("../testdata/pcaps/udp.pcap.expect")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	e, err := replay.ParseExpect(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("capture:", e.Capture, "listen:", e.Listen)
	for _, p := range e.Packets {
		fmt.Println(p.Number, p.String())
	}
	// Output:
	// capture: udp.pcap listen: [{udp 5301}]
	// 1 delivered udp 5301
	// 2 delivered udp 5301
	// 3 answered port-unreachable
	// 4 answered port-unreachable
	// 5 skipped non-ip
}
