package broker

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/nl"
)

// NetlinkInventory returns an Inventory, and DeviceKeeper, that asks
// rtnetlink through c and follows link events through w, in the network
// namespace they were dialled in (dial both on one thread: nl.Dial and
// nl.WatchLinks). Both must stay open while the Inventory is used; the
// caller closes them. Safe from any goroutine, as nl.Conn and
// nl.LinkWatcher are; only one goroutine at a time may wait in
// NextTunEvents (the Server's keeper).
func NetlinkInventory(c *nl.Conn, w *nl.LinkWatcher) Inventory {
	return netlinkInventory{c: c, w: w}
}

type netlinkInventory struct {
	c *nl.Conn
	w *nl.LinkWatcher
}

var _ DeviceKeeper = netlinkInventory{}

// linkNames maps every link's index to its name, for refusals that name
// the interface.
func (n netlinkInventory) linkNames() (map[int]string, error) {
	links, err := n.c.Links()
	if err != nil {
		return nil, err
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Index] = l.Name
	}
	return names, nil
}

func (n netlinkInventory) HostAddrs() ([]HostAddr, error) {
	names, err := n.linkNames()
	if err != nil {
		return nil, err
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

func (n netlinkInventory) HostRoutes() ([]HostRoute, error) {
	names, err := n.linkNames()
	if err != nil {
		return nil, err
	}
	routes, err := n.c.Routes()
	if err != nil {
		return nil, err
	}
	out := make([]HostRoute, 0, len(routes))
	for _, r := range routes {
		out = append(out, HostRoute{Dst: r.Dst, Table: r.Table, Type: r.Type, Gateway: r.Gateway, Index: r.Index, Name: names[r.Index]})
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

func (n netlinkInventory) TunLinks() ([]TunLink, error) {
	links, err := n.c.Links()
	if err != nil {
		return nil, err
	}
	var out []TunLink
	for _, l := range links {
		if l.Kind == "tun" {
			out = append(out, tunLink(l))
		}
	}
	return out, nil
}

func tunLink(l nl.Link) TunLink {
	t := TunLink{Index: l.Index, Name: l.Name, Alias: l.Alias}
	if l.Tun != nil {
		t.Known = true
		t.Persist = l.Tun.Persist
		t.Owner, t.HasOwner = l.Tun.Owner, l.Tun.HasOwner
		t.Group, t.HasGroup = l.Tun.Group, l.Tun.HasGroup
		t.Queues = l.Tun.NumQueues
	}
	return t
}

func (n netlinkInventory) SetLinkAlias(index int, alias string) error {
	return n.c.SetLinkAlias(index, alias)
}

func (n netlinkInventory) DeleteLink(index int) error { return n.c.DeleteLink(index) }

func (n netlinkInventory) NextTunEvents(timeout time.Duration) ([]TunEvent, error) {
	evs, err := n.w.Next(timeout)
	if errors.Is(err, nl.ErrOverrun) {
		return nil, fmt.Errorf("%w: %w", ErrEventsLost, err)
	}
	if err != nil {
		return nil, err
	}
	var out []TunEvent
	for _, ev := range evs {
		if ev.Link.Kind == "tun" || ev.Deleted {
			out = append(out, TunEvent{Deleted: ev.Deleted, Link: tunLink(ev.Link)})
		}
	}
	return out, nil
}

// defaultInventory dials rtnetlink, and a link watcher, in the calling
// thread's namespace.
func defaultInventory() (Inventory, func() error, error) {
	c, err := nl.Dial()
	if err != nil {
		return nil, nil, err
	}
	w, err := nl.WatchLinks()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return NetlinkInventory(c, w), func() error { return errors.Join(w.Close(), c.Close()) }, nil
}
