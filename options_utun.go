package tundra

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tundra-go/tundra/utun"
)

// utunUnit checks a request against what a macOS utun device can be and
// returns the unit to ask for (utun.AnyUnit when the kernel may choose). It
// is pure, so the rules are tested on every platform.
func utunUnit(s plan) (int, error) {
	refuse := func(arg, why string) (int, error) {
		return 0, argError(arg, errors.New(why))
	}
	switch {
	case s.tun.TAP:
		return refuse("tap", "macOS utun devices are layer 3 only: there is no TAP")
	case s.tun.PacketInfo:
		return refuse("packet info", "macOS utun devices carry their own 4-byte address-family header, not the Linux PI header")
	case s.persist, s.owner >= 0, s.group >= 0:
		return refuse("persist", "macOS utun devices live exactly as long as their socket: no persistence, owner or group")
	case s.queues > 1:
		return refuse("queues", "macOS utun devices have one queue")
	case s.tun.VnetHdr:
		return refuse("offloads", "macOS utun devices have no virtio-net header offloads")
	case s.peer.IsValid() && s.local.Is6() && s.bits != 128:
		return refuse("prefix length", fmt.Sprintf("on macOS an IPv6 address with a peer must be /128 (XNU refuses /%d), the peer being the route", s.bits))
	}
	name := s.tun.Name
	if name == "" || name == "utun%d" {
		return utun.AnyUnit, nil
	}
	if strings.Contains(name, "%") {
		return refuse("name", fmt.Sprintf("%q: on macOS the only pattern is utun%%d", name))
	}
	unit, err := utun.ParseName(name)
	if err != nil {
		return refuse("name", fmt.Sprintf("%q: macOS utun devices are named utunN", name))
	}
	return unit, nil
}
