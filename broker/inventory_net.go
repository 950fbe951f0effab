//go:build unix

package broker

import (
	"fmt"
	"net"
	"net/netip"
)

// netInventory reads the host's interfaces through the standard library
// (getifaddrs on macOS and the BSDs); the default where rtnetlink is
// missing. It does not report point-to-point
// peers, which the routing socket would; a member's request is checked
// against the local prefixes only.
type netInventory struct{}

func (netInventory) HostAddrs() ([]HostAddr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing host interfaces: %w", err)
	}
	var out []HostAddr
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("listing the addresses of %s: %w", ifi.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			bits, _ := ipn.Mask.Size()
			out = append(out, HostAddr{Name: ifi.Name, Index: ifi.Index, Prefix: netip.PrefixFrom(ip.Unmap(), bits)})
		}
	}
	return out, nil
}

// HostRoutes returns no routes: the standard library cannot list them, so
// where this inventory is the default (macOS and the BSDs) a member's
// request is not checked against the routing table. Give such a host an
// allowed-prefix policy that no route of its uses.
func (netInventory) HostRoutes() ([]HostRoute, error) { return nil, nil }

func (netInventory) LinkExists(index int) (bool, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return false, fmt.Errorf("listing host interfaces: %w", err)
	}
	for _, ifi := range ifs {
		if ifi.Index == index {
			return true, nil
		}
	}
	return false, nil
}
