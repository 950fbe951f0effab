//go:build !darwin

package utun

import (
	"errors"
	"net/netip"
	"testing"
)

func TestNotSupported(t *testing.T) {
	check := func(what string, err error) {
		t.Helper()
		var oe *OpError
		if !errors.Is(err, ErrNotSupported) || !errors.As(err, &oe) {
			t.Errorf("%s: %v, want an *OpError wrapping ErrNotSupported", what, err)
		}
	}
	d, err := Open(AnyUnit)
	check("Open", err)
	if d != nil {
		t.Error("Open returned a device")
	}
	d, err = Adopt(0)
	check("Adopt", err)
	if d != nil {
		t.Error("Adopt returned a device")
	}
	var dev Device
	check("Close", dev.Close())
	check("AddAddr", dev.AddAddr(netip.MustParsePrefix("10.0.0.1/24"), netip.Addr{}, false))
	check("DeleteAddr", dev.DeleteAddr(netip.MustParsePrefix("10.0.0.1/24")))
	check("SetMTU", dev.SetMTU(1400))
	check("SetUp", dev.SetUp(true))
	_, err = dev.MTU()
	check("MTU", err)
	_, err = dev.Flags()
	check("Flags", err)
	_, err = dev.Index()
	check("Index", err)
	if dev.Name() != "" || dev.Fd() != -1 {
		t.Errorf("Name %q, Fd %d", dev.Name(), dev.Fd())
	}
}
