package tunbpf_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tunbpf"
)

// createUp creates a device of the front door inside ns with 192.0.2.1/24
// (so that 192.0.2.2 is routed into it) and closes it when the test ends.
func createUp(t *testing.T, ns *netnstest.Namespace, name string) *tundra.Device {
	t.Helper()
	var dev *tundra.Device
	if err := ns.Do(func() error {
		var err error
		dev, err = tundra.Create("192.0.2.1/24", tundra.Name(name))
		return err
	}); err != nil {
		t.Fatalf("tundra.Create: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

// delivered sends n datagrams to 192.0.2.2:port and returns how many of
// them the device's queue read, and how much its tx_dropped rose.
func delivered(t *testing.T, ns *netnstest.Namespace, dev *tundra.Device, port uint16, n int) (read int, dropped uint64) {
	t.Helper()
	before := txDropped(t, ns, dev.Name())
	flow{dst: remote4, dport: port}.send(t, ns, n, func(int) []byte { return []byte("tunbpf link") })
	for _, u := range drain(t, dev.TUN().Queues()[0], 200*time.Millisecond) {
		if u.dport == port {
			read++
		}
	}
	return read, txDropped(t, ns, dev.Name()) - before
}

// A Link's Close detaches its filter: traffic is dropped before, and
// reaches the queue after. Closing again is a no-op.
func TestLinkCloseDetaches(t *testing.T) {
	ns := netnstest.New(t)
	dev := createUp(t, ns, "tbl0")
	l, err := tunbpf.LinkFilter(dev, constProgram(t, ebpf.SocketFilter, 0))
	if err != nil {
		t.Fatalf("LinkFilter: %v", err)
	}
	if read, dropped := delivered(t, ns, dev, 7001, 5); read != 0 || dropped < 5 {
		t.Fatalf("with the filter linked: %d of 5 read, tx_dropped +%d; want 0 read, +5 or more", read, dropped)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if read, dropped := delivered(t, ns, dev, 7002, 5); read != 5 || dropped != 0 {
		t.Fatalf("after Close: %d of 5 read, tx_dropped +%d; want 5 read, +0", read, dropped)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Closing the device before the Link is handled: the Link's Close has
// nothing left to detach through and returns nil, twice.
func TestLinkCloseAfterDevice(t *testing.T) {
	ns := netnstest.New(t)
	dev := createUp(t, ns, "tbl1")
	l, err := tunbpf.LinkFilter(dev, constProgram(t, ebpf.SocketFilter, 0))
	if err != nil {
		t.Fatalf("LinkFilter: %v", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("closing the device: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close after the device closed: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A Link replaced by a newer program leaves that program attached when it
// is closed: the newer Link, or a program attached with AttachFilter,
// keeps filtering.
func TestLinkSupersededCloseKeepsNewer(t *testing.T) {
	ns := netnstest.New(t)
	dev := createUp(t, ns, "tbl2")
	drop := constProgram(t, ebpf.SocketFilter, 0)
	older, err := tunbpf.LinkFilter(dev, drop)
	if err != nil {
		t.Fatalf("LinkFilter: %v", err)
	}
	newer, err := tunbpf.LinkFilter(dev, drop)
	if err != nil {
		t.Fatalf("second LinkFilter: %v", err)
	}
	if err := older.Close(); err != nil {
		t.Fatalf("closing the older Link: %v", err)
	}
	if read, _ := delivered(t, ns, dev, 7003, 3); read != 0 {
		t.Fatalf("closing the superseded Link detached the newer filter: %d of 3 read", read)
	}
	if err := tunbpf.AttachFilter(dev.TUN(), drop); err != nil {
		t.Fatalf("AttachFilter: %v", err)
	}
	if err := newer.Close(); err != nil {
		t.Fatalf("closing the newer Link: %v", err)
	}
	if read, _ := delivered(t, ns, dev, 7004, 3); read != 0 {
		t.Fatalf("closing a Link detached the filter AttachFilter set after it: %d of 3 read", read)
	}
	if err := dev.TUN().ClearFilterProgram(); err != nil {
		t.Fatalf("ClearFilterProgram: %v", err)
	}
	if read, _ := delivered(t, ns, dev, 7005, 3); read != 3 {
		t.Fatalf("after ClearFilterProgram: %d of 3 read, want 3", read)
	}
}

// A program the kernel would not take gives no Link and attaches nothing.
func TestLinkRefusesWrongType(t *testing.T) {
	ns := netnstest.New(t)
	dev := createUp(t, ns, "tbl3")
	l, err := tunbpf.LinkFilter(dev, constProgram(t, ebpf.XDP, 2))
	if l != nil || !errors.Is(err, tunbpf.ErrProgramType) {
		t.Fatalf("LinkFilter(XDP program) = %v, %v; want nil and ErrProgramType", l, err)
	}
	if read, _ := delivered(t, ns, dev, 7006, 3); read != 3 {
		t.Fatalf("after a refused LinkFilter: %d of 3 read, want 3", read)
	}
}
