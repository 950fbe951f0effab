package tundra

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
)

// A device the broker made refuses persistence, an owner and a group: it
// must not outlive the client's descriptors (issue 13). ip shows that
// nothing changed, and the device goes with Close.
func TestBrokeredDeviceCannotOutliveDescriptors(t *testing.T) {
	ns := netnstest.New(t)
	path := startBroker(t, ns)
	dev := createIn(t, ns, "fd00:99::1/64", Mode(BrokerOnly), BrokerSocket(path), Name("tunbk"))
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"SetPersist(true)", dev.SetPersist(true)},
		{"SetOwner(54321)", dev.SetOwner(54321)},
		{"SetGroup(54322)", dev.SetGroup(54322)},
	} {
		if !errors.Is(tc.err, ErrBrokered) || !errors.Is(tc.err, ErrInvalidArgument) || !strings.Contains(tc.err.Error(), "cannot outlive their descriptors") {
			t.Errorf("%s on a brokered device: %v; want ErrBrokered", tc.what, tc.err)
		}
	}
	// The broker made it owned by the asking uid (this test's) and by no
	// group; the refusals must have changed neither, nor persistence.
	d := details(t, ns, "tunbk")
	if d.LinkInfo.Data.Persist || d.LinkInfo.Data.User == nil || int(*d.LinkInfo.Data.User) != os.Getuid() || d.LinkInfo.Data.Group != nil {
		t.Errorf("ip -d after the refusals: %+v, want not persistent, owned by uid %d, no group", d.LinkInfo.Data, os.Getuid())
	}
	// The settings that cannot make it outlive its client still work.
	if err := dev.SetMTU(1400); err != nil {
		t.Errorf("SetMTU on a brokered device: %v", err)
	}
	dev.Close()
	requireGone(t, ns, "tunbk")

	// A device made directly is not refused.
	direct := createIn(t, ns, "fd00:99::1/64", Name("tundir"))
	if err := direct.SetOwner(54321); err != nil {
		t.Errorf("SetOwner on a direct device: %v", err)
	}
}
