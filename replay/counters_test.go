package replay

import (
	"reflect"
	"testing"
)

const snmpSample = `Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors
Ip: 2 64 10 1 2
Icmp: InMsgs InErrors InCsumErrors
Icmp: 3 0 0
Udp: InDatagrams NoPorts InErrors InCsumErrors
Udp: 5 1 2 2
`

const snmp6Sample = `Ip6InReceives                   	7
Ip6InTruncatedPkts              	1
Udp6InCsumErrors                	3
broken line
`

const netDevSample = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
   rp0:     300       4    1    2    0     0          0         0      100       1    0    0    0     0       0          0
`

func TestParseCounters(t *testing.T) {
	cs := counterSet{}
	parseSnmp([]byte(snmpSample), cs)
	parseSnmp6([]byte(snmp6Sample), cs)
	parseNetDev([]byte(netDevSample), "rp0", cs)
	want := counterSet{
		"IpForwarding": 2, "IpDefaultTTL": 64, "IpInReceives": 10, "IpInHdrErrors": 1, "IpInAddrErrors": 2,
		"IcmpInMsgs": 3, "IcmpInErrors": 0, "IcmpInCsumErrors": 0,
		"UdpInDatagrams": 5, "UdpNoPorts": 1, "UdpInErrors": 2, "UdpInCsumErrors": 2,
		"Ip6InReceives": 7, "Ip6InTruncatedPkts": 1, "Udp6InCsumErrors": 3,
		"DevRxPackets": 4, "DevRxErrs": 1, "DevRxDrop": 2,
	}
	if !reflect.DeepEqual(cs, want) {
		t.Errorf("parsed\n%v\nwant\n%v", cs, want)
	}
	after := counterSet{}
	for k, v := range cs {
		after[k] = v
	}
	after["Udp6InCsumErrors"] += 2
	after["IpInReceives"]++
	after["NewOne"] = 1
	got := diff(cs, after)
	wantDiff := []Counter{{"IpInReceives", 1}, {"NewOne", 1}, {"Udp6InCsumErrors", 2}}
	if !reflect.DeepEqual(got, wantDiff) {
		t.Errorf("diff %v, want %v", got, wantDiff)
	}
	if Delta(got, "Udp6InCsumErrors") != 2 || Delta(got, "Absent") != 0 {
		t.Errorf("Delta")
	}
}

func TestClassify(t *testing.T) {
	c := func(names ...string) []Counter {
		var cs []Counter
		for _, n := range names {
			cs = append(cs, Counter{n, 1})
		}
		return cs
	}
	tests := []struct {
		name  string
		cs    []Counter
		proto uint8
		want  Verdict
	}{
		{"checksum error", c("Ip6InDelivers", "Udp6InCsumErrors", "Udp6InErrors"), protoUDP, VerdictDropped},
		{"not for us", c("Ip6InReceives", "Ip6InAddrErrors"), protoTCP, VerdictDropped},
		{"udp queued to a socket", c("Ip6InReceives", "Ip6InDelivers"), protoUDP, VerdictDelivered},
		{"tcp taken in", c("IpInReceives", "IpInDelivers", "TcpInSegs"), protoTCP, VerdictAccepted},
		{"first fragment", c("Ip6InReceives", "Ip6ReasmReqds"), protoUDP, VerdictQueued},
		{"last fragment", c("Ip6InReceives", "Ip6ReasmReqds", "Ip6ReasmOKs", "Ip6InDelivers"), protoUDP, VerdictDelivered},
		{"nothing", nil, protoICMPv6, VerdictAccepted},
		{"a counter that fell", []Counter{{"UdpInErrors", -1}}, protoUDP, VerdictAccepted},
	}
	for _, tc := range tests {
		if got := classify(tc.cs, tc.proto); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
