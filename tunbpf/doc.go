// Package tunbpf builds, loads and attaches eBPF filter and steering
// programs for Linux TUN devices, with github.com/cilium/ebpf and no C
// toolchain: the ready-made programs are assembled instruction by
// instruction with cilium's asm package.
//
// # What the kernel does
//
// A TUN/TAP device has two eBPF hooks, both per device (one of each for all
// its queues and for every process holding it), both run only on packets the
// host sends into the device, that is on what userspace reads; packets
// userspace writes never meet them. The facts below are from the kernel's
// drivers/net/tun.c (Linux 4.16 and later).
//
//   - The filter (Device.SetFilterProgram, AttachFilter) runs just before a
//     packet is queued for a reader. Its return value is a length: 0 drops
//     the packet and counts it in the device's tx_dropped statistic, a value
//     smaller than the packet truncates it to that many bytes, and any value
//     at least the packet length delivers it whole.
//   - The steering program (Device.SetSteeringProgram, AttachSteering) runs
//     first, while more than one queue is attached, and picks the queue:
//     uint16(return value) modulo the number of attached queues. It replaces
//     the kernel's own flow-based choice.
//
// Both see the packet as the kernel holds it: for a TUN device the bare IP
// packet from its first byte, whatever Config.PacketInfo and Config.VnetHdr
// say (those headers are added later, when a queue reads the packet); for a
// TAP device the Ethernet frame. The kernel accepts only programs of type
// BPF_PROG_TYPE_SOCKET_FILTER (ebpf.SocketFilter); AttachFilter and
// AttachSteering refuse any other type with ErrProgramType before the ioctl.
// Socket filters cannot read packet memory directly: they use the legacy
// LD_ABS/LD_IND loads or the bpf_skb_load_bytes helper, and an LD_ABS/LD_IND
// load past the end of the packet ends the program with return value 0.
//
// # Attaching to a device of the front door
//
// LinkFilter and LinkSteering take a *tundra.Device (from tundra.Create or
// tundra.Adopt) and return a Link, as cilium/ebpf's link package does:
// closing the Link detaches the program, closing it twice is harmless, and
// a Link closed after its device, or after a newer program took its hook,
// leaves the device alone. AttachFilter and AttachSteering are the
// lower-level form for a *tun.Device, detached with its Clear methods.
//
// # Ready-made programs
//
// Filter describes a filter (address family, IP protocols, destination
// prefixes, TCP/UDP destination ports, a snap length) and FlowSteering a
// steering program that keeps each flow on one queue. Both expect a TUN
// device (layer 3): on a TAP device they would read the Ethernet header as
// an IP header. Their exact rules, including what happens to fragments,
// IPv6 extension headers and malformed packets, are documented on the types.
// LoadProgram loads a program the caller compiled (an ELF object, for
// example from clang -target bpf) for AttachFilter or AttachSteering.
//
// # Privileges
//
// Loading a program is the privileged step: BPF_PROG_LOAD of a socket
// filter needs CAP_BPF (or CAP_SYS_ADMIN), unless the sysctl
// kernel.unprivileged_bpf_disabled is 0, in which case anyone may load
// socket filters of up to 4096 instructions (many distributions set it to
// 2, which forbids unprivileged loading). On kernels before 5.11 the
// program's memory is also charged to RLIMIT_MEMLOCK; call
// github.com/cilium/ebpf/rlimit.RemoveMemlock first there. Attaching needs
// only a queue fd of the device: the ioctls check no capability. The kernel
// keeps its own reference to an attached program, so the *ebpf.Program may
// be closed once attached.
//
// Where the kernel lacks a feature, errors wrap both tun.ErrBPFNotSupported
// (or tun.ErrNotSupported on other operating systems) and
// ebpf.ErrNotSupported, so either test with errors.Is works.
//
// # Threads
//
// Filter and FlowSteering are plain values, safe to copy and use from any
// goroutine; Spec and Program build a fresh program on every call. The
// functions of this package are safe to call concurrently; AttachFilter and
// AttachSteering are serialised with the Device's other control operations.
//
// The package compiles on every OS so that code using it does too; outside
// Linux, loading or attaching fails with a not-supported error.
package tunbpf
