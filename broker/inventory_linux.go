package broker

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/nl"
)

// NetlinkInventory returns an Inventory that asks rtnetlink through c, in
// the network namespace c was dialled in. c must stay open while the
// Inventory is used; the caller closes it. Safe from any goroutine, as
// nl.Conn is.
func NetlinkInventory(c *nl.Conn) Inventory { return netlinkInventory{c} }

type netlinkInventory struct{ c *nl.Conn }

func (n netlinkInventory) HostAddrs() ([]HostAddr, error) {
	links, err := n.c.Links()
	if err != nil {
		return nil, err
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Index] = l.Name
	}
	addrs, err := n.c.Addrs(0)
	if err != nil {
		return nil, err
	}
	out := make([]HostAddr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, HostAddr{Name: names[a.Index], Index: a.Index, Prefix: a.Prefix, Peer: a.Peer})
	}
	return out, nil
}

func (n netlinkInventory) LinkExists(index int) (bool, error) {
	_, err := n.c.LinkByIndex(index)
	if errors.Is(err, unix.ENODEV) {
		return false, nil
	}
	return err == nil, err
}

// defaultInventory dials rtnetlink in the calling thread's namespace.
func defaultInventory() (Inventory, func() error, error) {
	c, err := nl.Dial()
	if err != nil {
		return nil, nil, err
	}
	return NetlinkInventory(c), c.Close, nil
}
