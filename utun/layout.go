package utun

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The builders below lay out, byte for byte, the structs that the utun
// control socket and the interface ioctls take, as XNU defines them for
// darwin/arm64 and darwin/amd64. Both are LP64 and little-endian with the
// same alignment rules, so every struct has a single layout; each builder's
// comment gives the size and field offsets, and the tests check them
// against an independent Go mirror of the C declarations.
//
// They are pure functions of their arguments, compiled and tested on every
// OS. Multi-byte fields the C headers declare in host order are written
// little-endian explicitly (not in the order of the machine running the
// code); ports and flow labels are in network order, and always zero here.

// darwinOrder is the host byte order of every Darwin target this package
// supports (arm64 and amd64).
var darwinOrder = binary.LittleEndian

// Field offsets. sockaddr_in, bsd/netinet/in.h:
//
//	struct sockaddr_in {
//		__uint8_t   sin_len;     // 0
//		sa_family_t sin_family;  // 1 (__uint8_t)
//		in_port_t   sin_port;    // 2 (network order)
//		struct in_addr sin_addr; // 4
//		char        sin_zero[8]; // 8
//	};                           // 16
const (
	offSinLen    = 0
	offSinFamily = 1
	offSinAddr   = 4
)

// sockaddr_in6, bsd/netinet6/in6.h:
//
//	struct sockaddr_in6 {
//		__uint8_t   sin6_len;      // 0
//		sa_family_t sin6_family;   // 1
//		in_port_t   sin6_port;     // 2 (network order)
//		__uint32_t  sin6_flowinfo; // 4 (network order)
//		struct in6_addr sin6_addr; // 8
//		__uint32_t  sin6_scope_id; // 24
//	};                             // 28, 4-aligned
const (
	offSin6Len     = 0
	offSin6Family  = 1
	offSin6Addr    = 8
	offSin6ScopeID = 24
)

// struct ifreq, bsd/net/if.h: char ifr_name[IFNAMSIZ] at 0, then the
// union ifr_ifru at 16. The union's largest members are 16 bytes (struct
// sockaddr; struct ifkpi, 16 under #pragma pack(4)) and caddr_t makes it
// 8-aligned, so sizeof(struct ifreq) is 32. ifru_flags is a short (on
// Apple, not FreeBSD's short[2]) and ifru_mtu an int, both at 16.
const (
	offIfrName  = 0
	offIfrIfru  = 16
	offIfrFlags = offIfrIfru
	offIfrMTU   = offIfrIfru
	offIfrAddr  = offIfrIfru
)

// struct ifaliasreq, bsd/net/if.h (struct in_aliasreq in
// bsd/netinet/in_var.h is the same with sockaddr_in members):
//
//	char ifra_name[IFNAMSIZ];         // 0
//	struct sockaddr ifra_addr;        // 16
//	struct sockaddr ifra_broadaddr;   // 32, ifra_dstaddr on a p2p link
//	struct sockaddr ifra_mask;        // 48
//	                                  // 64
const (
	offIfraAddr      = 16
	offIfraBroadaddr = 32
	offIfraMask      = 48
)

// struct in6_ifreq, bsd/netinet6/in6_var.h: ifr_name at 0, the union
// ifr_ifru at 16. Its largest member is struct icmp6_ifstat, 34 u_quad_t
// counters (272 bytes), which also makes it 8-aligned: sizeof is 288.
// ifru_addr, a sockaddr_in6, is at 16.
const (
	offIn6IfrAddr = 16
)

// struct in6_aliasreq, bsd/netinet6/in6_var.h:
//
//	char    ifra_name[IFNAMSIZ];             // 0
//	struct  sockaddr_in6 ifra_addr;          // 16
//	struct  sockaddr_in6 ifra_dstaddr;       // 44
//	struct  sockaddr_in6 ifra_prefixmask;    // 72
//	int     ifra_flags;                      // 100
//	struct in6_addrlifetime ifra_lifetime;   // 104 (8-aligned: time_t)
//		time_t    ia6t_expire;     // 104
//		time_t    ia6t_preferred;  // 112
//		u_int32_t ia6t_vltime;     // 120
//		u_int32_t ia6t_pltime;     // 124
//	                                         // 128
const (
	offIn6IfraAddr       = 16
	offIn6IfraDstaddr    = 44
	offIn6IfraPrefixmask = 72
	offIn6IfraFlags      = 100
	offIn6IfraExpire     = 104
	offIn6IfraPreferred  = 112
	offIn6IfraVltime     = 120
	offIn6IfraPltime     = 124
)

