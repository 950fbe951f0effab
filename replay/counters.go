package replay

import (
	"bufio"
	"bytes"
	"sort"
	"strconv"
	"strings"
)

// Counter is the change of one of the kernel's network counters, named as
// nstat names them ("Udp6InCsumErrors", "IpInAddrErrors"); the device's own
// receive counters from /proc/net/dev are "DevRxDrop" and "DevRxErrs".
type Counter struct {
	Name  string
	Delta int64
}

// counterSet is one reading of the counters.
type counterSet map[string]uint64

// dropCounters are the counters whose rise means the kernel threw a
// received packet away. Udp NoPorts is not one of them: it goes with an ICMP
// port unreachable, which is an answer (and counts as a drop only when no
// answer came, because of ICMP rate limits).
var dropCounters = map[string]bool{
	"IpInHdrErrors": true, "IpInAddrErrors": true, "IpInUnknownProtos": true,
	"IpInDiscards": true, "IpReasmFails": true,
	"IcmpInErrors": true, "IcmpInCsumErrors": true,
	"TcpInErrs": true, "TcpInCsumErrors": true,
	"UdpInErrors": true, "UdpRcvbufErrors": true, "UdpInCsumErrors": true, "UdpNoPorts": true,
	"UdpLiteInErrors": true, "UdpLiteInCsumErrors": true, "UdpLiteNoPorts": true,
	"Ip6InHdrErrors": true, "Ip6InTooBigErrors": true, "Ip6InNoRoutes": true,
	"Ip6InAddrErrors": true, "Ip6InUnknownProtos": true, "Ip6InTruncatedPkts": true,
	"Ip6InDiscards": true, "Ip6ReasmFails": true,
	"Icmp6InErrors": true, "Icmp6InCsumErrors": true,
	"Udp6InErrors": true, "Udp6NoPorts": true, "Udp6RcvbufErrors": true, "Udp6InCsumErrors": true,
	"UdpLite6InErrors": true, "UdpLite6NoPorts": true, "UdpLite6InCsumErrors": true,
	"DevRxDrop": true, "DevRxErrs": true,
}

// deliverCounters rise when the IP layer hands a datagram to its
// upper-layer protocol. Linux counts UdpInDatagrams only when the
// application reads the datagram, at a time of the application's choosing,
// so it says nothing about the packet just written. A UDP datagram counts
// as delivered to a socket when IP delivered it and UDP counted no error
// (no port, bad checksum, full receive buffer: all drop counters).
//
// One blind spot: Linux verifies the checksum of a UDP datagram longer than
// 76 bytes only when the socket reads it, so such a datagram with a bad
// checksum, sent to a listening socket, looks delivered at write time; its
// Udp(6)InCsumErrors rises later, if ever.
var deliverCounters = map[string]bool{"IpInDelivers": true, "Ip6InDelivers": true}

const protoUDPLite = 136

// parseSnmp reads /proc/net/snmp: pairs of lines "Proto: Name Name ..."
// and "Proto: value value ...". Names get the protocol as prefix.
func parseSnmp(b []byte, into counterSet) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var names []string
	var proto string
	for sc.Scan() {
		line := sc.Text()
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if names == nil || p != proto {
			names, proto = fields, p
			continue
		}
		for i, f := range fields {
			if i >= len(names) {
				break
			}
			if v, err := strconv.ParseInt(f, 10, 64); err == nil {
				into[p+names[i]] = uint64(v)
			}
		}
		names = nil
	}
}

// parseSnmp6 reads /proc/net/snmp6: "Name value" lines.
func parseSnmp6(b []byte, into counterSet) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			into[f[0]] = v
		}
	}
}

// parseNetDev reads the receive counters of one device from /proc/net/dev.
func parseNetDev(b []byte, dev string, into counterSet) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != dev {
			continue
		}
		// rx: bytes packets errs drop fifo frame compressed multicast
		f := strings.Fields(rest)
		if len(f) < 4 {
			return
		}
		for i, n := range map[int]string{1: "DevRxPackets", 2: "DevRxErrs", 3: "DevRxDrop"} {
			if v, err := strconv.ParseUint(f[i], 10, 64); err == nil {
				into[n] = v
			}
		}
		return
	}
}

// diff lists the counters that changed from a to b, sorted by name.
func diff(a, b counterSet) []Counter {
	var out []Counter
	for k, v := range b {
		if d := int64(v - a[k]); d != 0 {
			out = append(out, Counter{k, d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// classify turns one packet's counter changes into a verdict for a packet
// of upper-layer protocol proto that was written and not answered.
func classify(cs []Counter, proto uint8) Verdict {
	udp := proto == protoUDP || proto == protoUDPLite
	var reasmReq, reasmDone bool
	for _, c := range cs {
		if c.Delta > 0 && dropCounters[c.Name] {
			return VerdictDropped
		}
	}
	for _, c := range cs {
		if c.Delta <= 0 {
			continue
		}
		switch {
		case deliverCounters[c.Name] && udp:
			return VerdictDelivered
		case c.Name == "IpReasmReqds", c.Name == "Ip6ReasmReqds":
			reasmReq = true
		case c.Name == "IpReasmOKs", c.Name == "Ip6ReasmOKs":
			reasmDone = true
		}
	}
	if reasmReq && !reasmDone {
		return VerdictQueued
	}
	return VerdictAccepted
}
