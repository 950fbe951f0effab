package tundra

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/tundra-go/tundra/internal/packet"
	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/vnet"
	"golang.org/x/sys/unix"
)

// negotiateOffloads asks the kernel for the offloads in want
// (TUNSETOFFLOAD, through sys, which a test replaces to play a kernel that
// refuses), dropping UDP segmentation on a kernel that refuses it, and
// returns what it agreed to with a note for what it did not.
func negotiateOffloads(sys system, t *tun.Device, want vnet.Offloads) (vnet.Offloads, []string, error) {
	flags := tun.OffloadCsum
	if want.TCP4 {
		flags |= tun.OffloadTSO4
	}
	if want.TCP6 {
		flags |= tun.OffloadTSO6
	}
	if want.UDP {
		flags |= tun.OffloadUSO4 | tun.OffloadUSO6
	}
	got := want
	var notes []string
	err := sys.setOffload(t, flags)
	if err != nil && want.UDP && errors.Is(err, unix.EINVAL) {
		notes = append(notes, fmt.Sprintf("UDP segmentation off: the kernel refused USO4|USO6 (Linux 6.2 has them): %v", err))
		got.UDP = false
		err = sys.setOffload(t, flags&^(tun.OffloadUSO4|tun.OffloadUSO6))
	}
	if err != nil {
		return vnet.Offloads{}, nil, err
	}
	return got, notes, nil
}

// probeOffloads writes one coalesced super-packet of each kind the device
// agreed to, from and to the device's own address (so that nothing leaves
// the host: the kernel drops a packet arriving with a local source, or
// answers it locally), and turns off the coalescing of any kind the kernel
// refuses with EINVAL: some kernels have accepted TUNSETOFFLOAD and then
// rejected the writes it allows. Only the address's family is probed.
// The writes go through sys, which a test replaces.
func probeOffloads(sys system, fd int, local netip.Addr, got vnet.Offloads) (vnet.Offloads, int, []string) {
	var notes []string
	segments := vnet.MaxSegments
	src := netip.AddrPortFrom(local, 9)
	dst := netip.AddrPortFrom(local, 9)
	payload := make([]byte, 512)
	try := func(kind string, pkts [][]byte) bool {
		co := vnet.NewCoalescer(vnet.Config{Offloads: got})
		items, err := co.Coalesce(pkts, 0)
		if err != nil || len(items) != 1 || len(items[0].Index) != 2 {
			notes = append(notes, fmt.Sprintf("%s coalescing off: the probe packets did not merge (%v)", kind, err))
			return false
		}
		if _, err := sys.probeWrite(fd, items[0].Vec); err != nil {
			if errors.Is(err, unix.EINVAL) {
				notes = append(notes, fmt.Sprintf("%s coalescing off: the kernel refused a coalesced write: %v", kind, err))
				return false
			}
			notes = append(notes, fmt.Sprintf("%s probe inconclusive (%v); coalescing left on", kind, err))
		}
		return true
	}
	tcp := got.TCP4
	if local.Is6() {
		tcp = got.TCP6
	}
	if tcp {
		a, _ := packet.TCP(src, dst, 1, 1, packet.TCPAck, payload)
		b, _ := packet.TCP(src, dst, 1+uint32(len(payload)), 1, packet.TCPAck, payload)
		if !try("TCP", [][]byte{a, b}) {
			if local.Is6() {
				got.TCP6 = false
			} else {
				got.TCP4 = false
			}
		}
	}
	if got.UDP {
		a, _ := packet.UDP(src, dst, payload)
		b, _ := packet.UDP(src, dst, payload)
		if !try("UDP", [][]byte{a, b}) {
			got.UDP = false
		}
	}
	if got.UDP && probeSegments(sys, fd, src, dst, got) {
		segments = vnet.MaxSegmentsLimit
	}
	return got, segments, notes
}

// probeSegments reports whether the kernel takes a UDP super-packet of
// vnet.MaxSegmentsLimit small segments (Linux 6.11 raised its limit from
// 64 to 128): more packets per write when it does.
func probeSegments(sys system, fd int, src, dst netip.AddrPort, got vnet.Offloads) bool {
	pkts := make([][]byte, vnet.MaxSegmentsLimit)
	for i := range pkts {
		pkts[i], _ = packet.UDP(src, dst, make([]byte, 16))
	}
	co := vnet.NewCoalescer(vnet.Config{Offloads: got, MaxSegments: vnet.MaxSegmentsLimit})
	items, err := co.Coalesce(pkts, 0)
	if err != nil || len(items) != 1 {
		return false
	}
	_, err = sys.probeWrite(fd, items[0].Vec)
	return err == nil
}

// enableOffloads switches the device's queues to the virtio-net header
// path, coalescing what o allows, at most segments packets per write.
func (d *Device) enableOffloads(o vnet.Offloads, segments int, notes []string) {
	d.offloads, d.offloadNotes = o, notes
	for _, q := range d.queues {
		q.framer = nil
		q.vn.co = vnet.NewCoalescer(vnet.Config{Offloads: o, MaxSegments: segments})
	}
}