// struct ctl_info, bsd/sys/kern_control.h: u_int32_t ctl_id at 0, char
// ctl_name[MAX_KCTL_NAME] at 4; 100 bytes.
const (
	offCtlID   = 0
	offCtlName = 4
)

// struct sockaddr_ctl, bsd/sys/kern_control.h:
//
//	u_char    sc_len;          // 0
//	u_char    sc_family;       // 1, AF_SYSTEM
//	u_int16_t ss_sysaddr;      // 2, AF_SYS_CONTROL
//	u_int32_t sc_id;           // 4
//	u_int32_t sc_unit;         // 8
//	u_int32_t sc_reserved[5];  // 12
//	                           // 32
const (
	offScLen     = 0
	offScFamily  = 1
	offScSysaddr = 2
	offScID      = 4
	offScUnit    = 8
)

// MarshalCtlInfo returns struct ctl_info (100 bytes) for the CTLIOCGINFO
// ioctl that looks up the kernel control called name: ctl_id (offset 0)
// zero, for the kernel to fill in, and name NUL-terminated in ctl_name
// (offset 4, 96 bytes). name must be 1 to 95 bytes without NUL; otherwise
// the error is an *OpError wrapping ErrInvalidName. Pure.
func MarshalCtlInfo(name string) ([]byte, error) {
	const op = "marshal ctl_info"
	switch {
	case name == "":
		return nil, &OpError{Op: op, Err: fmt.Errorf("%w: empty control name", ErrInvalidName)}
	case len(name) > maxKctlName-1:
		return nil, &OpError{Op: op, Err: fmt.Errorf("%w: control name is %d bytes, the limit is %d (MAX_KCTL_NAME is 96 including the NUL)", ErrInvalidName, len(name), maxKctlName-1)}
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return nil, &OpError{Op: op, Err: fmt.Errorf("%w: NUL byte at offset %d of the control name", ErrInvalidName, i)}
		}
	}
	b := make([]byte, sizeofCtlInfo)
	copy(b[offCtlName:], name)
	return b, nil
}

// MarshalSockaddrCtl returns struct sockaddr_ctl (32 bytes) addressing unit
// of the kernel control id: sc_len 32, sc_family AF_SYSTEM (32),
// ss_sysaddr AF_SYS_CONTROL (2), sc_id and sc_unit in host order, and
// sc_reserved zero. For utun, unit 0 lets the kernel choose and N+1 asks
// for utunN. Pure.
func MarshalSockaddrCtl(id uint32, unit uint32) []byte {
	b := make([]byte, sizeofSockaddrCtl)
	b[offScLen] = sizeofSockaddrCtl
	b[offScFamily] = afSystem
	darwinOrder.PutUint16(b[offScSysaddr:], afSysControl)
	darwinOrder.PutUint32(b[offScID:], id)
	darwinOrder.PutUint32(b[offScUnit:], unit)
	return b
}

// MarshalIfreq returns a struct ifreq (32 bytes) holding only ifr_name, the
// request for SIOCGIFFLAGS and SIOCGIFMTU. Pure.
func MarshalIfreq(ifname string) ([]byte, error) {
	if err := checkIfname("marshal ifreq", ifname); err != nil {
		return nil, err
	}
	return newIfreq(ifname), nil
}

// MarshalIfreqMTU returns struct ifreq (32 bytes) with ifr_name and
// ifru_mtu (an int at offset 16) for SIOCSIFMTU. mtu must be within
// IF_MINMTU..IF_MAXMTU (72..65535), the range ifioctl accepts; otherwise
// the error wraps ErrInvalidArgument. Pure.
func MarshalIfreqMTU(ifname string, mtu int) ([]byte, error) {
	const op = "marshal ifreq (mtu)"
	if err := checkIfname(op, ifname); err != nil {
		return nil, err
	}
	if mtu < ifMinMTU || mtu > ifMaxMTU {
		return nil, &OpError{Op: op, Name: ifname, Err: fmt.Errorf("%w: MTU %d outside %d..%d (IF_MINMTU..IF_MAXMTU)", ErrInvalidArgument, mtu, ifMinMTU, ifMaxMTU)}
	}
	b := newIfreq(ifname)
	darwinOrder.PutUint32(b[offIfrMTU:], uint32(mtu))
	return b, nil
}

