package nltest_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/nl/nltest"
	"golang.org/x/sys/unix"
)

// A scripted kernel answers nl's requests: an ack is success, an error is
// the Conn's error with the errno, and every request is recorded.
func TestDialScriptedKernel(t *testing.T) {
	k := nltest.NewKernel(func(req nltest.Message) ([]nltest.Message, error) {
		switch req.Type {
		case unix.RTM_SETLINK:
			return []nltest.Message{nltest.Ack(req)}, nil
		case unix.RTM_NEWADDR:
			return []nltest.Message{nltest.Error(req, unix.EPERM)}, nil
		case unix.RTM_GETADDR:
			return []nltest.Message{nltest.Done(req)}, nil
		}
		return nil, nltest.ErrUnexpected
	})
	c := nl.NewConn(k)
	if err := c.SetLinkUp(7); err != nil {
		t.Errorf("SetLinkUp, acked: %v", err)
	}
	err := c.AddAddr(nl.Addr{Index: 7, Prefix: netip.MustParsePrefix("10.0.0.1/24")})
	var ne *nl.Error
	if !errors.Is(err, unix.EPERM) || !errors.As(err, &ne) || ne.Op != "addaddr" {
		t.Errorf("AddAddr, refused: %v, want nl's addaddr error with EPERM", err)
	}
	if addrs, err := c.Addrs(0); err != nil || len(addrs) != 0 {
		t.Errorf("Addrs of an empty dump: %v, %v", addrs, err)
	}
	if err := c.DeleteLink(7); !errors.Is(err, nltest.ErrUnexpected) {
		t.Errorf("unscripted request: %v, want ErrUnexpected", err)
	}
	want := []uint16{unix.RTM_SETLINK, unix.RTM_NEWADDR, unix.RTM_GETADDR, unix.RTM_DELLINK}
	if len(k.Requests) != len(want) {
		t.Fatalf("%d requests recorded, want %d", len(k.Requests), len(want))
	}
	for i, r := range k.Requests {
		if r.Type != want[i] || r.Flags&unix.NLM_F_REQUEST == 0 {
			t.Errorf("request %d: type %d flags %#x, want type %d, NLM_F_REQUEST", i, r.Type, r.Flags, want[i])
		}
	}
	c.Close()
	if k.Closed != 1 {
		t.Errorf("Close reached the kernel %d times", k.Closed)
	}
}

// Intercept answers the requests its Func takes and passes the rest on.
func TestInterceptPassesTheRestOn(t *testing.T) {
	inner := nltest.NewKernel(func(req nltest.Message) ([]nltest.Message, error) {
		return []nltest.Message{nltest.Ack(req)}, nil
	})
	c := nl.NewConn(nltest.Intercept(inner, func(req nltest.Message) ([]nltest.Message, error) {
		if req.Type == unix.RTM_NEWADDR {
			return []nltest.Message{nltest.Error(req, unix.EACCES)}, nil
		}
		return nil, nil
	}))
	defer c.Close()
	if err := c.AddAddr(nl.Addr{Index: 7, Prefix: netip.MustParsePrefix("fd00::1/64")}); !errors.Is(err, unix.EACCES) {
		t.Errorf("intercepted AddAddr: %v, want EACCES", err)
	}
	if err := c.SetLinkMTU(7, 1400); err != nil {
		t.Errorf("SetLinkMTU passed on: %v", err)
	}
	if len(inner.Requests) != 1 || inner.Requests[0].Type != unix.RTM_SETLINK {
		t.Errorf("the inner kernel saw %+v, want only the RTM_SETLINK", inner.Requests)
	}
}
