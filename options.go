package tundra

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/tundra-go/tundra/tun"
	"github.com/tundra-go/tundra/vnet"
)

// Address is what Create accepts as the device's address: a netip.Addr, a
// netip.Prefix, or a string holding either ("fd11:b7b7:4360::2",
// "10.9.0.1/24").
type Address interface {
	netip.Addr | netip.Prefix | string
}

// IP is what the Peer and Netmask options accept: a netip.Addr or its
// string form.
type IP interface {
	netip.Addr | string
}

// Option configures Create.
type Option func(*config)

// config collects the options as given; resolve checks them and turns them
// into a spec. Parse errors are kept until resolve, so that Create reports
// the first bad argument in a fixed order, named.
type config struct {
	peer       string // as given, parsed by resolve
	peerSet    bool
	netmask    string
	netmaskSet bool
	prefixLen  int
	prefixSet  bool
	mtu        int
	mtuSet     bool
	name       string
	tap        bool
	packetInfo bool
	persist    bool
	owner      int
	ownerSet   bool
	group      int
	groupSet   bool
	queues     int
	queuesSet  bool
	exclusive  bool
	keepDAD    bool
	mode       CreateMode
	brokerPath string
	offloads   vnet.Offloads
	offloadSet bool
	// cloneDevice is the CloneDevice option (bare.go), "" for the default.
	cloneDevice string
}

func ipString[A IP](v A) string {
	switch x := any(v).(type) {
	case netip.Addr:
		if !x.IsValid() {
			return ""
		}
		return x.String()
	case string:
		return x
	}
	panic("unreachable")
}

// Peer sets the point-to-point peer address (Tundra's dstaddr): the kernel
// routes it through the device. Same family as the device's address.
func Peer[A IP](peer A) Option {
	s := ipString(peer)
	return func(c *config) { c.peer, c.peerSet = s, true }
}

// Netmask sets the prefix as a netmask ("255.255.255.0", "ffff:ffff::"). It
// must be contiguous and of the address's family.
func Netmask[A IP](mask A) Option {
	s := ipString(mask)
	return func(c *config) { c.netmask, c.netmaskSet = s, true }
}

// PrefixLen sets the prefix length (1..32 for IPv4, 1..128 for IPv6). The
// default is a host prefix (/32, /128), or the length written in the address.
func PrefixLen(bits int) Option {
	return func(c *config) { c.prefixLen, c.prefixSet = bits, true }
}

// MTU sets the link MTU, 68..65535, and at least 1280 for an IPv6 address.
// Without it the kernel's default (1500) stays.
func MTU(mtu int) Option { return func(c *config) { c.mtu, c.mtuSet = mtu, true } }

// Name asks for an interface name (at most 15 bytes, no '/', ':' or
// whitespace; a "%d" pattern lets the kernel number it). Without it the
// kernel picks tunN or tapN.
func Name(name string) Option { return func(c *config) { c.name = name } }

// TAP makes an Ethernet (layer 2) device instead of an IP (layer 3) TUN.
func TAP() Option { return func(c *config) { c.tap = true } }

// PacketInfo keeps the kernel's 4-byte packet-information header on every
// packet (IFF_NO_PI is set otherwise).
func PacketInfo() Option { return func(c *config) { c.packetInfo = true } }

// Persist makes the device outlive its file descriptors (TUNSETPERSIST).
// Close then leaves it in place; Device.SetPersist(false) undoes it.
func Persist() Option { return func(c *config) { c.persist = true } }

// Owner lets the user uid attach to the device without CAP_NET_ADMIN
// (TUNSETOWNER); usually given with Persist.
func Owner(uid int) Option { return func(c *config) { c.owner, c.ownerSet = uid, true } }

// Group lets members of gid attach without CAP_NET_ADMIN (TUNSETGROUP).
// With Owner as well, the kernel requires both to match.
func Group(gid int) Option { return func(c *config) { c.group, c.groupSet = gid, true } }

// Queues opens n queues (1..256); more than one makes a multi-queue device,
// over whose queues the kernel spreads flows.
func Queues(n int) Option { return func(c *config) { c.queues, c.queuesSet = n, true } }

