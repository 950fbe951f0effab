// Package utun creates and drives macOS utun interfaces, the layer-3
// tunnels XNU offers through a kernel control.
//
// A utun interface exists while a PF_SYSTEM/SYSPROTO_CONTROL socket is
// connected to the "com.apple.net.utun_control" kernel control: Open
// creates the socket, looks the control up (CTLIOCGINFO), connects with a
// unit (0 lets the kernel choose, N+1 asks for utunN), reads the interface
// name back (UTUN_OPT_IFNAME) and makes the socket non-blocking. Closing
// the socket destroys the interface. Adopt takes over such a socket opened
// elsewhere, after checking that it is one. The Device methods configure
// the interface with the classic BSD ioctls: addresses (SIOCAIFADDR,
// SIOCAIFADDR_IN6, SIOCDIFADDR, SIOCDIFADDR_IN6), MTU (SIOCSIFMTU) and
// link state (SIOCGIFFLAGS/SIOCSIFFLAGS). Routes are not its business.
//
// # Framing
//
// Every packet read from or written to the socket is preceded by a 4-byte
// header: the packet's address family in network byte order, AF_INET (2)
// or AF_INET6 (30, Darwin's value; Linux's is 10). Framer implements
// loop.Framer with it, so a loop.PacketFD adds the header on send, chosen
// from the packet's IP version, in its own iovec or in the buffer's
// headroom, and strips it on receive, without copying the packet. This is
// not the Linux TUN packet-information header, which a utun socket would
// misread.
//
// # Portability
//
// The framing and the struct builders (MarshalIn6Aliasreq and the others)
// are pure and compile and run on every OS: they lay the ioctl structs out
// byte for byte as XNU does on darwin/arm64 and darwin/amd64, which share
// one layout, and the tests check each size and offset against the XNU
// headers. Open, Adopt and the Device methods need macOS; elsewhere they
// return an *OpError wrapping ErrNotSupported.
//
// # Privileges and threads
//
// The utun kernel control is privileged (CTL_FLAG_PRIVILEGED): Open needs
// root, and so do the address, MTU and flag ioctls. Nothing in the package
// depends on the calling thread. The socket is a raw non-blocking
// descriptor, not registered with the Go netpoller: reads and writes on
// Fd return unix.EAGAIN when they would block, and callers wait for
// readiness themselves, normally through package loop.
package utun
