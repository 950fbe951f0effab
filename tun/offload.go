package tun

import "strconv"

// Offload is a set of TUNSETOFFLOAD flags (TUN_F_* in
// include/uapi/linux/if_tun.h): the segmentation and checksum work the
// process reading a device with the virtio-net header takes on, so the
// kernel may hand it super-packets and partial checksums.
type Offload uint

const (
	OffloadCsum   Offload = 0x01 // TUN_F_CSUM: packets may carry a partial checksum
	OffloadTSO4   Offload = 0x02 // TUN_F_TSO4: TCP over IPv4 super-packets
	OffloadTSO6   Offload = 0x04 // TUN_F_TSO6: TCP over IPv6 super-packets
	OffloadTSOECN Offload = 0x08 // TUN_F_TSO_ECN: TSO with the ECN bits
	OffloadUFO    Offload = 0x10 // TUN_F_UFO: UDP fragmentation offload (obsolete)
	OffloadUSO4   Offload = 0x20 // TUN_F_USO4: UDP segmentation over IPv4 (Linux 6.2+)
	OffloadUSO6   Offload = 0x40 // TUN_F_USO6: UDP segmentation over IPv6 (Linux 6.2+)
)

func (o Offload) String() string {
	names := []struct {
		bit  Offload
		name string
	}{{OffloadCsum, "CSUM"}, {OffloadTSO4, "TSO4"}, {OffloadTSO6, "TSO6"}, {OffloadTSOECN, "TSO_ECN"},
		{OffloadUFO, "UFO"}, {OffloadUSO4, "USO4"}, {OffloadUSO6, "USO6"}}
	if o == 0 {
		return "none"
	}
	s := ""
	for _, n := range names {
		if o&n.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
			o &^= n.bit
		}
	}
	if o != 0 {
		if s != "" {
			s += "|"
		}
		s += "0x" + strconv.FormatUint(uint64(o), 16)
	}
	return s
}
