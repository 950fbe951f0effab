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
// The lower layers are usable on their own: tun (Linux /dev/net/tun), nl
// (rtnetlink, built by hand), loop (the event loop), utun (macOS).
package tundra
