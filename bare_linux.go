package tundra

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"

	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/vnet"
)

// createBare opens the device CreateBare asks for: createDirect's steps
// without the address and the link going up.
func createBare(s plan) (_ *Device, err error) {
	runtime.LockOSThread() // the device and the netlink socket share a namespace
	defer runtime.UnlockOSThread()

	name := s.tun.Name
	fail := func(step string, cause error) error {
		return &Error{Op: "create", Name: name, Err: fmt.Errorf("%s: %w", step, cause)}
	}
	c, err := nl.Dial()
	if err != nil {
		return nil, fail("netlink", err)
	}
	defer c.Close()
	existed := false
	if name != "" && !strings.Contains(name, "%") {
		_, lerr := c.LinkByName(name)
		existed = lerr == nil
	}

	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		var cleanup []error
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				cleanup = append(cleanup, uerr)
			}
		}
		if len(cleanup) > 0 {
			err = fmt.Errorf("%w; cleanup also failed: %w", err, errors.Join(cleanup...))
		}
	}()

	t, err := tun.Open(s.tun)
	if err != nil {
		return nil, fail("open", err)
	}
	undo = append(undo, t.Close)
	name = t.Name()
	for i := 1; i < s.queues; i++ {
		if _, err := t.AddQueue(); err != nil {
			return nil, fail(fmt.Sprintf("queue %d of %d", i+1, s.queues), err)
		}
	}
	var notes []string
	if s.tun.VnetHdr {
		if _, notes, err = negotiateOffloads(t, s.offloads); err != nil {
			return nil, fail("offloads", err)
		}
	}
	link, err := c.LinkByName(name)
	if err != nil {
		return nil, fail("look up", err)
	}
	if s.mtu != 0 && s.mtu != link.MTU {
		if err := c.SetLinkMTU(link.Index, s.mtu); err != nil {
			return nil, fail(fmt.Sprintf("set mtu %d", s.mtu), err)
		}
		if existed {
			old := link.MTU
			undo = append(undo, func() error { return c.SetLinkMTU(link.Index, old) })
		}
	}
	// Ownership and persistence last, as in createDirect.
	if s.owner >= 0 {
		if err := t.SetOwner(s.owner); err != nil {
			return nil, fail("owner", err)
		}
	}
	if s.group >= 0 {
		if err := t.SetGroup(s.group); err != nil {
			return nil, fail("group", err)
		}
	}
	if s.persist {
		if err := t.SetPersist(true); err != nil {
			return nil, fail("persist", err)
		}
	}
	d := newDevice(t, name, link.Index, netip.Prefix{}, netip.Addr{}, s.tun.PacketInfo)
	if s.tun.VnetHdr {
		d.enableOffloads(vnet.Offloads{}, vnet.MaxSegments, append(notes,
			"bare device: no address to probe coalesced writes with, so writes are not coalesced (reads still split the kernel's super-packets)"))
	}
	return d, nil
}
