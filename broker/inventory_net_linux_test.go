package broker

import (
	"slices"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/nl"
)

// The standard-library inventory (macOS's default) agrees with rtnetlink's
// on a host both can read: every address and link netlink reports, it
// reports too.
func TestNetInventoryMatchesNetlink(t *testing.T) {
	ns := netnstest.New(t)
	for _, args := range [][]string{
		{"tuntap", "add", "dev", "inv0", "mode", "tun"},
		{"link", "set", "inv0", "up"},
		{"addr", "add", "10.77.0.1/24", "dev", "inv0"},
		{"-6", "addr", "add", "fd77::1/64", "dev", "inv0", "nodad"},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	var fromNet, fromNL []HostAddr
	var exists, missing bool
	var index int
	if err := ns.Do(func() error {
		var err error
		if fromNet, err = (netInventory{}).HostAddrs(); err != nil {
			return err
		}
		c, err := nl.Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		if fromNL, err = NetlinkInventory(c, nil).HostAddrs(); err != nil {
			return err
		}
		l, err := c.LinkByName("inv0")
		if err != nil {
			return err
		}
		index = l.Index
		if exists, err = (netInventory{}).LinkExists(l.Index); err != nil {
			return err
		}
		missing, err = (netInventory{}).LinkExists(l.Index + 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	key := func(a HostAddr) string { return a.Name + " " + a.Prefix.String() }
	var got []string
	for _, a := range fromNet {
		got = append(got, key(a))
	}
	for _, a := range fromNL {
		if !slices.Contains(got, key(a)) {
			t.Errorf("netlink reports %s, the net package does not (it has %v)", key(a), got)
		}
	}
	if !slices.Contains(got, "inv0 10.77.0.1/24") || !slices.Contains(got, "inv0 fd77::1/64") {
		t.Errorf("net inventory %v lacks inv0's addresses", got)
	}
	if !exists || missing {
		t.Errorf("LinkExists(%d) = %v, LinkExists(%d) = %v", index, exists, index+100, missing)
	}
}