// Exclusive refuses to attach to an existing device of the same name
// (IFF_TUN_EXCL): Create then fails instead of reusing it.
func Exclusive() Option { return func(c *config) { c.exclusive = true } }

// KeepDAD leaves IPv6 duplicate address detection on. By default Create
// marks IPv6 addresses IFA_F_NODAD so they are usable when it returns; a
// TUN device has no neighbours to detect, but a TAP device on a bridge may.
func KeepDAD() Option { return func(c *config) { c.keepDAD = true } }

// AllOffloads asks for every offload: TCP over IPv4 and IPv6, and UDP
// where the kernel has it.
var AllOffloads = vnet.Offloads{TCP4: true, TCP6: true, UDP: true}

// Offloads gives the device the virtio-net header (IFF_VNET_HDR) and asks
// the kernel for the offloads in o (TUNSETOFFLOAD): it then hands over TCP
// and UDP super-packets of up to 64 KiB, which RecvBatch splits into
// ordinary packets, and SendBatch merges same-flow packets into
// super-packets by the kernel's GRO rules, written with one writev each.
// Many packets per system call is what moves past one-packet-per-call
// speeds. What was agreed is Device.Offloads; Device.OffloadNotes says why
// anything was left out (an old kernel without UDP segmentation, or one
// that refused a coalesced write when Create tried one). Linux only, not
// through the broker.
//
// Offloads pay for bulk flows. Where nothing merges (small packets, many
// flows) each read costs the kernel more with the header than without,
// about 100 ns on the machine of docs/benchmarks.md, so a device that
// carries only such traffic is faster without them.
func Offloads(o vnet.Offloads) Option {
	return func(c *config) { c.offloads, c.offloadSet = o, true }
}

// CreateMode chooses how Create makes a device.
type CreateMode int

const (
	// Auto creates the device directly and, when the kernel refuses for
	// lack of privilege, asks the broker: Tundra's order. Lack of privilege
	// is /dev/net/tun not open to the user (EACCES or EPERM), TUNSETIFF's
	// EPERM, or EPERM from the first netlink request that configures the
	// device (an unprivileged owner of a persistent device gets that far);
	// any other error, such as netlink's EACCES for an IPv6 address on a
	// host with IPv6 disabled, is returned as it is. When the broker fails
	// too, the error gives both causes. Device.Fallback tells why the
	// broker was used.
	Auto CreateMode = iota
	// DirectOnly never asks the broker.
	DirectOnly
	// BrokerOnly always asks the broker (cmd/tundra-server).
	BrokerOnly
)

func (m CreateMode) String() string {
	switch m {
	case Auto:
		return "auto"
	case DirectOnly:
		return "direct"
	case BrokerOnly:
		return "broker"
	}
	return "CreateMode(" + fmt.Sprint(int(m)) + ")"
}

// Mode forces direct creation or the broker; the default is Auto.
func Mode(m CreateMode) Option { return func(c *config) { c.mode = m } }

// BrokerSocket sets the broker's socket (default /var/run/tundra.sock).
func BrokerSocket(path string) Option { return func(c *config) { c.brokerPath = path } }

// spec is a checked request: everything Create needs, nothing to parse.
type spec struct {
	local   netip.Addr
	bits    int
	peer    netip.Addr // zero: none
	mtu     int        // 0: leave the kernel's default
	tun     tun.Config
	queues  int
	persist bool
	owner   int // -1: not set
	group   int // -1: not set
	nodad   bool
	keepDAD bool // asked for explicitly: the broker cannot honour it
	mode    CreateMode
	broker  string // the broker's socket, "" for the default
	// offloads are those asked for; tun.VnetHdr says they were asked.
	offloads vnet.Offloads
}

func (s spec) prefix() netip.Prefix { return netip.PrefixFrom(s.local, s.bits) }

const (
	minMTU      = 68    // RFC 791: every IPv4 link carries 68 bytes
	minIPv6MTU  = 1280  // RFC 8200
	maxMTU      = 65535 // the IP total length field
	maxQueues   = 256   // the kernel's MAX_TAP_QUEUES
	maxUint32ID = math.MaxUint32 - 1
)

