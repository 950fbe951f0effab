// Package vnet is the byte-level core of Tundra's offloads: the
// virtio-net header that a Linux TUN device opened with IFF_VNET_HDR puts in
// front of every packet, the splitting of the TCP and UDP super-packets the
// kernel hands over once TUNSETOFFLOAD has enabled segmentation offloads
// (the read path), the coalescing of same-flow segments into super-packets
// the kernel accepts back (the write path), and the checks a forwarder needs
// to move super-packets between two offload-capable devices untouched
// (passthrough).
//
// The package makes no system calls and keeps no global state: it only reads
// and writes the byte slices it is given, so it compiles and behaves the same
// on every platform, and the device I/O lives elsewhere (the loop's
// PacketFD).
//
// # Wire format and byte order
//
// A TUN device uses the 10-byte struct virtio_net_hdr (HeaderLen) unless
// TUNSETVNETHDRSZ asks for a longer one. Its 16-bit fields are in the
// device's virtio byte order, which for TUN is the host's native order
// unless TUNSETVNETLE (or, on kernels built with TUN_VNET_CROSS_LE,
// TUNSETVNETBE) overrides it (drivers/net/tun_vnet.h). This package always
// reads and writes them little-endian: that is the native order of every
// host Tundra targets (amd64, arm64, riscv64, loong64, ppc64le, ...). On a
// big-endian host package tun switches the device to little-endian with
// TUNSETVNETLE when offloads are enabled, and refuses them with an error
// wrapping tun.ErrVnetByteOrder when the kernel cannot switch.
//
// # Ownership and concurrency
//
// Every function keeps no reference to the slices it is given once it
// returns, except Coalescer.Coalesce, whose Items point into the caller's
// packet buffers (see there). All functions are pure and safe to call from
// any number of goroutines at once on distinct buffers. A Coalescer holds
// per-call scratch state: use one per goroutine (one per loop).
//
// # Wiring it to a device
//
// Read path: read each packet with its header (a PacketFD whose framing
// header is HeaderLen bytes leaves it in the headroom before offset), then
// DecodeHeader and Split into the batch of buffers the consumer works on.
// A super-packet can be up to 64 KiB, so read it into a buffer that large:
// either a scratch buffer split into the batch, or the batch's first buffer
// itself, which Split then splits in place. Split completes the checksums
// the kernel left to the device (FlagNeedsCsum); the consumer gets plain IP
// packets. A consumer with fewer buffers than a super-packet has segments
// keeps it and takes it in parts with SplitFrom.
//
// Write path: Coalescer.Coalesce turns a batch bufs[i][offset:] into Items,
// each one write: Send(item.Vec...) is one writev of the virtio-net header,
// the rewritten headers and the payloads, with no payload copied. Vec
// already starts with the header, so the descriptor must not add a framing
// header of its own on that write. Config.MaxParts caps len(Vec) at the
// loop's writev limit (DefaultMaxParts is loop.MaxSendParts, 129: the
// header and up to 128 segments per super-packet).
//
// Passthrough: PrepareForward checks a super-packet read from one device
// against what the other accepts and gives the header to write in front of
// it unchanged.
//
// # Errors
//
// Every error the package returns is an *Error, which wraps one of the
// sentinels ErrTruncated, ErrMalformed, ErrUnsupported, ErrNoRoom and
// ErrNotNegotiated, so callers test the kind with errors.Is and read the
// detail (including how many buffers a super-packet needs) with errors.As.
// Malformed input never makes a function panic.
package vnet
