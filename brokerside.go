package tundra

import (
	"context"
	"fmt"

	"github.com/tundra-go/tundra/broker"
)

// This file is the broker's server side of the package, apart from the
// client side (askBroker in create.go): the creator broker.Server calls
// through its own broker.CreateFunc, and nothing else here calls it.

// BrokerCreate is the broker's creator, a broker.CreateFunc: what
// cmd/tundra-server gives broker.Config.Create, run for every request the
// server allows. It creates the device r describes directly, the way
// Create does, but always exclusively, so a client is never attached to a
// device that existed before, and it returns the queue descriptors,
// close-on-exec, keeping none: the device lives exactly as long as the
// client holds them. On Linux they are the very descriptors the device was
// made with, handed over without a duplicate. The request becomes the plan
// Create carries out without passing through Options, and the plan is
// checked by the same per-option checks as Create's. The device is made in
// the network namespace of the calling goroutine's thread. On any error
// nothing is left behind. Safe from any goroutine; needs CAP_NET_ADMIN.
func BrokerCreate(ctx context.Context, r broker.Request) (broker.Created, error) {
	if err := ctx.Err(); err != nil {
		return broker.Created{}, err
	}
	s, err := brokerPlan(ctx, r)
	if err != nil {
		return broker.Created{}, err
	}
	out, err := brokerDevice(s)
	if err != nil {
		return broker.Created{}, err
	}
	if err := ctx.Err(); err != nil {
		out.Close()
		return broker.Created{}, err
	}
	return out, nil
}

// brokerPlan turns a broker request into the plan createDirect carries
// out: the request's fields are the options as given, checked as Create
// checks its own.
func brokerPlan(ctx context.Context, r broker.Request) (plan, error) {
	c := rawOptions{name: r.Name, exclusive: true, mode: DirectOnly,
		tap: r.TAP, packetInfo: r.PacketInfo}
	if uid, ok := broker.RequesterUID(ctx); ok {
		// Owned from birth: only the member (or CAP_NET_ADMIN) can attach
		// to the device, even where the clone device is world-writable.
		c.owner, c.ownerSet = int(uid), true
	}
	if r.Peer.IsValid() {
		c.peer, c.peerSet = r.Peer.String(), true
	}
	if r.MTU != 0 {
		c.mtu, c.mtuSet = r.MTU, true
	}
	if r.Queues > 1 {
		c.queues, c.queuesSet = r.Queues, true
	}
	if !r.Addr.IsValid() {
		return plan{}, argError("address", fmt.Errorf("the zero or invalid netip.Prefix is not an address"))
	}
	c.addrBits, c.addrBitsFrom = r.Addr.Bits(), "address "+r.Addr.String()
	return c.check(r.Addr.Addr())
}