func addressArg[A Address](addr A) (prefix netip.Prefix, hasBits bool, given string, err error) {
	switch x := any(addr).(type) {
	case netip.Addr:
		if !x.IsValid() {
			return netip.Prefix{}, false, "", fmt.Errorf("the zero netip.Addr is not an address")
		}
		if err := checkUnicast("address", x); err != nil {
			return netip.Prefix{}, false, x.String(), err
		}
		return netip.PrefixFrom(x, x.BitLen()), false, x.String(), nil
	case netip.Prefix:
		if !x.IsValid() {
			return netip.Prefix{}, false, "", fmt.Errorf("the zero or invalid netip.Prefix is not an address")
		}
		return x, true, x.String(), nil
	case string:
		s := strings.TrimSpace(x)
		if s != x {
			return netip.Prefix{}, false, x, fmt.Errorf("%q has surrounding whitespace", x)
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return netip.Prefix{}, false, x, fmt.Errorf("%q is not an address with a prefix length: %v", x, err)
			}
			return p, true, x, nil
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, false, x, fmt.Errorf("%q is not an IPv4 or IPv6 address: %v", x, err)
		}
		if err := checkUnicast("address", a); err != nil {
			return netip.Prefix{}, false, x, err
		}
		return netip.PrefixFrom(a, a.BitLen()), false, x, nil
	}
	panic("unreachable")
}

// checkUnicast refuses addresses a device cannot own.
func checkUnicast(what string, a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return fmt.Errorf("%s %s has a zone; give the address without %%%s", what, a, a.Zone())
	case a.Is4In6():
		return fmt.Errorf("%s %s is an IPv4-mapped IPv6 address; give the IPv4 address %s", what, a, a.Unmap())
	case a.IsUnspecified():
		return fmt.Errorf("%s %s is the unspecified address", what, a)
	case a.IsMulticast():
		return fmt.Errorf("%s %s is a multicast address", what, a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s %s is the broadcast address", what, a)
	}
	return nil
}

// maskBits turns a netmask into a prefix length, refusing non-contiguous
// masks such as 255.0.255.0.
func maskBits(mask netip.Addr) (int, error) {
	b := mask.AsSlice()
	bits, seenZero := 0, false
	for _, octet := range b {
		for i := 7; i >= 0; i-- {
			if octet&(1<<i) != 0 {
				if seenZero {
					return 0, fmt.Errorf("%s is not contiguous (a one bit follows a zero bit)", mask)
				}
				bits++
			} else {
				seenZero = true
			}
		}
	}
	return bits, nil
}

