package nl

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// stats64Golden is a struct rtnl_link_stats64 of a 5.19 or later kernel
// (25 counters, 200 bytes), written out by hand from
// include/uapi/linux/if_link.h. Every counter has its own value, and the
// byte counters need more than 32 bits, so a misplaced or truncated field
// shows.
const stats64Golden = `
	0100000000000000 // rx_packets 1
	0200000000000000 // tx_packets 2
	8967452301000000 // rx_bytes 0x123456789
	efcdab8967452301 // tx_bytes 0x0123456789abcdef
	0500000000000000 // rx_errors 5
	0600000000000000 // tx_errors 6
	0700000000000000 // rx_dropped 7
	0800000000000000 // tx_dropped 8
	0900000000000000 // multicast 9
	0a00000000000000 // collisions 10
	0b00000000000000 // rx_length_errors 11
	0c00000000000000 // rx_over_errors 12
	0d00000000000000 // rx_crc_errors 13
	0e00000000000000 // rx_frame_errors 14
	0f00000000000000 // rx_fifo_errors 15
	1000000000000000 // rx_missed_errors 16
	1100000000000000 // tx_aborted_errors 17
	1200000000000000 // tx_carrier_errors 18
	1300000000000000 // tx_fifo_errors 19
	1400000000000000 // tx_heartbeat_errors 20
	1500000000000000 // tx_window_errors 21
	1600000000000000 // rx_compressed 22
	1700000000000000 // tx_compressed 23
	1800000000000000 // rx_nohandler 24 (Linux 4.6)
	1900000000000000 // rx_otherhost_dropped 25 (Linux 5.19)
`

// stats64GoldenWant is stats64Golden decoded.
var stats64GoldenWant = LinkStats{
	RxPackets: 1, TxPackets: 2, RxBytes: 0x123456789, TxBytes: 0x0123456789abcdef,
	RxErrors: 5, TxErrors: 6, RxDropped: 7, TxDropped: 8, Multicast: 9, Collisions: 10,
	RxLengthErrors: 11, RxOverErrors: 12, RxCRCErrors: 13, RxFrameErrors: 14, RxFIFOErrors: 15, RxMissedErrors: 16,
	TxAbortedErrors: 17, TxCarrierErrors: 18, TxFIFOErrors: 19, TxHeartbeatErrors: 20, TxWindowErrors: 21,
	RxCompressed: 22, TxCompressed: 23, RxNoHandler: 24, RxOtherhostDropped: 25,
}

func TestParseLinkStats64(t *testing.T) {
	skipUnlessLittleEndian(t)
	full := unhex(t, stats64Golden)
	if len(full) != 200 {
		t.Fatalf("golden struct is %d bytes, want 200", len(full))
	}
	// upTo is stats64GoldenWant with the counters from the n-th on zero,
	// as an older kernel that sends only n counters would give.
	upTo := func(n int) LinkStats {
		s := stats64GoldenWant
		for _, p := range s.fields()[n:] {
			*p = 0
		}
		return s
	}
	tests := []struct {
		name string
		in   []byte
		want LinkStats
	}{
		{"5.19 and later: 25 counters", full, stats64GoldenWant},
		{"4.6 to 5.18: no rx_otherhost_dropped", full[:192], upTo(24)},
		{"before 4.6: no rx_nohandler", full[:184], upTo(23)},
		{"the four packet and byte counters only", full[:32], upTo(4)},
		{"a future counter is ignored", append(bytes.Clone(full), unhex(t, "ffffffffffffffff")...), stats64GoldenWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLinkStats64(attr{Type: iflaStats64, Data: tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}

	for _, n := range []int{0, 8, 24, 31, 33, 100, 199, 201} {
		_, err := parseLinkStats64(attr{Type: iflaStats64, Data: make([]byte, n)})
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "attribute 23") || !strings.Contains(err.Error(), "multiple of 8") {
			t.Errorf("%d bytes: err = %v, want ErrMalformed naming attribute 23 and the multiple of 8", n, err)
		}
	}
}

// The whole RTM_NEWLINK payload, by hand: the statistics come after an
// IFLA_PAD (which the kernel inserts to align 64-bit values on some
// architectures) and an old 32-bit IFLA_STATS, which is not decoded.
func TestParseLinkWithStats64(t *testing.T) {
	skipUnlessLittleEndian(t)
	in := unhex(t, `
		00 00 0403 01000000 49000100 00000000 // ifinfomsg: ARPHRD_LOOPBACK, index 1, UP|LOOPBACK|RUNNING|LOWER_UP
		0700 0300 6c6f00 00                   // IFLA_IFNAME "lo\0", padded
		0800 0700 ffffffff                    // IFLA_STATS cut to one u32: not read
		0400 2a00                             // IFLA_PAD, empty
		2400 1700                             // IFLA_STATS64, nla_len 36: the first four counters only
		0a00000000000000 0b00000000000000     // rx_packets 10, tx_packets 11
		4803000000000000 0000000001000000     // rx_bytes 840, tx_bytes 1<<32
	`)
	got, err := parseLink(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Link{Index: 1, Name: "lo", Flags: 0x10049, Type: 772,
		Stats: &LinkStats{RxPackets: 10, TxPackets: 11, RxBytes: 840, TxBytes: 1 << 32}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLink = %+v (stats %+v)\nwant %+v (stats %+v)", got, got.Stats, want, want.Stats)
	}

	// Without IFLA_STATS64, as from a request with RTEXT_FILTER_SKIP_STATS
	// or a fake kernel, Stats stays nil rather than a zero struct.
	if got, err := parseLink(in[:sizeofIfInfomsg+8]); err != nil || got.Stats != nil || got.Name != "lo" {
		t.Errorf("without IFLA_STATS64: %+v, %v; want lo with nil Stats", got, err)
	}

	// A broken IFLA_STATS64 fails the whole link, as a broken IFLA_MTU does.
	bad := bytes.Clone(in)
	nativeEndian.PutUint16(bad[sizeofIfInfomsg+20:], 4+31) // nla_len 35: 31 bytes of counters
	if _, err := parseLink(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("31-byte IFLA_STATS64: %v, want ErrMalformed", err)
	}
}

// The fake kernel's encoder and parseLink agree, for a full struct and for
// a link without statistics.
func TestLinkStatsRoundTrip(t *testing.T) {
	for _, l := range []Link{
		{Index: 4, Name: "veth0", MTU: 1500, Type: 1, Stats: &stats64GoldenWant},
		{Index: 5, Name: "tun1", MTU: 1400, Type: 65534},
	} {
		got, err := parseLink(linkPayload(l))
		if err != nil || !reflect.DeepEqual(got, l) {
			t.Errorf("parseLink(linkPayload(%+v)) = %+v, %v", l, got, err)
		}
	}
}
