package tun_test

import (
	"testing"

	"github.com/tundra-go/tundra/tun"
)

func TestFlagsString(t *testing.T) {
	for _, tc := range []struct {
		f    tun.Flags
		want string
	}{
		{0, "0"},
		{tun.FlagTUN, "TUN"},
		{tun.FlagTAP, "TAP"},
		{tun.FlagTUN | tun.FlagNoPI | tun.FlagMultiQueue, "TUN|NO_PI|MULTI_QUEUE"},
		// IFF_NOFILTER has IFF_NO_PI's value; it prints under that name.
		{tun.FlagNoFilter, "NO_PI"},
		{tun.FlagTAP | tun.FlagVnetHdr | tun.FlagPersist, "TAP|VNET_HDR|PERSIST"},
		{tun.FlagAttachQueue, "ATTACH_QUEUE"},
		{tun.FlagDetachQueue, "DETACH_QUEUE"},
		{tun.FlagTunExcl | tun.FlagOneQueue, "ONE_QUEUE|TUN_EXCL"},
		{tun.FlagNAPI | tun.FlagNAPIFrags | tun.FlagNoCarrier, "NAPI|NAPI_FRAGS|NO_CARRIER"},
		// What TUNGETFEATURES answered on Linux 6.18.
		{0x7173, "TUN|TAP|NAPI|NAPI_FRAGS|NO_CARRIER|NO_PI|ONE_QUEUE|VNET_HDR|MULTI_QUEUE"},
		// Bits if_tun.h does not define come out as one hex number.
		{0x0008, "0x8"},
		{tun.FlagTUN | 0x0088, "TUN|0x88"},
		{0xffff, "TUN|TAP|NAPI|NAPI_FRAGS|NO_CARRIER|NO_PI|ONE_QUEUE|VNET_HDR|TUN_EXCL|MULTI_QUEUE|ATTACH_QUEUE|DETACH_QUEUE|PERSIST|0x8c"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("Flags(%#04x).String() = %q, want %q", uint16(tc.f), got, tc.want)
		}
	}
}

// The values are written out by hand so they compile on darwin; pin them to
// linux/if_tun.h here (flags_linux_test.go also compares them with x/sys).
func TestFlagValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    tun.Flags
		want uint16
	}{
		{"IFF_TUN", tun.FlagTUN, 0x0001},
		{"IFF_TAP", tun.FlagTAP, 0x0002},
		{"IFF_NAPI", tun.FlagNAPI, 0x0010},
		{"IFF_NAPI_FRAGS", tun.FlagNAPIFrags, 0x0020},
		{"IFF_NO_CARRIER", tun.FlagNoCarrier, 0x0040},
		{"IFF_NO_PI", tun.FlagNoPI, 0x1000},
		{"IFF_ONE_QUEUE", tun.FlagOneQueue, 0x2000},
		{"IFF_VNET_HDR", tun.FlagVnetHdr, 0x4000},
		{"IFF_TUN_EXCL", tun.FlagTunExcl, 0x8000},
		{"IFF_MULTI_QUEUE", tun.FlagMultiQueue, 0x0100},
		{"IFF_ATTACH_QUEUE", tun.FlagAttachQueue, 0x0200},
		{"IFF_DETACH_QUEUE", tun.FlagDetachQueue, 0x0400},
		{"IFF_PERSIST", tun.FlagPersist, 0x0800},
		{"IFF_NOFILTER", tun.FlagNoFilter, 0x1000},
	} {
		if uint16(tc.f) != tc.want {
			t.Errorf("%s = %#04x, want %#04x", tc.name, uint16(tc.f), tc.want)
		}
	}
}