// ParseIfreqMTU returns ifru_mtu from a struct ifreq that SIOCGIFMTU
// filled in. b must hold at least the 32-byte struct. Pure.
func ParseIfreqMTU(b []byte) (int, error) {
	if len(b) < sizeofIfreq {
		return 0, &OpError{Op: "parse ifreq (mtu)", Err: fmt.Errorf("%w: have %d bytes, need %d", ErrInvalidArgument, len(b), sizeofIfreq)}
	}
	return int(int32(darwinOrder.Uint32(b[offIfrMTU:]))), nil
}

// MarshalIfreqFlags returns struct ifreq (32 bytes) with ifr_name and
// ifru_flags (a short at offset 16) for SIOCSIFFLAGS. The flags are the
// IFF_* bits of bsd/net/if.h, such as IFFUp; the kernel keeps those it does
// not let userland change. Pure.
func MarshalIfreqFlags(ifname string, flags uint16) ([]byte, error) {
	if err := checkIfname("marshal ifreq (flags)", ifname); err != nil {
		return nil, err
	}
	b := newIfreq(ifname)
	darwinOrder.PutUint16(b[offIfrFlags:], flags)
	return b, nil
}

// ParseIfreqFlags returns ifru_flags from a struct ifreq that SIOCGIFFLAGS
// filled in. b must hold at least the 32-byte struct. Pure.
func ParseIfreqFlags(b []byte) (uint16, error) {
	if len(b) < sizeofIfreq {
		return 0, &OpError{Op: "parse ifreq (flags)", Err: fmt.Errorf("%w: have %d bytes, need %d", ErrInvalidArgument, len(b), sizeofIfreq)}
	}
	return darwinOrder.Uint16(b[offIfrFlags:]), nil
}

// MarshalIfreqAddr4 returns struct ifreq (32 bytes) with ifr_name and an
// IPv4 sockaddr_in in ifru_addr (offset 16), the request SIOCDIFADDR takes
// to delete that address. addr must be IPv4 (not IPv4-mapped IPv6). Pure.
func MarshalIfreqAddr4(ifname string, addr netip.Addr) ([]byte, error) {
	const op = "marshal ifreq (addr)"
	if err := checkIfname(op, ifname); err != nil {
		return nil, err
	}
	if err := check4(addr, "address"); err != nil {
		return nil, &OpError{Op: op, Name: ifname, Err: err}
	}
	b := newIfreq(ifname)
	putSockaddrIn(b[offIfrAddr:], addr)
	return b, nil
}

// MarshalIn6Ifreq returns struct in6_ifreq (288 bytes) with ifr_name and a
// sockaddr_in6 in ifru_addr (offset 16), the request SIOCDIFADDR_IN6 takes
// to delete that address. addr must be IPv6 (not IPv4-mapped) without a
// zone: the interface is given by name, and the kernel scopes a link-local
// address to it itself. Pure.
func MarshalIn6Ifreq(ifname string, addr netip.Addr) ([]byte, error) {
	const op = "marshal in6_ifreq"
	if err := checkIfname(op, ifname); err != nil {
		return nil, err
	}
	if err := check6(addr, "address"); err != nil {
		return nil, &OpError{Op: op, Name: ifname, Err: err}
	}
	b := make([]byte, sizeofIn6Ifreq)
	copy(b[offIfrName:offIfrName+ifNameSize], ifname)
	putSockaddrIn6(b[offIn6IfrAddr:], addr)
	return b, nil
}

