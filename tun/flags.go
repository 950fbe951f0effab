package tun

import "strconv"

// Flags are the IFF_* bits of ifr_flags as TUNSETIFF, TUNGETIFF, TUNSETQUEUE
// and TUNGETFEATURES use them (linux/if_tun.h). The values are written out
// here rather than taken from golang.org/x/sys/unix so that the type and its
// String method compile on every OS.
//
// Flags is a plain value: safe to copy and use from any goroutine.
type Flags uint16

// The IFF_* bits of linux/if_tun.h.
const (
	FlagTUN         Flags = 0x0001 // IFF_TUN: layer-3 device, packets start with an IP header
	FlagTAP         Flags = 0x0002 // IFF_TAP: layer-2 device, packets start with an Ethernet header
	FlagNAPI        Flags = 0x0010 // IFF_NAPI: receive writes through NAPI
	FlagNAPIFrags   Flags = 0x0020 // IFF_NAPI_FRAGS: NAPI with fragments (TAP only, needs IFF_NAPI)
	FlagNoCarrier   Flags = 0x0040 // IFF_NO_CARRIER: TUNSETIFF brings the device up without carrier
	FlagNoPI        Flags = 0x1000 // IFF_NO_PI: no 4-byte packet-information header on reads and writes
	FlagOneQueue    Flags = 0x2000 // IFF_ONE_QUEUE: obsolete, accepted and ignored by the kernel
	FlagVnetHdr     Flags = 0x4000 // IFF_VNET_HDR: packets carry a struct virtio_net_hdr
	FlagTunExcl     Flags = 0x8000 // IFF_TUN_EXCL: TUNSETIFF fails with EBUSY if the name exists
	FlagMultiQueue  Flags = 0x0100 // IFF_MULTI_QUEUE: several fds (queues) may attach
	FlagAttachQueue Flags = 0x0200 // IFF_ATTACH_QUEUE: TUNSETQUEUE re-enables a detached queue
	FlagDetachQueue Flags = 0x0400 // IFF_DETACH_QUEUE: TUNSETQUEUE disables a queue; TUNGETIFF reports it
	FlagPersist     Flags = 0x0800 // IFF_PERSIST: read-only, set through TUNSETPERSIST

	// FlagNoFilter (IFF_NOFILTER) shares its value with FlagNoPI. TUNGETIFF
	// sets it whenever the queue has no socket filter attached, which is why
	// the NO_PI bit that TUNGETIFF reports cannot be trusted (see
	// Device.PacketInfo). String always prints this bit as NO_PI.
	FlagNoFilter Flags = 0x1000
)

// flagNames is in linux/if_tun.h order, which is also the order String
// prints, so "TUN|NO_PI|MULTI_QUEUE" reads like the header.
var flagNames = [...]struct {
	f    Flags
	name string
}{
	{FlagTUN, "TUN"},
	{FlagTAP, "TAP"},
	{FlagNAPI, "NAPI"},
	{FlagNAPIFrags, "NAPI_FRAGS"},
	{FlagNoCarrier, "NO_CARRIER"},
	{FlagNoPI, "NO_PI"},
	{FlagOneQueue, "ONE_QUEUE"},
	{FlagVnetHdr, "VNET_HDR"},
	{FlagTunExcl, "TUN_EXCL"},
	{FlagMultiQueue, "MULTI_QUEUE"},
	{FlagAttachQueue, "ATTACH_QUEUE"},
	{FlagDetachQueue, "DETACH_QUEUE"},
	{FlagPersist, "PERSIST"},
}

// String names the set bits joined by "|" in linux/if_tun.h order, without
// the IFF_ prefix, e.g. "TUN|NO_PI|MULTI_QUEUE". Bits the header does not
// define are appended as one hex number ("TUN|0x88"); zero prints as "0".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var b []byte
	for _, n := range flagNames {
		if f&n.f != 0 {
			if len(b) > 0 {
				b = append(b, '|')
			}
			b = append(b, n.name...)
			f &^= n.f
		}
	}
	if f != 0 {
		if len(b) > 0 {
			b = append(b, '|')
		}
		b = append(b, "0x"...)
		b = strconv.AppendUint(b, uint64(f), 16)
	}
	return string(b)
}
