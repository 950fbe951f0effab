// Command tunbench is the benchmark to run first: it shows what Tundra
// does on this machine, side by side with the other ways Go programs
// move packets through TUN devices, and it is the yardstick for every
// performance change.
//
// Run it as root (it creates network namespaces and TUN devices, and
// removes them):
//
//	go build -o /tmp/tunbench ./cmd/tunbench && sudo /tmp/tunbench
//
// With no arguments it runs the default suite (a minute or two) and prints
// a table; -json prints one JSON document instead. See -h for the flags
// and docs/benchmarks.md for the method and how to read the results.
//
// Usage:
//
//	tunbench [flags]            run the benchmarks (same as tunbench bench)
//	tunbench bench [flags]
//	tunbench replay [flags] FILE
//	tunbench capture -o FILE [flags] [-- COMMAND [ARGS]]
//	tunbench help
//
// The scenarios (-scenarios):
//
//	rx       the kernel sends UDP out through the TUN device; the engine reads
//	rx-gso   the same, the generator sending with UDP GSO (UDP_SEGMENT)
//	tx       the engine writes prebuilt IPv4/IPv6 UDP packets into the device
//	fwd      two namespaces joined only by two TUN devices and the engine: UDP
//	fwd-tcp  the same path, one TCP stream (iperf3)
//	tun2udp  one TCP stream through two UDP relays joined by a veth pair
//	rr       request/response through a reflector: latency percentiles
//
// The engines (-engines): tundra (this library's loop), tundra-gso (the
// same with offloads), blocking (one read or write per packet on a locked
// thread: the reference), netpoll (an *os.File on Go's netpoller, as
// songgao/water does) and wireguard-go (golang.zx2c4.com/wireguard/tun,
// batch API and offloads on). -queues 1,2 runs tundra and tundra-gso on
// one- and two-queue devices (one loop per queue) side by side; the
// Mpkt/cpu-s column compares their cost per packet. tundra-uring, not in
// the default list, is tundra with its loop on io_uring
// (loop.BackendURing); it fails rather than measure epoll where io_uring
// is unavailable.
//
// tunbench replay writes a capture into a fresh device in a private
// namespace (package replay) and prints what the kernel did with each
// packet; tunbench capture writes what the kernel sends through a fresh
// device, while a command runs in its namespace, to a pcap file. Both say
// more with -h.
package main