// MarshalIfaliasreq returns struct ifaliasreq (64 bytes) for SIOCAIFADDR,
// adding the IPv4 address addr.Addr() with netmask addr.Bits() to ifname:
// ifra_addr, ifra_broadaddr and ifra_mask are sockaddr_in (sin_len 16,
// AF_INET) at offsets 16, 32 and 48.
//
// On a point-to-point interface, which a utun interface is, the kernel
// reads ifra_broadaddr as the destination and refuses the request with
// EDESTADDRREQ when it is 0.0.0.0 (bsd/netinet/in.c, in_control). So peer,
// when valid, is written there; when peer is the zero netip.Addr the local
// address is written instead, as "ifconfig utunN inet A A" does.
//
// addr must be an IPv4 prefix of length 1 to 32 whose address is not
// 0.0.0.0, 255.255.255.255 or multicast (the kernel refuses those with
// EINVAL); peer, if valid, must be IPv4 and not 0.0.0.0. Errors wrap
// ErrInvalidName or ErrInvalidArgument. Pure.
func MarshalIfaliasreq(ifname string, addr netip.Prefix, peer netip.Addr) ([]byte, error) {
	const op = "marshal ifaliasreq"
	if err := checkIfname(op, ifname); err != nil {
		return nil, err
	}
	bad := func(err error) ([]byte, error) { return nil, &OpError{Op: op, Name: ifname, Err: err} }
	if !addr.IsValid() {
		return bad(fmt.Errorf("%w: invalid prefix", ErrInvalidArgument))
	}
	a := addr.Addr()
	if err := check4(a, "address"); err != nil {
		return bad(err)
	}
	if addr.Bits() < 1 {
		return bad(fmt.Errorf("%w: prefix length 0 in %v", ErrInvalidArgument, addr))
	}
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return bad(fmt.Errorf("%w: %v cannot be an interface address", ErrInvalidArgument, a))
	}
	dst := a
	if peer.IsValid() {
		if err := check4(peer, "peer"); err != nil {
			return bad(err)
		}
		if peer.IsUnspecified() {
			return bad(fmt.Errorf("%w: peer 0.0.0.0 (the kernel wants a destination on a point-to-point link)", ErrInvalidArgument))
		}
		dst = peer
	}
	b := make([]byte, sizeofIfaliasreq)
	copy(b[offIfrName:offIfrName+ifNameSize], ifname)
	putSockaddrIn(b[offIfraAddr:], a)
	putSockaddrIn(b[offIfraBroadaddr:], dst)
	putSockaddrIn(b[offIfraMask:], mask4(addr.Bits()))
	return b, nil
}

// MarshalIn6Aliasreq returns struct in6_aliasreq (128 bytes) for
// SIOCAIFADDR_IN6, adding the IPv6 address addr.Addr() with prefix length
// addr.Bits() to ifname:
//
//   - ifra_addr (16): the address, as sockaddr_in6 (sin6_len 28, AF_INET6);
//   - ifra_dstaddr (44): peer, or all zero (AF_UNSPEC) when peer is the
//     zero netip.Addr;
//   - ifra_prefixmask (72): the mask of addr.Bits() ones, as sockaddr_in6;
//   - ifra_flags (100): flags, IN6_IFF_* bits such as In6IFFNoDAD;
//   - ifra_lifetime (104): ia6t_expire and ia6t_preferred 0,
//     ia6t_vltime and ia6t_pltime ND6_INFINITE_LIFETIME (0xffffffff).
//
// addr must be an IPv6 prefix (not IPv4-mapped, no zone) of length 1 to 128
// whose address is neither :: nor multicast; XNU's in6_update_ifa refuses a
// prefix length of 0. On a point-to-point interface it also refuses a
// destination unless the prefix length is 128, so a valid peer requires a
// /128 prefix; the peer must be IPv6 without a zone and not ::. Errors wrap
// ErrInvalidName or ErrInvalidArgument. Pure.
func MarshalIn6Aliasreq(ifname string, addr netip.Prefix, peer netip.Addr, flags int32) ([]byte, error) {
	const op = "marshal in6_aliasreq"
	if err := checkIfname(op, ifname); err != nil {
		return nil, err
	}
	bad := func(err error) ([]byte, error) { return nil, &OpError{Op: op, Name: ifname, Err: err} }
	if !addr.IsValid() {
		return bad(fmt.Errorf("%w: invalid prefix", ErrInvalidArgument))
	}
	a := addr.Addr()
	if err := check6(a, "address"); err != nil {
		return bad(err)
	}
	if addr.Bits() < 1 {
		return bad(fmt.Errorf("%w: prefix length 0 in %v", ErrInvalidArgument, addr))
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return bad(fmt.Errorf("%w: %v cannot be an interface address", ErrInvalidArgument, a))
	}
	if peer.IsValid() {
		if err := check6(peer, "peer"); err != nil {
			return bad(err)
		}
		if peer.IsUnspecified() {
			return bad(fmt.Errorf("%w: peer :: (leave the peer unset for none)", ErrInvalidArgument))
		}
		if addr.Bits() != 128 {
			return bad(fmt.Errorf("%w: a peer needs a /128 address on a point-to-point interface, have %v", ErrInvalidArgument, addr))
		}
	}
	b := make([]byte, sizeofIn6Aliasreq)
	copy(b[offIfrName:offIfrName+ifNameSize], ifname)
	putSockaddrIn6(b[offIn6IfraAddr:], a)
	if peer.IsValid() {
		putSockaddrIn6(b[offIn6IfraDstaddr:], peer)
	}
	putSockaddrIn6(b[offIn6IfraPrefixmask:], mask6(addr.Bits()))
	darwinOrder.PutUint32(b[offIn6IfraFlags:], uint32(flags))
	// ia6t_expire and ia6t_preferred stay 0: the kernel computes them
	// from the lifetimes (in6_update_ifa).
	darwinOrder.PutUint32(b[offIn6IfraVltime:], nd6InfiniteLifetime)
	darwinOrder.PutUint32(b[offIn6IfraPltime:], nd6InfiniteLifetime)
	return b, nil
}

