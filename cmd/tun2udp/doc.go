// Command tun2udp relays a TUN device over UDP: every packet the kernel
// sends into the device goes to a UDP peer, and every datagram the peer
// sends comes out of the device. Two of them, one on each side of a
// network, make a tunnel. Each device queue gets its own event loop on its
// own OS thread (-queues), so the relay spreads over cores, and the kernel
// keeps each flow on one queue.
//
//	tun2udp -addr 10.99.0.1/24 -local 192.168.1.10:5555 -remote 192.168.1.20:5555
//
// Statistics go to stderr on SIGUSR1 and every -stats interval; SIGINT or
// SIGTERM stops it and removes the device. It needs CAP_NET_ADMIN.
package main
