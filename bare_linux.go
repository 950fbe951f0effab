package tundra

import (
	"net/netip"

	"github.com/tundra-go/tundra/vnet"
)

// createBare opens the device CreateBare asks for: createDirect's steps
// without the address and the link going up (bareSteps).
func createBare(s plan) (*Device, error) {
	cr, err := runSteps(s, bareSteps)
	if err != nil {
		return nil, err
	}
	d := newDevice(cr.t, cr.t.Name(), cr.link.Index, netip.Prefix{}, netip.Addr{}, s.tun.PacketInfo)
	if s.tun.VnetHdr {
		d.enableOffloads(vnet.Offloads{}, vnet.MaxSegments, append(cr.notes,
			"bare device: no address to probe coalesced writes with, so writes are not coalesced (reads still split the kernel's super-packets)"))
	}
	return d, nil
}
