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

// Option configures Create or CreateBare. Options are made by the
// functions of this package (Name, MTU, Queues, ...); the zero Option does
// nothing. An Option is a value: it may be reused and shared between
// goroutines.
type Option struct {
	set func(*rawOptions)
}

// rawOptions collects the options as given; resolve checks them, one
// check per option, and turns them into a plan. Parse errors are kept
// until resolve, so that Create reports the first bad argument in a fixed
// order, named.
type rawOptions struct {
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
	// addrBits is the prefix length written in the address, if any;
	// addrBitsFrom says where it came from, for errors ("" if none).
	addrBits     int
	addrBitsFrom string
	// sys is set by tests only (system).
	sys *system
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
	return Option{func(c *rawOptions) { c.peer, c.peerSet = s, true }}
}

// Netmask sets the prefix as a netmask ("255.255.255.0", "ffff:ffff::"). It
// must be contiguous and of the address's family.
func Netmask[A IP](mask A) Option {
	s := ipString(mask)
	return Option{func(c *rawOptions) { c.netmask, c.netmaskSet = s, true }}
}

// PrefixLen sets the prefix length (1..32 for IPv4, 1..128 for IPv6). The
// default is a host prefix (/32, /128), or the length written in the address.
func PrefixLen(bits int) Option {
	return Option{func(c *rawOptions) { c.prefixLen, c.prefixSet = bits, true }}
}

// MTU sets the link MTU, 68..65535, and at least 1280 for an IPv6 address.
// Without it the kernel's default (1500) stays.
func MTU(mtu int) Option { return Option{func(c *rawOptions) { c.mtu, c.mtuSet = mtu, true }} }

// Name asks for an interface name (at most 15 bytes, no '/', ':' or
// whitespace; a "%d" pattern lets the kernel number it). Without it the
// kernel picks tunN or tapN.
func Name(name string) Option { return Option{func(c *rawOptions) { c.name = name }} }

// TAP makes an Ethernet (layer 2) device instead of an IP (layer 3) TUN.
func TAP() Option { return Option{func(c *rawOptions) { c.tap = true }} }

// PacketInfo keeps the kernel's 4-byte packet-information header on every
// packet (IFF_NO_PI is set otherwise).
func PacketInfo() Option { return Option{func(c *rawOptions) { c.packetInfo = true }} }

// Persist makes the device outlive its file descriptors (TUNSETPERSIST).
// Close then leaves it in place; Device.SetPersist(false) undoes it.
func Persist() Option { return Option{func(c *rawOptions) { c.persist = true }} }

// Owner lets the user uid attach to the device without CAP_NET_ADMIN
// (TUNSETOWNER); usually given with Persist.
func Owner(uid int) Option { return Option{func(c *rawOptions) { c.owner, c.ownerSet = uid, true }} }

// Group lets members of gid attach without CAP_NET_ADMIN (TUNSETGROUP).
// With Owner as well, the kernel requires both to match.
func Group(gid int) Option { return Option{func(c *rawOptions) { c.group, c.groupSet = gid, true }} }

// Queues opens n queues (1..256); more than one makes a multi-queue device,
// over whose queues the kernel spreads flows.
func Queues(n int) Option { return Option{func(c *rawOptions) { c.queues, c.queuesSet = n, true }} }

// Exclusive refuses to attach to an existing device of the same name
// (IFF_TUN_EXCL): Create then fails instead of reusing it.
func Exclusive() Option { return Option{func(c *rawOptions) { c.exclusive = true }} }

// KeepDAD leaves IPv6 duplicate address detection on. By default Create
// marks IPv6 addresses IFA_F_NODAD so they are usable when it returns; a
// TUN device has no neighbours to detect, but a TAP device on a bridge may.
func KeepDAD() Option { return Option{func(c *rawOptions) { c.keepDAD = true }} }

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
	return Option{func(c *rawOptions) { c.offloads, c.offloadSet = o, true }}
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
	// too, the error gives both causes. Device.FallbackReason tells why the
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
func Mode(m CreateMode) Option { return Option{func(c *rawOptions) { c.mode = m }} }

