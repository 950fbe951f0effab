package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
)

// This file holds the portable halves of the device settings in
// settings_linux.go: the argument types and the pure encoders that turn
// them into the bytes the kernel's ioctls read. They compile on every OS so
// that callers can build the arguments anywhere and the encoders can be
// tested without root.

// SendBufferUnlimited is the send buffer every queue starts with (INT_MAX
// bytes: no limit), and the value that gives it back (see
// Device.SetSendBuffer).
const SendBufferUnlimited = math.MaxInt32

// VnetHdrSizeMin is the smallest virtio-net header size the kernel accepts
// (sizeof(struct virtio_net_hdr), 10 bytes) and the size every device
// starts with. See Device.SetVnetHdrSize.
const VnetHdrSizeMin = 10

// TxFilterExact is how many addresses of a TxFilter the kernel matches
// exactly (FLT_EXACT_COUNT in drivers/net/tun.c). Further addresses must
// be multicast and are matched through a 64-bit hash of their CRC, so other
// multicast addresses with the same hash pass too.
const TxFilterExact = 8

// txFilterAllMulti is TUN_FLT_ALLMULTI from linux/if_tun.h.
const txFilterAllMulti = 0x0001

// TxFilter is the destination MAC allow-list of a TAP device
// (TUNSETTXFILTER, struct tun_filter). While it is set, the kernel drops
// every frame it would hand to the queues whose destination address is not
// on the list (counting it in the device's tx_dropped), before any socket
// or eBPF filter runs. Broadcast (ff:ff:ff:ff:ff:ff) is a multicast address
// for this purpose: list it, or set AllMulti, or ARP requests and other
// broadcasts are dropped too.
//
// The zero value, no addresses, is "no filter": the kernel treats an empty
// list as switching the filter off, whatever AllMulti says.
//
// TxFilter is a plain value; the package never retains or modifies Addrs.
type TxFilter struct {
	// AllMulti (TUN_FLT_ALLMULTI) lets every multicast and broadcast
	// frame through, in addition to the listed addresses.
	AllMulti bool

	// Addrs are the 6-byte MAC addresses to let through. The first
	// TxFilterExact are matched exactly; any beyond that must be multicast
	// (the kernel hashes them, and silently switches the whole filter off
	// if one of them is unicast, so encoding refuses that). At most 65535.
	Addrs []net.HardwareAddr
}

// errTxFilter is wrapped by every encoding error of a TxFilter, so callers
// can tell a refused argument from a kernel failure.
var errTxFilter = errors.New("invalid TX filter")

// marshal encodes f as the kernel reads it: struct tun_filter
// { __u16 flags; __u16 count; __u8 addr[count][6]; } in native byte order,
// with no padding (the header is 4 bytes and addresses are byte arrays).
func (f TxFilter) marshal() ([]byte, error) {
	if len(f.Addrs) > math.MaxUint16 {
		return nil, fmt.Errorf("%w: %d addresses, the kernel's count is 16 bits", errTxFilter, len(f.Addrs))
	}
	if f.AllMulti && len(f.Addrs) == 0 {
		return nil, fmt.Errorf("%w: AllMulti with no address: the kernel treats an empty list as no filter at all", errTxFilter)
	}
	b := make([]byte, 4, 4+6*len(f.Addrs))
	var flags uint16
	if f.AllMulti {
		flags |= txFilterAllMulti
	}
	binary.NativeEndian.PutUint16(b[0:], flags)
	binary.NativeEndian.PutUint16(b[2:], uint16(len(f.Addrs)))
	for i, a := range f.Addrs {
		if len(a) != 6 {
			return nil, fmt.Errorf("%w: address %d (%v) is %d bytes, not a 6-byte Ethernet MAC", errTxFilter, i, a, len(a))
		}
		if i >= TxFilterExact && a[0]&1 == 0 {
			return nil, fmt.Errorf("%w: address %d (%v) is unicast; only the first %d addresses may be "+
				"(the kernel would silently switch the filter off)", errTxFilter, i, a, TxFilterExact)
		}
		b = append(b, a...)
	}
	return b, nil
}

// BPFInstruction is one classic BPF instruction (struct sock_filter), as
// Device.SetSocketFilter takes them: Op is the opcode (BPF_LD|BPF_H|BPF_ABS
// and so on, from linux/filter.h), Jt and Jf the jump offsets taken when a
// conditional jump is true or false, K the constant. Tools such as
// `tcpdump -dd` print programs in exactly this form.
type BPFInstruction struct {
	Op     uint16
	Jt, Jf uint8
	K      uint32
}

// bpfMaxInstructions is BPF_MAXINSNS, the longest classic program the
// kernel loads.
const bpfMaxInstructions = 4096

// errBPFProgram is wrapped by the encoding errors of a classic program.
var errBPFProgram = errors.New("invalid classic BPF program")

// marshalBPF encodes prog as the kernel's array of struct sock_filter
// { __u16 code; __u8 jt; __u8 jf; __u32 k; }: 8 bytes each, native byte
// order. The kernel checks the program itself (bpf_check_classic); this only
// refuses what it could not even copy.
func marshalBPF(prog []BPFInstruction) ([]byte, error) {
	if len(prog) == 0 || len(prog) > bpfMaxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, want 1 to %d", errBPFProgram, len(prog), bpfMaxInstructions)
	}
	b := make([]byte, 8*len(prog))
	for i, in := range prog {
		o := b[8*i:]
		binary.NativeEndian.PutUint16(o[0:], in.Op)
		o[2], o[3] = in.Jt, in.Jf
		binary.NativeEndian.PutUint32(o[4:], in.K)
	}
	return b, nil
}
