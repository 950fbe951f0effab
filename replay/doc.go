// Package replay replays packet captures into a TUN device and captures
// what a device carries into a pcap file, so that users can see what the
// kernel does with given packets: whether it answers them, delivers them to
// a socket, drops them, or refuses them on write.
//
// The exported surface is what a test that replays captures needs: Run
// with its Options and Summary, Capture, and the expectation files
// (Expect). Reading, rewriting and checksumming are Run's internals.
//
// # Reading captures
//
// Run reads classic pcap (either byte order, micro- or nanosecond
// timestamps) and pcapng files, gzipped or not, with
// github.com/google/gopacket/pcapgo, which is pure Go: no cgo, no libpcap.
// It takes the link-layer header off each record: Ethernet (with
// 802.1Q/802.1ad tags; non-IP frames are skipped and counted), raw IP (link
// types 101, 228 and 229), Linux cooked captures (113 and 276) and BSD
// loopback (0 and 108). Malformed input gives errors wrapping ErrMalformed,
// never a panic.
//
// # Rewriting
//
// A capture taken elsewhere addresses other hosts. Options.Rewrite moves
// each conversation into the device's prefix, the host under test becoming
// the device's own address and every peer getting an address of its own, so
// that the kernel takes the packets as addressed to it and its answers come
// back through the device (see RewriteConfig). ChecksumFix recomputes the
// IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums; a packet whose bad
// checksum is the point of the test can be kept bad
// (Options.KeepBadChecksums), and rewriting keeps it bad by the same amount.
//
// # Replaying
//
// Run writes the packets into the device through an event loop (package
// loop), on the loop's thread, paced as captured (with loop timers) or as
// fast as possible, and reads the device on the same loop: each packet the
// kernel sends back is matched to the packet it answers (echo replies by
// identifier and sequence number, TCP segments by connection and
// acknowledgement number, ICMP errors by the packet they quote). Around
// each write Run reads the kernel's counters in the device's network
// namespace (/proc/net/snmp, snmp6 and dev), which tells a packet that was
// dropped (and why: Udp6InCsumErrors, Ip6InAddrErrors, ...) from one that
// was delivered to a socket or queued for reassembly. The Summary counts
// every verdict and prints per-packet outcomes on request.
//
// # Capturing
//
// Capture records what a device reads until told to stop, and Run does the
// same with Options.Capture: a pcap file of link type RAW with nanosecond
// timestamps, written off the loop's thread. tcpdump -r, tshark -r and Wireshark open
// the files.
//
// # Expectations
//
// Expect states what must happen to each record of a capture, in a small
// text format (see Expect); the captures in testdata/pcaps come with one
// each, written by the generator in internal/pcapgen.
//
// # Threads
//
// Run and Capture block their caller and may be called from any goroutine;
// all their I/O on the device happens on the loop's thread. ParseExpect and
// the methods of Expect and Summary touch nothing but their arguments. Linux is the only system with TUN
// devices here (package tun); elsewhere Run and Capture fail because no
// device can be opened, and the kernel counters are reported unavailable.
package replay

//go:generate go run ../internal/pcapgen -dir ../testdata/pcaps
