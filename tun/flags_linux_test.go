package tun_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/tun"
)

// x/sys/unix generates its IFF_* constants from the kernel headers; the
// hand-written Flags must agree with them.
func TestFlagsMatchXSys(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    tun.Flags
		sys  int
	}{
		{"IFF_TUN", tun.FlagTUN, unix.IFF_TUN},
		{"IFF_TAP", tun.FlagTAP, unix.IFF_TAP},
		{"IFF_NAPI", tun.FlagNAPI, unix.IFF_NAPI},
		{"IFF_NAPI_FRAGS", tun.FlagNAPIFrags, unix.IFF_NAPI_FRAGS},
		{"IFF_NO_CARRIER", tun.FlagNoCarrier, unix.IFF_NO_CARRIER},
		{"IFF_NO_PI", tun.FlagNoPI, unix.IFF_NO_PI},
		{"IFF_ONE_QUEUE", tun.FlagOneQueue, unix.IFF_ONE_QUEUE},
		{"IFF_VNET_HDR", tun.FlagVnetHdr, unix.IFF_VNET_HDR},
		{"IFF_TUN_EXCL", tun.FlagTunExcl, unix.IFF_TUN_EXCL},
		{"IFF_MULTI_QUEUE", tun.FlagMultiQueue, unix.IFF_MULTI_QUEUE},
		{"IFF_ATTACH_QUEUE", tun.FlagAttachQueue, unix.IFF_ATTACH_QUEUE},
		{"IFF_DETACH_QUEUE", tun.FlagDetachQueue, unix.IFF_DETACH_QUEUE},
		{"IFF_PERSIST", tun.FlagPersist, unix.IFF_PERSIST},
		{"IFF_NOFILTER", tun.FlagNoFilter, unix.IFF_NOFILTER},
	} {
		if int(tc.f) != tc.sys {
			t.Errorf("%s: tun has %#04x, x/sys/unix has %#04x", tc.name, uint16(tc.f), tc.sys)
		}
	}
}