// BrokerSocket sets the broker's socket (default /var/run/tundra.sock).
func BrokerSocket(path string) Option { return Option{func(c *rawOptions) { c.brokerPath = path }} }

// plan is a checked request: everything Create needs, nothing to parse.
// Create's options and the broker's requests both become one.
type plan struct {
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
	// sys is the kernel interface a test substituted (system), nil for
	// the real one.
	sys *system
}

func (s plan) prefix() netip.Prefix { return netip.PrefixFrom(s.local, s.bits) }

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

// collect applies opts to fresh rawOptions.
func collect(opts []Option) rawOptions {
	var c rawOptions
	for _, o := range opts {
		if o.set != nil {
			o.set(&c)
		}
	}
	return c
}

// resolve checks every option and returns the plan Create carries out.
// It is pure: no system call, so it is tested without privileges.
func resolve[A Address](addr A, opts []Option) (plan, error) {
	p, hasBits, given, err := addressArg(addr)
	if err != nil {
		return plan{}, argError("address", err)
	}
	c := collect(opts)
	if hasBits {
		c.addrBits, c.addrBitsFrom = p.Bits(), "address "+given
	}
	return c.check(p.Addr())
}

// check runs the per-option checks in their fixed order (the first bad
// argument is the one reported) and returns the plan for a device with
// address local.
func (c *rawOptions) check(local netip.Addr) (plan, error) {
	if err := checkUnicast("address", local); err != nil {
		return plan{}, argError("address", err)
	}
	s := plan{local: local, owner: -1, group: -1, queues: 1}
	for _, check := range []struct {
		arg string
		run func(*plan) error
	}{
		{"peer", c.checkPeer},
		{"", c.checkPrefix}, // names its own argument: netmask or prefix length
		{"mtu", c.checkMTU},
		{"name", c.checkName},
		{"queues", c.checkQueues},
		{"owner", c.checkOwner},
		{"group", c.checkGroup},
		{"mode", c.checkMode},
		{"offloads", c.checkOffloads},
	} {
		if err := check.run(&s); err != nil {
			var e *Error
			if check.arg == "" || errors.As(err, &e) {
				return plan{}, err
			}
			return plan{}, argError(check.arg, err)
		}
	}
	s.persist, s.keepDAD = c.persist, c.keepDAD
	s.nodad = local.Is6() && !c.keepDAD
	s.offloads, s.sys = c.offloads, c.sys
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

func family(a netip.Addr) string {
	if a.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// checkPeer: Peer parses, is unicast, of the address's family, and not the
// address itself.
func (c *rawOptions) checkPeer(s *plan) error {
	if !c.peerSet {
		return nil
	}
	peer, err := netip.ParseAddr(c.peer)
	if err != nil {
		return fmt.Errorf("%q is not an IPv4 or IPv6 address: %v", c.peer, err)
	}
	if err := checkUnicast("peer", peer); err != nil {
		return err
	}
	if peer.Is6() != s.local.Is6() {
		return fmt.Errorf("peer %s and address %s are of different families", peer, s.local)
	}
	if peer == s.local {
		return fmt.Errorf("peer %s is the device's own address", peer)
	}
	s.peer = peer
	return nil
}

// checkPrefix: the prefix length comes from the address, Netmask or
// PrefixLen, which must agree when several are given, and is not /0.
func (c *rawOptions) checkPrefix(s *plan) error {
	maxBits := s.local.BitLen()
	bits, from := maxBits, ""
	if c.addrBitsFrom != "" {
		bits, from = c.addrBits, c.addrBitsFrom
	}
	if c.netmaskSet {
		mask, err := netip.ParseAddr(c.netmask)
		if err != nil {
			return argError("netmask", fmt.Errorf("%q is not a netmask: %v", c.netmask, err))
		}
		if mask.Is6() != s.local.Is6() || mask.Is4In6() {
			return argError("netmask", fmt.Errorf("netmask %s is not an %s netmask", mask, family(s.local)))
		}
		mb, err := maskBits(mask)
		if err != nil {
			return argError("netmask", err)
		}
		if from != "" && mb != bits {
			return argError("netmask", fmt.Errorf("netmask %s (/%d) contradicts the /%d of %s", mask, mb, bits, from))
		}
		bits, from = mb, "netmask "+mask.String()
	}
	if c.prefixSet {
		if c.prefixLen < 0 || c.prefixLen > maxBits {
			return argError("prefix length", fmt.Errorf("%d is outside 1..%d for %s", c.prefixLen, maxBits, family(s.local)))
		}
		if from != "" && c.prefixLen != bits {
			return argError("prefix length", fmt.Errorf("/%d contradicts the /%d of %s", c.prefixLen, bits, from))
		}
		bits = c.prefixLen
	}
	if bits == 0 {
		return argError("prefix length", fmt.Errorf("/0 would claim every %s address for the device; add a route instead", family(s.local)))
	}
	s.bits = bits
	return nil
}

// checkMTU: 68..65535, and at least 1280 with an IPv6 address.
func (c *rawOptions) checkMTU(s *plan) error {
	if !c.mtuSet {
		return nil
	}
	if c.mtu < minMTU || c.mtu > maxMTU {
		return fmt.Errorf("%d is outside %d..%d", c.mtu, minMTU, maxMTU)
	}
	if s.local.Is6() && c.mtu < minIPv6MTU {
		return fmt.Errorf("%d is below %d, the IPv6 minimum: the kernel disables IPv6 on such a link and refuses the address with a bare EINVAL", c.mtu, minIPv6MTU)
	}
	s.mtu = c.mtu
	return nil
}

// checkName: an interface name the kernel would take.
func (c *rawOptions) checkName(*plan) error {
	if c.name == "" {
		return nil
	}
	return tun.ValidateName(c.name)
}

// checkQueues: 1..256.
func (c *rawOptions) checkQueues(s *plan) error {
	if !c.queuesSet {
		return nil
	}
	if c.queues < 1 || c.queues > maxQueues {
		return fmt.Errorf("%d is outside 1..%d", c.queues, maxQueues)
	}
	s.queues = c.queues
	return nil
}

// checkOwner: a uid the kernel can store.
func (c *rawOptions) checkOwner(s *plan) error {
	return setID("uid", c.owner, c.ownerSet, &s.owner)
}

// checkGroup: a gid the kernel can store.
func (c *rawOptions) checkGroup(s *plan) error {
	return setID("gid", c.group, c.groupSet, &s.group)
}

// setID stores id in dst if it was set and checkID accepts it.
func setID(what string, id int, set bool, dst *int) error {
	if !set {
		return nil
	}
	if err := checkID(what, id); err != nil {
		return err
	}
	*dst = id
	return nil
}

// checkID is the Owner and Group rule, for SetOwner and SetGroup too: an
// id the kernel can store, not (uid_t)-1, which means none.
func checkID(what string, id int) error {
	if id < 0 || id > maxUint32ID {
		return fmt.Errorf("%s %d is outside 0..%d", what, id, maxUint32ID)
	}
	return nil
}

// checkMode: one of the CreateMode constants.
func (c *rawOptions) checkMode(s *plan) error {
	if c.mode < Auto || c.mode > BrokerOnly {
		return fmt.Errorf("%v is not a create mode", c.mode)
	}
	s.mode, s.broker = c.mode, c.brokerPath
	return nil
}

// checkOffloads: only on a TUN device without the PI header.
func (c *rawOptions) checkOffloads(*plan) error {
	switch {
	case c.offloadSet && c.tap:
		return errors.New("offloads are for TUN devices here: a TAP device's frames carry an Ethernet header the offload code does not parse")
	case c.offloadSet && c.packetInfo:
		return errors.New("offloads and the PI header do not go together: the virtio-net header replaces it")
	}
	return nil
}
