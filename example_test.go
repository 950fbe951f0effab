package tundra_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/loop"
)

// Create a configured IPv6 device: up, addressed, usable at once.
func ExampleCreate() {
	dev, err := tundra.Create("fd11:b7b7:4360::2/64",
		tundra.Peer("fd11:b7b7:4360::1"), tundra.MTU(1400), tundra.Name("tundra%d"))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	fmt.Println(dev.Name(), dev.Index(), dev.Addr(), dev.Peer())
}

// Bad arguments are refused before anything reaches the kernel, with an
// error naming the argument.
func ExampleCreate_badArgument() {
	_, err := tundra.Create(netip.MustParseAddr("fd00::1"), tundra.MTU(1000))
	var e *tundra.Error
	if errors.As(err, &e) && errors.Is(err, tundra.ErrInvalidArgument) {
		fmt.Println("refused argument:", e.Arg)
	}
	// Output: refused argument: mtu
}

// Read packets on a loop: the callback runs on the loop's thread whenever
// the device has packets, and drains them in batches.
func ExampleDevice_Attach() {
	dev, err := tundra.Create("10.9.0.1/24", tundra.Peer("10.9.0.2"))
	if err != nil {
		log.Fatal(err)
	}
	l, err := loop.New()
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close() // closes the device it owns too

	bufs, sizes := make([][]byte, 64), make([]int, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 65536)
	}
	err = dev.Attach(l, func(q *tundra.Queue, ev loop.Events) {
		for {
			n, err := q.RecvBatch(bufs, sizes, 0)
			if err != nil {
				return // ErrWouldBlock: called again when packets arrive
			}
			for i := range n {
				fmt.Printf("%d-byte packet\n", sizes[i])
			}
			if n < len(bufs) {
				return // ran dry: the callback is armed again
			}
		}
	})
	if err != nil {
		log.Fatal(err)
	}
}
