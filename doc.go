// Package tundra creates and adopts TUN and TAP devices, configured and up
// in one call, and moves their packets through a raw-syscall event loop
// (package loop) built for the highest packet rate a machine can give.
//
// It is the Go heir of the Elixir Tundra and the Erlang tunctl:
//
//	dev, err := tundra.Create("fd11:b7b7:4360::2/64", tundra.Peer("fd11:b7b7:4360::1"), tundra.MTU(1400))
//
// returns a device whose link is up and whose address is usable, or an
// error that names what was wrong. Nothing is left behind on an error: no
// file descriptor, no half-configured device.
//
// CreateBare makes a device with no address that stays down, as tunctl(8)
// makes one for a user (cmd/tunctl); Device.SetMTU, AddAddr, DelAddr, Up,
// Down, SetOwner, SetGroup and Addrs change any device once it exists.
//
// Packets move through a device's queues, one per file descriptor
// (Device.Queues): attach the device to a loop (Device.Attach, or
// AttachEach for one loop per queue), and in the readiness callback call
// the Queue's RecvBatch and SendBatch (or Recv and Send) on the queue it
// names. Device has no single-queue I/O shorthand: the examples, like
// every caller, take the queue the callback gives. Device.Handoff moves
// every queue to another loop; Device.Fds lists their descriptors.
//
// A queue with offloads (the Offloads option) reads and writes the
// virtio-net header through a codec of the loop (vnet.Codec as a
// loop.Codec): RecvBatch splits super-packets, SendBatch merges packets of
// one flow, RecvGSO and SendGSO pass super-packets through whole.
//
// The lower layers are usable on their own: tun (Linux /dev/net/tun), nl
// (rtnetlink, built by hand), loop (the event loop), utun (macOS).
package tundra
