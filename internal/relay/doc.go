// Package relay is tun2udp's engine: it relays every packet read from a
// TUN device to a UDP peer and every datagram received back into the
// device, one lane per device queue, each lane a loop of its own on its own
// OS thread. cmd/tun2udp wraps it in flags; tunbench runs two of them end to
// end.
//
// It is Linux-only: it rests on the loop's batched UDP (recvmmsg, sendmmsg,
// UDP_SEGMENT).
package relay
