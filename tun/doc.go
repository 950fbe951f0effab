// Package tun opens and drives Linux TUN/TAP devices through /dev/net/tun.
//
// It owns the character-device side of a TUN/TAP interface: creating or
// attaching with TUNSETIFF, reading back what the kernel did with TUNGETIFF,
// multi-queue devices (TUNSETQUEUE), persistence and ownership
// (TUNSETPERSIST, TUNSETOWNER, TUNSETGROUP), adopting a descriptor some other
// process opened, and the framing of the packets that cross the descriptor
// (the optional 4-byte packet-information header). It never configures
// addresses, routes or link state: that is rtnetlink's job, done elsewhere.
//
// The rest of the driver's settings are Device methods, because the kernel
// keeps them per device, for every queue: SetSendBuffer (TUNSETSNDBUF; read
// back per queue with Queue.SendBuffer), SetTxFilter (TUNSETTXFILTER, a TAP
// device's destination-MAC allow-list), SetSocketFilter and
// ClearSocketFilter (TUNATTACHFILTER, TUNDETACHFILTER: a classic BPF filter
// on TAP devices, beside the eBPF SetFilterProgram), SetCarrier
// (TUNSETCARRIER), SetVnetHdrSize and VnetHdrSize (TUNSETVNETHDRSZ,
// TUNGETVNETHDRSZ) and SetLinkType (TUNSETLINK, the ARPHRD type, only while
// the link is down). TUNSETIFINDEX must come before TUNSETIFF, so it is
// Config.Index, applied by Open. None of them needs CAP_NET_ADMIN: holding
// an attached queue is the permission.
//
// The portable parts (Flags, ValidateName, the PI header helpers, OpError)
// are pure and compile on every OS. Open, Adopt and Features need Linux; on
// other systems they return an *OpError wrapping ErrNotSupported.
//
// A device is created in the network namespace of the OS thread that calls
// Open, and every queue fd stays tied to that namespace for its whole life,
// whichever thread later reads or writes it.
//
// Queue.Read and Queue.Write are single non-blocking read(2)/write(2) calls
// on the raw descriptor: the package does not use the Go netpoller or
// os.File, so callers wait for readiness themselves (poll, epoll, or a
// retry policy) when they see an error wrapping unix.EAGAIN.
package tun
