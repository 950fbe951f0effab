package nl_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"

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