func newIfreq(ifname string) []byte {
	b := make([]byte, sizeofIfreq)
	copy(b[offIfrName:offIfrName+ifNameSize], ifname)
	return b
}

// check4 reports why a is not a plain IPv4 address, or nil.
func check4(a netip.Addr, what string) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: invalid %s", ErrInvalidArgument, what)
	case a.Is4In6():
		return fmt.Errorf("%w: %s %v is IPv4-mapped IPv6; use its Unmap()", ErrInvalidArgument, what, a)
	case !a.Is4():
		return fmt.Errorf("%w: %s %v is not IPv4", ErrInvalidArgument, what, a)
	}
	return nil
}

// check6 reports why a is not a plain, unzoned IPv6 address, or nil.
func check6(a netip.Addr, what string) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: invalid %s", ErrInvalidArgument, what)
	case a.Is4():
		return fmt.Errorf("%w: %s %v is not IPv6", ErrInvalidArgument, what, a)
	case a.Is4In6():
		return fmt.Errorf("%w: %s %v is IPv4-mapped; configure IPv4 addresses as IPv4", ErrInvalidArgument, what, a)
	case a.Zone() != "":
		return fmt.Errorf("%w: %s %v has a zone; the interface name already scopes it", ErrInvalidArgument, what, a)
	}
	return nil
}

// putSockaddrIn writes a sockaddr_in for the IPv4 address a into b[0:16].
func putSockaddrIn(b []byte, a netip.Addr) {
	_ = b[sizeofSockaddrIn-1]
	b[offSinLen] = sizeofSockaddrIn
	b[offSinFamily] = AFInet
	a4 := a.As4()
	copy(b[offSinAddr:offSinAddr+4], a4[:])
}

// putSockaddrIn6 writes a sockaddr_in6 for the IPv6 address a into
// b[0:28]; port, flow label and scope ID stay zero.
func putSockaddrIn6(b []byte, a netip.Addr) {
	_ = b[sizeofSockaddrIn6-1]
	b[offSin6Len] = sizeofSockaddrIn6
	b[offSin6Family] = AFInet6
	a16 := a.As16()
	copy(b[offSin6Addr:offSin6Addr+16], a16[:])
}

// mask4 and mask6 return the netmask of the given prefix length.
func mask4(bits int) netip.Addr {
	var m [4]byte
	fillMask(m[:], bits)
	return netip.AddrFrom4(m)
}

func mask6(bits int) netip.Addr {
	var m [16]byte
	fillMask(m[:], bits)
	return netip.AddrFrom16(m)
}

func fillMask(m []byte, bits int) {
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
}
