package nl_test

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/tundra-go/tundra/nl"
	"golang.org/x/sys/unix"
)

// Bring a TUN device up with a point-to-point address and a route through
// it. Needs CAP_NET_ADMIN, so it is compiled but not run.
func Example() {
	c, err := nl.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	link, err := c.LinkByName("tun0")
	if err != nil {
		log.Fatal(err) // errors.Is(err, unix.ENODEV) if there is no tun0
	}
	if err := c.SetLinkMTU(link.Index, 1420); err != nil {
		log.Fatal(err)
	}
	err = c.AddAddr(nl.Addr{
		Index:  link.Index,
		Prefix: netip.MustParsePrefix("10.7.0.1/24"),
		Peer:   netip.MustParseAddr("10.7.0.2"),
	})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		log.Fatal(err)
	}
	if err := c.SetLinkUp(link.Index); err != nil {
		log.Fatal(err)
	}
	err = c.AddRoute(nl.Route{Dst: netip.MustParsePrefix("10.8.0.0/16"), Index: link.Index})
	if err != nil {
		log.Fatal(err)
	}
}

// Errors from the kernel carry its errno and, when it gives one, its
// explanation.
func ExampleError() {
	var err error = &nl.Error{Op: "addaddr", Errno: unix.EEXIST, Message: "ipv4: Address already assigned"}

	var ne *nl.Error
	if errors.As(err, &ne) {
		fmt.Println(ne.Op, ne.Message)
	}
	fmt.Println(errors.Is(err, unix.EEXIST))
	// Output:
	// addaddr ipv4: Address already assigned
	// true
}

// List the routes of every table, and find which of them cover an address,
// as a policy check might before it hands out an address.
func ExampleConn_Routes() {
	c, err := nl.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	routes, err := c.Routes()
	if err != nil {
		log.Fatal(err)
	}
	probe := netip.MustParseAddr("169.254.169.254")
	for _, r := range routes {
		if r.Type == nl.RouteUnicast && r.Dst.Bits() > 0 && r.Dst.Contains(probe) {
			fmt.Printf("%v is routed by %v in table %d through link %d\n", probe, r.Dst, r.Table, r.Index)
		}
	}
}

// Follow TUN/TAP devices as they come, change and go. A watcher opened
// before the dump misses nothing that happens after it. Needs Linux, so it
// is compiled but not run.
func ExampleWatchLinks() {
	w, err := nl.WatchLinks()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close() // from any goroutine; a waiting Next returns net.ErrClosed

	c, err := nl.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	resync := func() {
		links, err := c.Links()
		if err != nil {
			log.Fatal(err)
		}
		for _, l := range links {
			if l.Tun != nil {
				fmt.Printf("%s: persist %v, owner %d (set: %v)\n", l.Name, l.Tun.Persist, l.Tun.Owner, l.Tun.HasOwner)
			}
		}
	}
	resync()
	for {
		events, err := w.Next(time.Second)
		switch {
		case errors.Is(err, nl.ErrOverrun):
			resync() // events were lost: read the whole state again
			continue
		case errors.Is(err, net.ErrClosed):
			return
		case err != nil:
			log.Fatal(err)
		}
		for _, ev := range events { // none when a second passed quietly
			if ev.Link.Tun == nil {
				continue
			}
			if ev.Deleted {
				fmt.Printf("%s deleted\n", ev.Link.Name)
			} else if ev.Link.Tun.Persist {
				fmt.Printf("%s is persistent\n", ev.Link.Name)
			}
		}
	}
}
