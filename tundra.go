package tundra

// Create makes a TUN (or, with TAP, a TAP) device, gives it addr, and brings
// it up: in order, it opens the device (TUNSETIFF), applies ownership and
// persistence, sets the MTU, adds the address (with the peer, if given), and
// sets the link up. When Create returns, the link is up and the address is
// usable (IPv6 addresses skip duplicate address detection unless KeepDAD is
// given).
//
// addr is a netip.Addr, a netip.Prefix or a string of either
// ("fd11:b7b7:4360::2", "10.9.0.1/24"). Every argument is checked before
// anything reaches the kernel; a bad one gives an *Error naming it and
// wrapping ErrInvalidArgument. A kernel refusal gives an *Error wrapping the
// lower package's error. On any error nothing is left behind: no file
// descriptor, and no device (a device that existed before, reused by name,
// is left as it was found, minus nothing and plus nothing).
//
// Creating a device needs CAP_NET_ADMIN. Safe from any goroutine; the device
// is created in the network namespace of the calling goroutine's thread.
func Create[A Address](addr A, opts ...Option) (*Device, error) {
	s, err := resolve(addr, opts)
	if err != nil {
		return nil, err
	}
	return create(s)
}
