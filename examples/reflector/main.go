// Command reflector is the Go version of the GenServer in the Elixir
// Tundra's documentation: it creates a TUN device, reads each packet, swaps
// its IPv6 source and destination addresses, and writes it back.
//
// Ping the device's peer and every request comes back to the kernel as if
// the peer had sent it to the device's own address; the kernel answers, the
// answer is reflected too, and ping gets its reply from the peer:
//
//	go run ./examples/reflector -addr fd11:b7b7:4360::2/64 -peer fd11:b7b7:4360::1 &
//	ping -6 fd11:b7b7:4360::1
//
// It needs CAP_NET_ADMIN to create the device. Swapping the addresses
// leaves the ICMPv6, UDP and TCP checksums valid: the pseudo-header sums the
// two addresses, and a sum does not depend on their order.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/loop"
)

func main() {
	addr := flag.String("addr", "fd11:b7b7:4360::2/64", "the device's address and prefix")
	peer := flag.String("peer", "fd11:b7b7:4360::1", "the peer address to ping")
	name := flag.String("name", "", "interface name (default: the kernel's choice)")
	flag.Parse()

	r, err := startReflector(*addr, *peer, tundra.Name(*name))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("reflecting on %s (%s, peer %s); ping -6 %s\n", r.dev.Name(), *addr, *peer, *peer)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s := r.loop.Stats()
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("reflected %d packets (%d read, %d written) in %d loop rounds\n", r.reflected, s.PacketsIn, s.PacketsOut, s.Rounds)
}

// batch is how many packets one RecvBatch reads at most.
const batch = 64

// reflector owns one device on one loop. Its fields after loop and dev are
// touched only on the loop's thread.
type reflector struct {
	loop *loop.Loop
	dev  *tundra.Device

	bufs      [][]byte
	sizes     []int
	out       [][]byte
	reflected uint64
}

// startReflector creates the device, starts a loop and gives it the device.
func startReflector(addr, peer string, opts ...tundra.Option) (*reflector, error) {
	dev, err := tundra.Create(addr, append([]tundra.Option{tundra.Peer(peer)}, opts...)...)
	if err != nil {
		return nil, err
	}
	l, err := loop.New()
	if err != nil {
		dev.Close()
		return nil, err
	}
	r := &reflector{loop: l, dev: dev, bufs: make([][]byte, batch), sizes: make([]int, batch), out: make([][]byte, 0, batch)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, 65536)
	}
	if err := dev.Attach(l, r.onReady); err != nil {
		l.Close()
		dev.Close()
		return nil, err
	}
	return r, nil
}

// onReady drains the queue in batches and writes each IPv6 packet back
// with its addresses swapped. It runs on the loop's thread.
func (r *reflector) onReady(q *tundra.Queue, _ loop.Events) {
	for {
		n, err := q.RecvBatch(r.bufs, r.sizes, 0)
		if err != nil {
			if !errors.Is(err, tundra.ErrWouldBlock) {
				log.Printf("reflector: %v", err)
			}
			return // ErrWouldBlock: the callback is armed again
		}
		r.out = r.out[:0]
		for i := range n {
			if pkt := r.bufs[i][:r.sizes[i]]; swapIPv6(pkt) {
				r.out = append(r.out, pkt)
			}
		}
		for len(r.out) > 0 {
			sent, err := q.SendBatch(r.out, 0)
			r.reflected += uint64(sent)
			if err == nil {
				break
			}
			if errors.Is(err, tundra.ErrWouldBlock) {
				break // the kernel's queue is full: drop the rest, as a router would
			}
			r.out = r.out[sent+1:] // the kernel refused one packet: skip it
		}
		if n < len(r.bufs) {
			return // ran dry (or spent this round's budget): armed either way
		}
	}
}

// swapIPv6 exchanges the source and destination of an IPv6 packet in
// place. It leaves anything else alone and reports whether it swapped.
func swapIPv6(p []byte) bool {
	if len(p) < 40 || p[0]>>4 != 6 {
		return false
	}
	var tmp [16]byte
	copy(tmp[:], p[8:24])
	copy(p[8:24], p[24:40])
	copy(p[24:40], tmp[:])
	return true
}

// Close closes the loop, which closes the device it owns.
func (r *reflector) Close() error {
	err := r.loop.Close()
	if derr := r.dev.Close(); err == nil {
		err = derr
	}
	return err
}