// resolve checks every option and returns the request Create carries out.
// It is pure: no system call, so it is tested without privileges.
func resolve[A Address](addr A, opts []Option) (spec, error) {
	c := config{}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	s := spec{owner: -1, group: -1, queues: 1}
	p, hasBits, given, err := addressArg(addr)
	if err != nil {
		return spec{}, argError("address", err)
	}
	local := p.Addr()
	if err := checkUnicast("address", local); err != nil {
		return spec{}, argError("address", err)
	}
	s.local = local
	family := "IPv4"
	if local.Is6() {
		family = "IPv6"
	}
	maxBits := local.BitLen()

	if c.peerSet {
		peer, err := netip.ParseAddr(c.peer)
		if err != nil {
			return spec{}, argError("peer", fmt.Errorf("%q is not an IPv4 or IPv6 address: %v", c.peer, err))
		}
		if err := checkUnicast("peer", peer); err != nil {
			return spec{}, argError("peer", err)
		}
		if peer.Is6() != local.Is6() {
			return spec{}, argError("peer", fmt.Errorf("peer %s and address %s are of different families", peer, local))
		}
		if peer == local {
			return spec{}, argError("peer", fmt.Errorf("peer %s is the device's own address", peer))
		}
		s.peer = peer
	}

	// The prefix length: from the address, a netmask or PrefixLen, which
	// must agree when several are given.
	bits, from := maxBits, ""
	if hasBits {
		bits, from = p.Bits(), "address "+given
	}
	if c.netmaskSet {
		mask, err := netip.ParseAddr(c.netmask)
		if err != nil {
			return spec{}, argError("netmask", fmt.Errorf("%q is not a netmask: %v", c.netmask, err))
		}
		if mask.Is6() != local.Is6() || mask.Is4In6() {
			return spec{}, argError("netmask", fmt.Errorf("netmask %s is not an %s netmask", mask, family))
		}
		mb, err := maskBits(mask)
		if err != nil {
			return spec{}, argError("netmask", err)
		}
		if from != "" && mb != bits {
			return spec{}, argError("netmask", fmt.Errorf("netmask %s (/%d) contradicts the /%d of %s", mask, mb, bits, from))
		}
		bits, from = mb, "netmask "+mask.String()
	}
	if c.prefixSet {
		if c.prefixLen < 0 || c.prefixLen > maxBits {
			return spec{}, argError("prefix length", fmt.Errorf("%d is outside 1..%d for %s", c.prefixLen, maxBits, family))
		}
		if from != "" && c.prefixLen != bits {
			return spec{}, argError("prefix length", fmt.Errorf("/%d contradicts the /%d of %s", c.prefixLen, bits, from))
		}
		bits = c.prefixLen
	}
	if bits == 0 {
		return spec{}, argError("prefix length", fmt.Errorf("/0 would claim every %s address for the device; add a route instead", family))
	}
	s.bits = bits

	if c.mtuSet {
		if c.mtu < minMTU || c.mtu > maxMTU {
			return spec{}, argError("mtu", fmt.Errorf("%d is outside %d..%d", c.mtu, minMTU, maxMTU))
		}
		if local.Is6() && c.mtu < minIPv6MTU {
			return spec{}, argError("mtu", fmt.Errorf("%d is below %d, the IPv6 minimum: the kernel disables IPv6 on such a link and refuses the address with a bare EINVAL", c.mtu, minIPv6MTU))
		}
		s.mtu = c.mtu
	}

	if c.name != "" {
		if err := tun.ValidateName(c.name); err != nil {
			return spec{}, argError("name", err)
		}
	}
	if c.queuesSet && (c.queues < 1 || c.queues > maxQueues) {
		return spec{}, argError("queues", fmt.Errorf("%d is outside 1..%d", c.queues, maxQueues))
	}
	if c.queuesSet {
		s.queues = c.queues
	}
	if c.ownerSet {
		if c.owner < 0 || c.owner > maxUint32ID {
			return spec{}, argError("owner", fmt.Errorf("uid %d is outside 0..%d", c.owner, maxUint32ID))
		}
		s.owner = c.owner
	}
	if c.groupSet {
		if c.group < 0 || c.group > maxUint32ID {
			return spec{}, argError("group", fmt.Errorf("gid %d is outside 0..%d", c.group, maxUint32ID))
		}
		s.group = c.group
	}
	if c.mode < Auto || c.mode > BrokerOnly {
		return spec{}, argError("mode", fmt.Errorf("%v is not a create mode", c.mode))
	}
	s.mode, s.broker = c.mode, c.brokerPath
	s.persist = c.persist
	s.keepDAD = c.keepDAD
	s.nodad = local.Is6() && !c.keepDAD
	if c.offloadSet && c.tap {
		return spec{}, argError("offloads", errors.New("offloads are for TUN devices here: a TAP device's frames carry an Ethernet header the offload code does not parse"))
	}
	if c.offloadSet && c.packetInfo {
		return spec{}, argError("offloads", errors.New("offloads and the PI header do not go together: the virtio-net header replaces it"))
	}
	s.offloads = c.offloads
	s.tun = tun.Config{
		Name:       c.name,
		TAP:        c.tap,
		PacketInfo: c.packetInfo,
		MultiQueue: s.queues > 1,
		Exclusive:  c.exclusive,
		VnetHdr:    c.offloadSet,
		// CloneDevice is checked by the open itself, which names the path.
		CloneDevice: c.cloneDevice,
	}
	return s, nil
}
