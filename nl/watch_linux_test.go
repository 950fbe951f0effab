package nl

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// watchIn opens a LinkWatcher inside ns and closes it when the test ends.
func watchIn(t *testing.T, ns *netnstest.Namespace) *LinkWatcher {
	t.Helper()
	return openIn(t, ns, "WatchLinks", WatchLinks)
}

// waitEvent reads events until one satisfies match, failing the test after
// five seconds. The events before it are returned too, for the log.
func waitEvent(t *testing.T, w *LinkWatcher, what string, match func(LinkEvent) bool) LinkEvent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var seen []LinkEvent
	for time.Now().Before(deadline) {
		evs, err := w.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		for _, ev := range evs {
			if match(ev) {
				return ev
			}
			seen = append(seen, ev)
		}
	}
	t.Fatalf("no event for %s within 5s; saw %d others: %+v", what, len(seen), seen)
	return LinkEvent{}
}

// The life of a TUN device as the watcher sees it: created, up, made
// persistent, given an owner and a group, deleted. Each change arrives
// with the Tun fields it set, and ip agrees with the final state.
func TestKernelWatchLinks(t *testing.T) {
	ns := netnstest.New(t)
	c := dialIn(t, ns)
	w := watchIn(t, ns)

	// Nothing has happened yet: the wait ends empty.
	if evs, err := w.Next(50 * time.Millisecond); evs != nil || err != nil {
		t.Fatalf("Next on a quiet namespace: %+v, %v; want nil, nil", evs, err)
	}

	var dev *tun.Device
	if err := ns.Do(func() (err error) { dev, err = tun.Open(tun.Config{Name: "w0"}); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dev.Close()
		ns.Output("ip", "link", "del", "dev", "w0")
	})
	isW0 := func(ev LinkEvent) bool { return ev.Link.Name == "w0" && !ev.Deleted }
	ev := waitEvent(t, w, "w0 created", isW0)
	if ev.Link.Kind != "tun" || ev.Link.Tun == nil || ev.Link.Tun.Type != 1 || ev.Link.Tun.Persist || ev.Link.Tun.HasOwner {
		t.Errorf("creation event: %+v, Tun %+v; want a fresh TUN device", ev.Link, ev.Link.Tun)
	}
	index := ev.Link.Index

	// The driver announces persist, owner and group changes only while
	// the device is up (netdev_state_change).
	if err := c.SetLinkUp(index); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, w, "w0 up", func(ev LinkEvent) bool { return isW0(ev) && ev.Link.Flags&iffUp != 0 })

	steps := []struct {
		what  string
		do    func() error
		match func(*TunInfo) bool
	}{
		{"persist", func() error { return dev.SetPersist(true) }, func(ti *TunInfo) bool { return ti.Persist }},
		{"owner", func() error { return dev.SetOwner(testUID) }, func(ti *TunInfo) bool { return ti.HasOwner && ti.Owner == testUID }},
		{"group", func() error { return dev.SetGroup(testGID) }, func(ti *TunInfo) bool { return ti.HasGroup && ti.Group == testGID }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		ev = waitEvent(t, w, "w0 "+s.what, func(ev LinkEvent) bool {
			return isW0(ev) && ev.Link.Tun != nil && s.match(ev.Link.Tun)
		})
		t.Logf("%s: %+v", s.what, *ev.Link.Tun)
	}
	want := TunInfo{Type: 1, Persist: true, Owner: testUID, HasOwner: true, Group: testGID, HasGroup: true}
	if *ev.Link.Tun != want {
		t.Errorf("after the changes: Tun %+v, want %+v", *ev.Link.Tun, want)
	}
	checkLinkInfo(t, ev.Link, ipLinkDetails(t, ns)[index])

	if err := c.DeleteLink(index); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, w, "w0 deleted", func(ev LinkEvent) bool { return ev.Deleted && ev.Link.Index == index })
	if ev.Link.Name != "w0" || ev.Link.Kind != "tun" || ev.Link.Tun == nil || *ev.Link.Tun != want {
		t.Errorf("deletion event: %+v, Tun %+v; want w0's last state", ev.Link, ev.Link.Tun)
	}
	if _, err := ns.LinkByName("w0"); !errors.Is(err, netnstest.ErrNoLink) {
		t.Errorf("w0 after DeleteLink: %v", err)
	}
}

// Close from another goroutine ends a Next that waits without limit, and
// leaves no descriptor or goroutine behind.
func TestKernelWatchLinksClose(t *testing.T) {
	leakcheck.Check(t)
	ns := netnstest.New(t)
	var w *LinkWatcher
	if err := ns.Do(func() (err error) { w, err = WatchLinks(); return err }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		evs, err := w.Next(-1)
		if evs != nil {
			err = errors.Join(err, errors.New("events returned"))
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Next returned before Close: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	err := closeInterrupts(t, w, done)
	if !errors.Is(err, net.ErrClosed) || !errors.Is(err, ErrClosed) {
		t.Errorf("interrupted Next: %v, want ErrClosed matching net.ErrClosed", err)
	}
	asError(t, err)
	if _, err := w.Next(0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A watcher that does not read while the kernel sends more than its buffer
// holds is told so with ErrOverrun, and works again afterwards.
func TestKernelWatchLinksOverrun(t *testing.T) {
	ns, c, tun := setup(t)
	w := watchIn(t, ns)
	// The smallest buffer the kernel allows holds a few notifications.
	if err := unix.SetsockoptInt(w.src.(*linkEventSocket).fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		set := c.SetLinkUp
		if i%2 == 1 {
			set = c.SetLinkDown
		}
		if err := set(tun.Index); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	for range 100 {
		if _, err = w.Next(0); err != nil {
			break
		}
	}
	ne := asError(t, err)
	if !errors.Is(err, ErrOverrun) || ne.Errno != unix.ENOBUFS {
		t.Fatalf("after 100 unread changes: %v, want ErrOverrun with ENOBUFS", err)
	}
	t.Logf("overrun: %v", err)
	// Drain, then a new change is seen.
	for {
		evs, err := w.Next(0)
		if err != nil {
			t.Fatal(err)
		}
		if evs == nil {
			break
		}
	}
	if err := c.SetLinkMTU(tun.Index, 1280); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, w, "MTU change after the overrun", func(ev LinkEvent) bool { return ev.Link.MTU == 1280 })
}

// Another process can send to the watcher's port id; its datagram, a
// well-formed RTM_DELLINK, must not be taken for the kernel's.
func TestKernelWatchLinksForgedIgnored(t *testing.T) {
	ns, c, tun := setup(t)
	w := watchIn(t, ns)
	sa, err := unix.Getsockname(w.src.(*linkEventSocket).fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrNetlink).Pid
	err = ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		forged := marshalMessage(header{Type: rtmDelLink}, linkPayload(Link{Index: tun.Index, Name: "t0"}))
		return unix.Sendto(fd, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: port})
	})
	if err != nil {
		t.Fatalf("sending the forged event: %v", err)
	}
	if evs, err := w.Next(100 * time.Millisecond); evs != nil || err != nil {
		t.Fatalf("Next after a forged RTM_DELLINK: %+v, %v; want nothing", evs, err)
	}
	if err := c.SetLinkMTU(tun.Index, 1280); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, w, "the real change", func(ev LinkEvent) bool { return ev.Link.Index == tun.Index })
	if ev.Deleted || ev.Link.MTU != 1280 {
		t.Errorf("first event after the forgery: %+v", ev)
	}
}
