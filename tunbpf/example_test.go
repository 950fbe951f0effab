package tunbpf_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/tunbpf"
)

// Keep only IPv6 UDP to one subnet, never DNS, and read at most the first
// 128 bytes of each packet. Needs CAP_NET_ADMIN for the device and CAP_BPF
// (or root) to load the program.
func ExampleAttachFilter() {
	dev, err := tun.Open(tun.Config{Name: "tundra%d"})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()

	prog, err := tunbpf.Filter{
		Family:        tunbpf.IPv6Only,
		Protocols:     []uint8{17},
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("fd00:1::/64")},
		DropPorts:     []uint16{53},
		SnapLen:       128,
	}.Program()
	if err != nil {
		log.Fatal(err) // e.g. "tunbpf: Filter.Program: ...: operation not permitted (loading a socket filter needs CAP_BPF ...)"
	}
	// The kernel keeps its own reference once attached.
	defer prog.Close()
	if err := tunbpf.AttachFilter(dev, prog); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			log.Fatal("this kernel cannot filter TUN traffic with eBPF: ", err)
		}
		log.Fatal(err)
	}
	// ... read from dev.Queues()[0] as usual; unwanted packets never arrive.

	// Back to full delivery.
	if err := dev.ClearFilterProgram(); err != nil {
		log.Fatal(err)
	}
}

// Filter a device of the front door for as long as the Link is open: only
// TCP and UDP to ports 80 and 443 reach its queues. Needs CAP_NET_ADMIN
// and CAP_BPF (or root).
func ExampleLinkFilter() {
	dev, err := tundra.Create("198.18.0.1/24")
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	prog, err := tunbpf.Filter{Protocols: []uint8{6, 17}, AllowPorts: []uint16{80, 443}}.Program()
	if err != nil {
		log.Fatal(err)
	}
	defer prog.Close() // the kernel keeps its own reference once attached
	link, err := tunbpf.LinkFilter(dev, prog)
	if err != nil {
		log.Fatal(err)
	}
	// ... read from dev's queues as usual; other packets never arrive.

	// Detach: every packet is delivered again. Deferring it before
	// dev.Close is as good.
	if err := link.Close(); err != nil {
		log.Fatal(err)
	}
}

// Spread flows over four queues, one reader per queue.
func ExampleAttachSteering() {
	dev, err := tun.Open(tun.Config{Name: "tundra%d", MultiQueue: true})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	for range 3 {
		if _, err := dev.AddQueue(); err != nil {
			log.Fatal(err)
		}
	}
	prog, err := tunbpf.FlowSteering{Seed: 0x9e3779b9}.Program() // pick a random seed
	if err != nil {
		log.Fatal(err)
	}
	defer prog.Close()
	if err := tunbpf.AttachSteering(dev, prog); err != nil {
		log.Fatal(err)
	}
	for i, q := range dev.Queues() {
		go func() {
			buf := make([]byte, 65535)
			for {
				n, err := q.Read(buf)
				_, _ = n, err // every packet of one flow arrives on this queue
			}
		}()
		log.Printf("reader %d on fd %d", i, q.Fd())
	}
}

// Load a filter compiled from C (clang -O2 -target bpf -c filter.c) whose
// function is marked SEC("socket").
func ExampleLoadProgram() {
	prog, err := tunbpf.LoadProgram("filter.o", "socket")
	if err != nil {
		log.Fatal(err)
	}
	defer prog.Close()
	fmt.Println(prog.Type())
}

// What the ready-made filter assembles to, without loading it.
func ExampleFilter_Spec() {
	spec, err := tunbpf.Filter{SnapLen: 96}.Spec()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(spec.Type, len(spec.Instructions), "instructions, the last one", spec.Instructions[len(spec.Instructions)-1])
	// Output: SocketFilter 6 instructions, the last one Exit
}
