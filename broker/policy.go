package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// Policy limits what a member of the allowed group may ask for. Root is not
// subject to it. Start from DefaultPolicy: the zero Policy does not pass
// Validate (its MTU range is empty), and with a valid MTU range it would
// still allow no prefix, no name and no queue.
//
// A Policy is a plain value. The Server copies it at construction, so
// changing the original afterwards has no effect; Check may be called from
// any goroutine as long as nobody modifies the Policy meanwhile.
type Policy struct {
	// AllowedPrefixes lists where addresses may come from: the requested
	// address's prefix (masked) must lie inside one of them, and so must
	// the peer. A host route (/32, /128) inside an allowed prefix is
	// allowed; a prefix wider than the allowed one is not.
	AllowedPrefixes []netip.Prefix `json:"allowed_prefixes"`
	// WidestPrefixV4 and NarrowestPrefixV4 bound the prefix length of a
	// requested IPv4 address, WidestPrefixV6 and NarrowestPrefixV6 that of
	// an IPv6 one: a /8 inside fc00::/7 is allowed by AllowedPrefixes but
	// would hand one member half of all unique-local space. Each must be
	// 1..32 (IPv4) or 1..128 (IPv6), widest <= narrowest.
	WidestPrefixV4    int `json:"widest_prefix_v4"`
	NarrowestPrefixV4 int `json:"narrowest_prefix_v4"`
	WidestPrefixV6    int `json:"widest_prefix_v6"`
	NarrowestPrefixV6 int `json:"narrowest_prefix_v6"`
	// NamePatterns lists path.Match patterns for requested interface
	// names, matched against the name as sent (so "tun*" matches "tun%d"
	// and "tun7"). An empty name, which lets the kernel choose tunN or
	// tapN, is always allowed. Whatever the patterns say, Request.Validate
	// allows only ASCII letters, digits, '.', '_' and '-' in a name, plus
	// one "%d".
	NamePatterns []string `json:"name_patterns"`
	// MinMTU and MaxMTU bound a requested MTU. A request without an MTU
	// (the kernel's default, 1500) is always allowed.
	MinMTU int `json:"min_mtu"`
	MaxMTU int `json:"max_mtu"`
	// MaxQueues caps Request.Queues.
	MaxQueues int `json:"max_queues"`
	// AllowTAP allows layer-2 (TAP) devices.
	AllowTAP bool `json:"allow_tap"`
	// MaxDevicesPerUID caps the devices one uid may hold at once through
	// this server: devices it created for the uid that still exist,
	// whoever holds them now, plus requests in progress.
	MaxDevicesPerUID int `json:"max_devices_per_uid"`
}

// Defaults of the prefix-length bounds (see Policy.WidestPrefixV6). An
// IPv6 member gets at most a /48, the size of one unique-local site
// (RFC 4193), so that four devices (the default quota) hold at most four
// sites' worth of fc00::/7 and never a wide slice of it; an IPv4 member at
// most a /16. Host routes (/32, /128) are always within bounds.
const (
	DefaultWidestPrefixV4    = 16
	DefaultNarrowestPrefixV4 = 32
	DefaultWidestPrefixV6    = 48
	DefaultNarrowestPrefixV6 = 128
)

// DefaultPolicy returns the policy the server uses when none is given:
// unique-local IPv6 (fc00::/7) and IPv6 link-local addresses (fe80::/10,
// which are scoped to their interface) only, prefixes no wider than /48,
// names matching "tun*" or "tap*", MTU 1280..9000, up to 8 queues, TAP
// allowed, 4 devices per uid. IPv4 is allowed only where the administrator
// lists IPv4 prefixes: no IPv4 range is safe on every host (169.254.0.0/16,
// link-local, is routed like any other prefix on Linux and holds the cloud
// metadata service at 169.254.169.254). The result is a fresh value the
// caller may modify.
func DefaultPolicy() Policy {
	return Policy{
		AllowedPrefixes: []netip.Prefix{
			netip.MustParsePrefix("fc00::/7"),
			netip.MustParsePrefix("fe80::/10"),
		},
		WidestPrefixV4:    DefaultWidestPrefixV4,
		NarrowestPrefixV4: DefaultNarrowestPrefixV4,
		WidestPrefixV6:    DefaultWidestPrefixV6,
		NarrowestPrefixV6: DefaultNarrowestPrefixV6,
		NamePatterns:      []string{"tun*", "tap*"},
		MinMTU:            1280,
		MaxMTU:            9000,
		MaxQueues:         8,
		AllowTAP:          true,
		MaxDevicesPerUID:  4,
	}
}

