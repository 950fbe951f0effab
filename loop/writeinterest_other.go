//go:build !linux

package loop

// lazyWriteInterest is a Linux measure (see PacketFD.writeInterest): the
// other backends keep Writable in every PacketFD's registration.
const lazyWriteInterest = false
