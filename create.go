package tundra

import (
	"context"
	"errors"
	"fmt"

	"github.com/tundra-go/tundra/broker"
)

// create carries out a checked request in the mode it asks for. See
// Create.
func create(s plan) (*Device, error) {
	switch s.mode {
	case DirectOnly:
		return createDirect(s)
	case BrokerOnly:
		return askBroker(s, nil)
	}
	// Only a refusal for want of privilege falls back; any other error
	// (EACCES from netlink on a host with IPv6 disabled, EINVAL, ...) is
	// the answer, and the broker would only hide it.
	dev, err := createDirect(s)
	if err == nil || !errors.As(err, new(lackOfPrivilege)) {
		return dev, err
	}
	dev, berr := askBroker(s, err)
	if berr != nil {
		return nil, &Error{Op: "create", Name: s.tun.Name, Err: fmt.Errorf("directly: %w; and through the broker: %w", cause(err), cause(berr))}
	}
	return dev, nil
}

// lackOfPrivilege marks the direct attempt's error when the kernel refused
// it for want of privilege, the one case in which Auto asks the broker.
// Its text and what it wraps are the kernel's error's.
type lackOfPrivilege struct{ err error }

func (e lackOfPrivilege) Error() string { return e.err.Error() }
func (e lackOfPrivilege) Unwrap() error { return e.err }

// cause strips this package's *Error wrapper, to nest an error in another
// without repeating "tundra: create".
func cause(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Err != nil {
		if e.Arg != "" {
			return fmt.Errorf("%s: %w", e.Arg, e.Err)
		}
		return e.Err
	}
	return err
}

// askBroker is the client side: it asks the broker for the device and
// adopts the descriptors it sends; reason is the direct attempt's error, if any.
func askBroker(s plan, reason error) (*Device, error) {
	switch {
	case s.persist:
		return nil, argError("persist", errBrokerLifetime)
	case s.owner >= 0:
		return nil, argError("owner", errBrokerLifetime)
	case s.group >= 0:
		return nil, argError("group", errBrokerLifetime)
	case s.keepDAD:
		return nil, argError("keep DAD", errors.New("the broker always marks IPv6 addresses NODAD"))
	case s.tun.VnetHdr:
		return nil, argError("offloads", errors.New("offloads are not available through the broker"))
	}
	req := broker.Request{Addr: s.prefix(), Peer: s.peer, MTU: s.mtu, Name: s.tun.Name, TAP: s.tun.TAP,
		PacketInfo: s.tun.PacketInfo, Queues: s.queues, Exclusive: s.tun.Exclusive}
	c := &broker.Client{Path: s.broker}
	created, err := c.Create(context.Background(), req)
	if err != nil {
		return nil, &Error{Op: "create", Name: s.tun.Name, Err: err}
	}
	d, err := adoptBrokered(s, created) // closes them on error
	if err != nil {
		return nil, &Error{Op: "create", Name: created.Name, Err: fmt.Errorf("adopting the broker's descriptors: %w", err)}
	}
	d.fallback = reason
	return d, nil
}

var errBrokerLifetime = errors.New("persistence, owner and group are not available through the broker: its devices live exactly as long as the client's descriptors")