// Validate checks that p is self-consistent: valid prefixes, prefix-length
// bounds inside each family's range, valid patterns, MinMTU <= MaxMTU inside MinMTU..MaxMTU of the package, queues
// inside 0..MaxQueues, a non-negative device cap. The error names the
// field.
func (p Policy) Validate() error {
	for i, pf := range p.AllowedPrefixes {
		if !pf.IsValid() {
			return fmt.Errorf("policy: allowed_prefixes[%d]: invalid prefix %v", i, pf)
		}
		if pf.Addr().Is4In6() || pf.Addr().Zone() != "" {
			return fmt.Errorf("policy: allowed_prefixes[%d]: %v is IPv4-mapped or zoned", i, pf)
		}
	}
	if p.WidestPrefixV4 < 1 || p.NarrowestPrefixV4 > 32 || p.WidestPrefixV4 > p.NarrowestPrefixV4 {
		return fmt.Errorf("policy: widest_prefix_v4 %d and narrowest_prefix_v4 %d must satisfy 1 <= widest <= narrowest <= 32", p.WidestPrefixV4, p.NarrowestPrefixV4)
	}
	if p.WidestPrefixV6 < 1 || p.NarrowestPrefixV6 > 128 || p.WidestPrefixV6 > p.NarrowestPrefixV6 {
		return fmt.Errorf("policy: widest_prefix_v6 %d and narrowest_prefix_v6 %d must satisfy 1 <= widest <= narrowest <= 128", p.WidestPrefixV6, p.NarrowestPrefixV6)
	}
	for i, pat := range p.NamePatterns {
		if _, err := path.Match(pat, ""); err != nil {
			return fmt.Errorf("policy: name_patterns[%d]: %q: %w", i, pat, err)
		}
	}
	if p.MinMTU < MinMTU || p.MaxMTU > MaxMTU || p.MinMTU > p.MaxMTU {
		return fmt.Errorf("policy: min_mtu %d and max_mtu %d must satisfy %d <= min_mtu <= max_mtu <= %d", p.MinMTU, p.MaxMTU, MinMTU, MaxMTU)
	}
	if p.MaxQueues < 0 || p.MaxQueues > MaxQueues {
		return fmt.Errorf("policy: max_queues %d is outside 0..%d", p.MaxQueues, MaxQueues)
	}
	if p.MaxDevicesPerUID < 0 {
		return fmt.Errorf("policy: max_devices_per_uid %d is negative", p.MaxDevicesPerUID)
	}
	return nil
}

