package tun

// Config says what Open should create or attach to. The zero value asks for
// a TUN device without the PI header whose name the kernel chooses (tun0,
// tun1, ...).
//
// Config is a plain value: copy it freely and use it from any goroutine.
type Config struct {
	// Name is the interface name. "" lets the kernel choose tunN or tapN; a
	// pattern with one "%d", like "wg%d", lets the kernel fill in the
	// number. Anything else is checked with ValidateName before any
	// syscall. If an interface of that name exists, Open attaches to it
	// (unless Exclusive is set).
	Name string

	// Index asks for this interface index (TUNSETIFINDEX) instead of the
	// next free one; 0 lets the kernel choose. The kernel can apply it only
	// when it creates the device, so a nonzero Index makes Open exclusive:
	// it fails with EBUSY, and says why, when an interface of that name
	// exists or another interface already has the index. Linux only.
	Index int

	// TAP asks for a layer-2 (Ethernet) device instead of a layer-3 TUN.
	TAP bool

	// PacketInfo keeps the 4-byte packet-information header (struct tun_pi)
	// in front of every packet read or written. By default the device is
	// opened with IFF_NO_PI and packets are bare.
	PacketInfo bool

	// MultiQueue sets IFF_MULTI_QUEUE so that Device.AddQueue can attach
	// more fds to spread packets over several readers.
	MultiQueue bool

	// VnetHdr sets IFF_VNET_HDR: every packet then starts with a struct
	// virtio_net_hdr (after the PI header, if any). This package does not
	// interpret that header.
	VnetHdr bool

	// Exclusive sets IFF_TUN_EXCL: Open fails with EBUSY instead of
	// attaching when an interface with this name already exists.
	Exclusive bool

	// CloneDevice is the clone device Open (and later AddQueue) opens,
	// "" for DefaultCloneDevice. Some systems, and containers that bind
	// the node elsewhere, have it at another path (tunctl's -f).
	CloneDevice string
}

// DefaultCloneDevice is the TUN/TAP clone device: every open gives a fresh
// fd that TUNSETIFF then binds to an interface.
const DefaultCloneDevice = "/dev/net/tun"