// LoadPolicy reads a policy in JSON from r. Fields it leaves out keep
// their DefaultPolicy values; unknown fields, trailing data and invalid
// values are errors, so a typo never silently loosens or ignores a rule.
// It reads at most 1 MiB and is safe to call from any goroutine. Example:
//
//	{"allowed_prefixes": ["fd00:7::/48"], "max_devices_per_uid": 2}
func LoadPolicy(r io.Reader) (Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return Policy{}, fmt.Errorf("policy: read: %w", err)
	}
	p := DefaultPolicy()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("policy: trailing data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// HostAddr is one address configured on one of the host's interfaces, as
// the server sees it when it checks a request. A plain value, safe to copy
// and share between goroutines.
type HostAddr struct {
	Name   string       // interface name, for messages
	Index  int          // interface index
	Prefix netip.Prefix // local address with its prefix length
	Peer   netip.Addr   // point-to-point peer, or the zero Addr
}

// Check reports whether p allows r, given the addresses now configured on
// the host. The error, nil when allowed, says which rule refused what. It
// does not look at the device quota (the Server counts devices). Check
// expects r to have passed Request.Validate; it is pure and safe from any
// goroutine.
//
// An address is refused when its prefix, or the peer, is outside every
// allowed prefix, when the prefix is a default route (/0), or when it
// overlaps a prefix, address or peer of another interface: claiming it
// would divert that interface's traffic. IPv6 link-local prefixes of other
// interfaces are not compared, since each link has its own fe80::/64.
func (p Policy) Check(r Request, host []HostAddr) error {
	if r.TAP && !p.AllowTAP {
		return errors.New("tap: TAP devices are not allowed")
	}
	if q := r.queues(); q > p.MaxQueues {
		return fmt.Errorf("queues: %d exceeds the limit of %d", q, p.MaxQueues)
	}
	if r.MTU != 0 && (r.MTU < p.MinMTU || r.MTU > p.MaxMTU) {
		return fmt.Errorf("mtu: %d is outside the allowed %d..%d", r.MTU, p.MinMTU, p.MaxMTU)
	}
	if r.Name != "" && !p.nameAllowed(r.Name) {
		return fmt.Errorf("name: %s matches none of the allowed patterns %s", quoteName(r.Name), p.patterns())
	}

	pm := r.Addr.Masked()
	if pm.Bits() == 0 {
		return fmt.Errorf("address: %v is a default route", r.Addr)
	}
	if !p.prefixAllowed(pm) {
		return fmt.Errorf("address: %v is not inside an allowed prefix (%s)", r.Addr, p.prefixes())
	}
	widest, narrowest, fam := p.WidestPrefixV6, p.NarrowestPrefixV6, "IPv6"
	if pm.Addr().Is4() {
		widest, narrowest, fam = p.WidestPrefixV4, p.NarrowestPrefixV4, "IPv4"
	}
	if pm.Bits() < widest || pm.Bits() > narrowest {
		return fmt.Errorf("address: prefix length /%d of %v is outside the allowed /%d../%d for %s", pm.Bits(), r.Addr, widest, narrowest, fam)
	}
	if r.Peer.IsValid() && !p.prefixAllowed(netip.PrefixFrom(r.Peer, r.Peer.BitLen())) {
		return fmt.Errorf("peer: %v is not inside an allowed prefix (%s)", r.Peer, p.prefixes())
	}
	for _, h := range host {
		hp := h.Prefix.Masked()
		if !hp.IsValid() || (hp.Addr().Is6() && hp.Addr().IsLinkLocalUnicast()) {
			continue
		}
		if hp.Overlaps(pm) {
			return fmt.Errorf("address: %v overlaps %v of interface %s", r.Addr, h.Prefix, quoteName(h.Name))
		}
		if h.Peer.IsValid() && pm.Contains(h.Peer) {
			return fmt.Errorf("address: %v contains %v, the peer of interface %s", r.Addr, h.Peer, quoteName(h.Name))
		}
		if r.Peer.IsValid() && h.Peer == r.Peer {
			return fmt.Errorf("peer: %v is the peer of interface %s", r.Peer, quoteName(h.Name))
		}
		if r.Peer.IsValid() && hp.Contains(r.Peer) {
			return fmt.Errorf("peer: %v is inside %v of interface %s", r.Peer, h.Prefix, quoteName(h.Name))
		}
	}
	return nil
}

func (p Policy) nameAllowed(name string) bool {
	for _, pat := range p.NamePatterns {
		if ok, err := path.Match(pat, name); err == nil && ok {
			return true
		}
	}
	return false
}

func (p Policy) prefixAllowed(pm netip.Prefix) bool {
	for _, a := range p.AllowedPrefixes {
		a = a.Masked()
		if a.Addr().Is4() == pm.Addr().Is4() && a.Bits() <= pm.Bits() && a.Contains(pm.Addr()) {
			return true
		}
	}
	return false
}

func (p Policy) prefixes() string {
	if len(p.AllowedPrefixes) == 0 {
		return "none are allowed"
	}
	s := make([]string, len(p.AllowedPrefixes))
	for i, a := range p.AllowedPrefixes {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func (p Policy) patterns() string {
	if len(p.NamePatterns) == 0 {
		return "(none: leave the name empty)"
	}
	return "(" + strings.Join(p.NamePatterns, ", ") + ")"
}

// HostRoute is one route in one of the host's routing tables, as the
// server sees it when it checks a request. A plain value, safe to copy and
// share between goroutines.
type HostRoute struct {
	Dst     netip.Prefix // destination
	Table   uint32       // routing table: 254 main, 255 local, ...
	Type    uint8        // RTN_*: 1 unicast, 2 local, 3 broadcast, 4 anycast, ...
	Gateway netip.Addr   // next hop, or the zero Addr
	Index   int          // output interface, or 0
	Name    string       // output interface's name, for messages
}

// Route types and tables the route check knows (rtnetlink's RTN_* and
// RT_TABLE_*).
const (
	rtnLocal     = 2
	rtnBroadcast = 3
	rtnAnycast   = 4
	tableDefault = 253
	tableMain    = 254
	tableLocal   = 255
)

// linkLocal6 is where the kernel's per-interface fe80::/64 routes live.
var linkLocal6 = netip.MustParsePrefix("fe80::/10")

// CheckRoutes reports whether r's prefix or peer overlaps a destination
// the host routes today, in any routing table: a new device's connected
// route is more specific than most of the host's routes and would win
// over them, so claiming such a prefix diverts traffic the host sends
// elsewhere (for example to a cloud's metadata service). The error names
// the route, its table and its device. Three kinds of route are exempt:
//
//   - default routes (0.0.0.0/0, ::/0): overlapping them is the point of
//     a new private network;
//   - IPv6 link-local routes (inside fe80::/10), which are scoped to their
//     interface;
//   - the local table's entries the kernel derives from the host's own
//     addresses (types local, broadcast and anycast), which Check already
//     compares against.
//
// CheckRoutes is pure and safe from any goroutine.
func (p Policy) CheckRoutes(r Request, routes []HostRoute) error {
	pm := r.Addr.Masked()
	for _, rt := range routes {
		dst := rt.Dst.Masked()
		if !dst.IsValid() || dst.Bits() == 0 {
			continue
		}
		if dst.Addr().Is6() && linkLocal6.Overlaps(dst) && dst.Bits() >= linkLocal6.Bits() {
			continue
		}
		if rt.Table == tableLocal && (rt.Type == rtnLocal || rt.Type == rtnBroadcast || rt.Type == rtnAnycast) {
			continue
		}
		if dst.Overlaps(pm) {
			return fmt.Errorf("address: %v overlaps the route to %s", r.Addr, rt.describe())
		}
		if r.Peer.IsValid() && dst.Contains(r.Peer) {
			return fmt.Errorf("peer: %v is inside the route to %s", r.Peer, rt.describe())
		}
	}
	return nil
}

// describe prints a route as ip-route(8) would, roughly:
// "fd12:3456::/48 via fd00::1 dev v0 (table main)".
func (rt HostRoute) describe() string {
	var b strings.Builder
	switch rt.Type {
	case 6:
		b.WriteString("blackhole ")
	case 7:
		b.WriteString("unreachable ")
	case 8:
		b.WriteString("prohibit ")
	}
	b.WriteString(rt.Dst.String())
	if rt.Gateway.IsValid() {
		b.WriteString(" via " + rt.Gateway.String())
	}
	switch {
	case rt.Name != "":
		b.WriteString(" dev " + quoteName(rt.Name))
	case rt.Index > 0:
		fmt.Fprintf(&b, " dev #%d", rt.Index)
	}
	b.WriteString(" (table " + tableName(rt.Table) + ")")
	return b.String()
}

func tableName(t uint32) string {
	switch t {
	case tableMain, 0:
		return "main"
	case tableLocal:
		return "local"
	case tableDefault:
		return "default"
	}
	return strconv.FormatUint(uint64(t), 10)
}
