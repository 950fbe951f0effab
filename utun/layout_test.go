package utun

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unsafe"
)

// Go mirrors of the XNU declarations, field for field, to check the sizes
// and offsets layout.go uses by a second, independent route: Go lays out
// these fixed-size integer and array fields exactly as C does on LP64
// (natural alignment, int64 8-aligned), which is the darwin/arm64 and
// darwin/amd64 ABI. A union is modelled as a byte array of its largest
// member with the union's alignment.

// struct sockaddr, bsd/sys/socket.h.
type cSockaddr struct {
	Len    uint8
	Family uint8
	Data   [14]byte
}

// struct sockaddr_in, bsd/netinet/in.h.
type cSockaddrIn struct {
	Len    uint8
	Family uint8
	Port   uint16
	Addr   [4]byte
	Zero   [8]byte
}

// struct sockaddr_in6, bsd/netinet6/in6.h.
type cSockaddrIn6 struct {
	Len      uint8
	Family   uint8
	Port     uint16
	Flowinfo uint32
	Addr     [16]byte
	ScopeID  uint32
}

// struct ctl_info, bsd/sys/kern_control.h.
type cCtlInfo struct {
	ID   uint32
	Name [maxKctlName]byte
}

// struct sockaddr_ctl, bsd/sys/kern_control.h.
type cSockaddrCtl struct {
	Len      uint8
	Family   uint8
	Sysaddr  uint16
	ID       uint32
	Unit     uint32
	Reserved [5]uint32
}

// struct ifkpi, bsd/net/if.h, under #pragma pack(4): the pointer in its
// union is only 4-aligned, so it is modelled as two uint32 halves.
type cIfkpi struct {
	ModuleID uint32
	Type     uint32
	Data     [2]uint32
}

// struct ifreq, bsd/net/if.h. The union holds struct sockaddr (16),
// short, int, caddr_t (8, and 8-aligned), struct ifdevmtu (12), struct
// ifkpi (16), int[2] and u_int32_t members.
type cIfreq struct {
	Name [ifNameSize]byte
	Ifru struct {
		_ [0]uint64 // caddr_t ifru_data makes the union 8-aligned
		b [16]byte
	}
}

// struct ifaliasreq, bsd/net/if.h.
type cIfaliasreq struct {
	Name      [ifNameSize]byte
	Addr      cSockaddr
	Broadaddr cSockaddr
	Mask      cSockaddr
}

// struct in6_ifreq, bsd/netinet6/in6_var.h: the union's largest member is
// struct icmp6_ifstat (34 u_quad_t).
type cIn6Ifreq struct {
	Name [ifNameSize]byte
	Ifru struct {
		_ [0]uint64
		b [sizeofIcmp6Ifstat]byte
	}
}

// struct in6_addrlifetime, bsd/netinet6/in6_var.h (time_t is 64-bit).
type cIn6Addrlifetime struct {
	Expire    int64
	Preferred int64
	Vltime    uint32
	Pltime    uint32
}

// struct in6_aliasreq, bsd/netinet6/in6_var.h.
type cIn6Aliasreq struct {
	Name       [ifNameSize]byte
	Addr       cSockaddrIn6
	Dstaddr    cSockaddrIn6
	Prefixmask cSockaddrIn6
	Flags      int32
	Lifetime   cIn6Addrlifetime
}

func TestMirrorLayouts(t *testing.T) {
	if unsafe.Alignof(int64(0)) != 8 {
		t.Skip("the mirrors model an LP64 ABI; this platform aligns int64 differently")
	}
	type check struct {
		what      string
		got, want uintptr
	}
	var (
		sin   cSockaddrIn
		sin6  cSockaddrIn6
		ci    cCtlInfo
		sc    cSockaddrCtl
		ifr   cIfreq
		ifra  cIfaliasreq
		ifr6  cIn6Ifreq
		ifra6 cIn6Aliasreq
	)
	checks := []check{
		{"sizeof(struct sockaddr)", unsafe.Sizeof(cSockaddr{}), sizeofSockaddr},

		{"sizeof(struct sockaddr_in)", unsafe.Sizeof(sin), sizeofSockaddrIn},
		{"sin_len", unsafe.Offsetof(sin.Len), offSinLen},
		{"sin_family", unsafe.Offsetof(sin.Family), offSinFamily},
		{"sin_port", unsafe.Offsetof(sin.Port), 2},
		{"sin_addr", unsafe.Offsetof(sin.Addr), offSinAddr},
		{"sin_zero", unsafe.Offsetof(sin.Zero), 8},

		{"sizeof(struct sockaddr_in6)", unsafe.Sizeof(sin6), sizeofSockaddrIn6},
		{"sin6_len", unsafe.Offsetof(sin6.Len), offSin6Len},
		{"sin6_family", unsafe.Offsetof(sin6.Family), offSin6Family},
		{"sin6_port", unsafe.Offsetof(sin6.Port), 2},
		{"sin6_flowinfo", unsafe.Offsetof(sin6.Flowinfo), 4},
		{"sin6_addr", unsafe.Offsetof(sin6.Addr), offSin6Addr},
		{"sin6_scope_id", unsafe.Offsetof(sin6.ScopeID), offSin6ScopeID},

		{"sizeof(struct ctl_info)", unsafe.Sizeof(ci), sizeofCtlInfo},
		{"ctl_id", unsafe.Offsetof(ci.ID), offCtlID},
		{"ctl_name", unsafe.Offsetof(ci.Name), offCtlName},

		{"sizeof(struct sockaddr_ctl)", unsafe.Sizeof(sc), sizeofSockaddrCtl},
		{"sc_len", unsafe.Offsetof(sc.Len), offScLen},
		{"sc_family", unsafe.Offsetof(sc.Family), offScFamily},
		{"ss_sysaddr", unsafe.Offsetof(sc.Sysaddr), offScSysaddr},
		{"sc_id", unsafe.Offsetof(sc.ID), offScID},
		{"sc_unit", unsafe.Offsetof(sc.Unit), offScUnit},
		{"sc_reserved", unsafe.Offsetof(sc.Reserved), 12},

		{"sizeof(struct ifkpi)", unsafe.Sizeof(cIfkpi{}), 16},
		{"sizeof(struct ifreq)", unsafe.Sizeof(ifr), sizeofIfreq},
		{"ifr_name", unsafe.Offsetof(ifr.Name), offIfrName},
		{"ifr_ifru", unsafe.Offsetof(ifr.Ifru), offIfrIfru},

		{"sizeof(struct ifaliasreq)", unsafe.Sizeof(ifra), sizeofIfaliasreq},
		{"ifra_addr", unsafe.Offsetof(ifra.Addr), offIfraAddr},
		{"ifra_broadaddr", unsafe.Offsetof(ifra.Broadaddr), offIfraBroadaddr},
		{"ifra_mask", unsafe.Offsetof(ifra.Mask), offIfraMask},

		{"sizeof(struct in6_ifreq)", unsafe.Sizeof(ifr6), sizeofIn6Ifreq},
		{"in6_ifreq.ifr_ifru", unsafe.Offsetof(ifr6.Ifru), offIn6IfrAddr},

		{"sizeof(struct in6_addrlifetime)", unsafe.Sizeof(cIn6Addrlifetime{}), 24},
		{"sizeof(struct in6_aliasreq)", unsafe.Sizeof(ifra6), sizeofIn6Aliasreq},
		{"in6 ifra_addr", unsafe.Offsetof(ifra6.Addr), offIn6IfraAddr},
		{"ifra_dstaddr", unsafe.Offsetof(ifra6.Dstaddr), offIn6IfraDstaddr},
		{"ifra_prefixmask", unsafe.Offsetof(ifra6.Prefixmask), offIn6IfraPrefixmask},
		{"ifra_flags", unsafe.Offsetof(ifra6.Flags), offIn6IfraFlags},
		{"ifra_lifetime", unsafe.Offsetof(ifra6.Lifetime), offIn6IfraExpire},
		{"ia6t_preferred", unsafe.Offsetof(ifra6.Lifetime) + unsafe.Offsetof(ifra6.Lifetime.Preferred), offIn6IfraPreferred},
		{"ia6t_vltime", unsafe.Offsetof(ifra6.Lifetime) + unsafe.Offsetof(ifra6.Lifetime.Vltime), offIn6IfraVltime},
		{"ia6t_pltime", unsafe.Offsetof(ifra6.Lifetime) + unsafe.Offsetof(ifra6.Lifetime.Pltime), offIn6IfraPltime},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: mirror says %d, layout.go says %d", c.what, c.got, c.want)
		}
	}
}

// unhex decodes a layout written as hex, one field per line, ignoring
// spaces and anything after "//".
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad test vector: %v", err)
	}
	return b
}

// zeros is n zero bytes in hex.
func zeros(n int) string { return strings.Repeat("00", n) }

func diffBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		for i := 0; i < min(len(got), len(want)); i++ {
			if got[i] != want[i] {
				t.Errorf("%s: first difference at offset %d: got %02x, want %02x\ngot  % x\nwant % x", what, i, got[i], want[i], got, want)
				return
			}
		}
	}
}

func TestMarshalCtlInfo(t *testing.T) {
	got, err := MarshalCtlInfo(ControlName)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		00000000                                              // 0   ctl_id: filled in by the kernel
		636f6d2e6170706c652e6e65742e7574756e5f636f6e74726f6c  // 4   ctl_name "com.apple.net.utun_control"
		`+zeros(96-26)+`                                     // 30  NUL and the rest of ctl_name
	`)
	diffBytes(t, "ctl_info", got, want)

	long := strings.Repeat("x", maxKctlName-1)
	got, err = MarshalCtlInfo(long)
	if err != nil {
		t.Fatalf("95-byte name: %v", err)
	}
	if got[len(got)-1] != 0 || string(got[offCtlName:len(got)-1]) != long {
		t.Errorf("95-byte name not NUL-terminated in place: % x", got)
	}

	for _, bad := range []string{"", strings.Repeat("x", maxKctlName), "com.apple\x00x"} {
		_, err := MarshalCtlInfo(bad)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("MarshalCtlInfo(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestMarshalSockaddrCtl(t *testing.T) {
	got := MarshalSockaddrCtl(0x12345678, 8)
	want := unhex(t, `
		20         // 0  sc_len 32
		20         // 1  sc_family AF_SYSTEM (32)
		0200       // 2  ss_sysaddr AF_SYS_CONTROL (2), host (little-endian) order
		78563412   // 4  sc_id
		08000000   // 8  sc_unit: 8 asks for utun7
		`+zeros(20)+` // 12 sc_reserved[5]
	`)
	diffBytes(t, "sockaddr_ctl", got, want)
	if u := MarshalSockaddrCtl(1, 0); u[offScUnit] != 0 || u[offScID] != 1 {
		t.Errorf("unit 0: % x", u)
	}
}

func TestMarshalIn6Aliasreq(t *testing.T) {
	name := "utun7"
	nameHex := hex.EncodeToString([]byte(name)) + zeros(ifNameSize-len(name))
	tests := []struct {
		what   string
		prefix netip.Prefix
		peer   netip.Addr
		flags  int32
		want   string
	}{
		{
			what:   "fd00::1/64, no peer, NODAD",
			prefix: netip.MustParsePrefix("fd00::1/64"),
			flags:  In6IFFNoDAD,
			want: nameHex + ` // 0 ifra_name
				1c 1e 0000 00000000                    // 16 ifra_addr: sin6_len 28, AF_INET6 30, port, flowinfo
				fd000000000000000000000000000001       // 24 sin6_addr: host bits kept
				00000000                               // 40 sin6_scope_id
				` + zeros(28) + `                      // 44 ifra_dstaddr: AF_UNSPEC
				1c 1e 0000 00000000                    // 72 ifra_prefixmask
				ffffffffffffffff0000000000000000       // 80 /64
				00000000                               // 96
				20000000                               // 100 ifra_flags IN6_IFF_NODAD
				0000000000000000                       // 104 ia6t_expire
				0000000000000000                       // 112 ia6t_preferred
				ffffffff                               // 120 ia6t_vltime ND6_INFINITE_LIFETIME
				ffffffff                               // 124 ia6t_pltime
			`,
		},
		{
			what:   "2001:db8::a/128 peer 2001:db8::b, DAD",
			prefix: netip.MustParsePrefix("2001:db8::a/128"),
			peer:   netip.MustParseAddr("2001:db8::b"),
			want: nameHex + `
				1c1e000000000000 20010db800000000000000000000000a 00000000 // 16 ifra_addr
				1c1e000000000000 20010db800000000000000000000000b 00000000 // 44 ifra_dstaddr
				1c1e000000000000 ffffffffffffffffffffffffffffffff 00000000 // 72 ifra_prefixmask /128
				00000000                                                   // 100 ifra_flags
				` + zeros(16) + ` ffffffff ffffffff                        // 104 lifetimes
			`,
		},
		{
			what:   "fe80::1/10, odd prefix length, flags with the sign bit",
			prefix: netip.MustParsePrefix("fe80::1/10"),
			flags:  -1,
			want: nameHex + `
				1c1e000000000000 fe800000000000000000000000000001 00000000
				` + zeros(28) + `
				1c1e000000000000 ffc00000000000000000000000000000 00000000 // /10: ff c0
				ffffffff                                                   // -1
				` + zeros(16) + ` ffffffff ffffffff
			`,
		},
	}
	for _, tt := range tests {
		got, err := MarshalIn6Aliasreq(name, tt.prefix, tt.peer, tt.flags)
		if err != nil {
			t.Errorf("%s: %v", tt.what, err)
			continue
		}
		diffBytes(t, tt.what, got, unhex(t, tt.want))
	}
}

func TestMarshalIn6AliasreqErrors(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	tests := []struct {
		what   string
		name   string
		prefix netip.Prefix
		peer   netip.Addr
		is     error
	}{
		{"empty name", "", p("fd00::1/64"), netip.Addr{}, ErrInvalidName},
		{"16-byte name", "utun012345678901", p("fd00::1/64"), netip.Addr{}, ErrInvalidName},
		{"NUL in name", "utun\x001", p("fd00::1/64"), netip.Addr{}, ErrInvalidName},
		{"zero prefix", "utun1", netip.Prefix{}, netip.Addr{}, ErrInvalidArgument},
		{"IPv4 prefix", "utun1", p("10.0.0.1/24"), netip.Addr{}, ErrInvalidArgument},
		{"IPv4-mapped prefix", "utun1", p("::ffff:10.0.0.1/120"), netip.Addr{}, ErrInvalidArgument},
		{"length 0", "utun1", p("fd00::1/0"), netip.Addr{}, ErrInvalidArgument},
		{"bad length", "utun1", netip.PrefixFrom(a("fd00::1"), 129), netip.Addr{}, ErrInvalidArgument},
		{"unspecified", "utun1", p("::/64"), netip.Addr{}, ErrInvalidArgument},
		{"multicast", "utun1", p("ff02::1/128"), netip.Addr{}, ErrInvalidArgument},
		{"peer with /64", "utun1", p("fd00::1/64"), a("fd00::2"), ErrInvalidArgument},
		{"IPv4 peer", "utun1", p("fd00::1/128"), a("10.0.0.2"), ErrInvalidArgument},
		{"IPv4-mapped peer", "utun1", p("fd00::1/128"), a("::ffff:10.0.0.2"), ErrInvalidArgument},
		{"zoned peer", "utun1", p("fe80::1/128"), a("fe80::2%utun1"), ErrInvalidArgument},
		{"unspecified peer", "utun1", p("fd00::1/128"), a("::"), ErrInvalidArgument},
	}
	for _, tt := range tests {
		b, err := MarshalIn6Aliasreq(tt.name, tt.prefix, tt.peer, 0)
		if !errors.Is(err, tt.is) || b != nil {
			t.Errorf("%s: got (%d bytes, %v), want nil and %v", tt.what, len(b), err, tt.is)
			continue
		}
		var oe *OpError
		if !errors.As(err, &oe) || oe.Op != "marshal in6_aliasreq" {
			t.Errorf("%s: %v is not an *OpError for marshal in6_aliasreq", tt.what, err)
		}
	}
}

func TestMarshalIfaliasreq(t *testing.T) {
	name := "utun3"
	nameHex := hex.EncodeToString([]byte(name)) + zeros(ifNameSize-len(name))
	tests := []struct {
		what   string
		prefix netip.Prefix
		peer   netip.Addr
		want   string
	}{
		{
			what:   "10.0.0.1/24 peer 10.0.0.2",
			prefix: netip.MustParsePrefix("10.0.0.1/24"),
			peer:   netip.MustParseAddr("10.0.0.2"),
			want: nameHex + ` // 0 ifra_name
				10 02 0000 0a000001 ` + zeros(8) + ` // 16 ifra_addr: sin_len 16, AF_INET, port, 10.0.0.1, sin_zero
				10 02 0000 0a000002 ` + zeros(8) + ` // 32 ifra_broadaddr = the p2p destination
				10 02 0000 ffffff00 ` + zeros(8) + ` // 48 ifra_mask /24
			`,
		},
		{
			what:   "192.168.7.9/32, no peer: the address is its own destination",
			prefix: netip.MustParsePrefix("192.168.7.9/32"),
			want: nameHex + `
				1002 0000 c0a80709 ` + zeros(8) + `
				1002 0000 c0a80709 ` + zeros(8) + `
				1002 0000 ffffffff ` + zeros(8) + `
			`,
		},
		{
			what:   "172.16.0.1/12",
			prefix: netip.MustParsePrefix("172.16.0.1/12"),
			peer:   netip.MustParseAddr("172.16.0.254"),
			want: nameHex + `
				1002 0000 ac100001 ` + zeros(8) + `
				1002 0000 ac1000fe ` + zeros(8) + `
				1002 0000 fff00000 ` + zeros(8) + `
			`,
		},
	}
	for _, tt := range tests {
		got, err := MarshalIfaliasreq(name, tt.prefix, tt.peer)
		if err != nil {
			t.Errorf("%s: %v", tt.what, err)
			continue
		}
		diffBytes(t, tt.what, got, unhex(t, tt.want))
	}
}

func TestMarshalIfaliasreqErrors(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	tests := []struct {
		what   string
		name   string
		prefix netip.Prefix
		peer   netip.Addr
		is     error
	}{
		{"empty name", "", p("10.0.0.1/24"), netip.Addr{}, ErrInvalidName},
		{"long name", "utun12345678901234", p("10.0.0.1/24"), netip.Addr{}, ErrInvalidName},
		{"zero prefix", "utun1", netip.Prefix{}, netip.Addr{}, ErrInvalidArgument},
		{"IPv6 prefix", "utun1", p("fd00::1/64"), netip.Addr{}, ErrInvalidArgument},
		{"IPv4-mapped prefix", "utun1", p("::ffff:10.0.0.1/120"), netip.Addr{}, ErrInvalidArgument},
		{"length 0", "utun1", p("10.0.0.1/0"), netip.Addr{}, ErrInvalidArgument},
		{"0.0.0.0", "utun1", p("0.0.0.0/8"), netip.Addr{}, ErrInvalidArgument},
		{"multicast", "utun1", p("224.0.0.1/32"), netip.Addr{}, ErrInvalidArgument},
		{"broadcast", "utun1", p("255.255.255.255/32"), netip.Addr{}, ErrInvalidArgument},
		{"IPv6 peer", "utun1", p("10.0.0.1/24"), a("fd00::2"), ErrInvalidArgument},
		{"IPv4-mapped peer", "utun1", p("10.0.0.1/24"), a("::ffff:10.0.0.2"), ErrInvalidArgument},
		{"0.0.0.0 peer", "utun1", p("10.0.0.1/24"), a("0.0.0.0"), ErrInvalidArgument},
	}
	for _, tt := range tests {
		b, err := MarshalIfaliasreq(tt.name, tt.prefix, tt.peer)
		if !errors.Is(err, tt.is) || b != nil {
			t.Errorf("%s: got (%d bytes, %v), want nil and %v", tt.what, len(b), err, tt.is)
		}
	}
}

func TestMarshalIfreqs(t *testing.T) {
	name := "utun3"
	nameHex := hex.EncodeToString([]byte(name)) + zeros(ifNameSize-len(name))

	got, err := MarshalIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	diffBytes(t, "ifreq", got, unhex(t, nameHex+zeros(16)))

	got, err = MarshalIfreqMTU(name, 1380)
	if err != nil {
		t.Fatal(err)
	}
	diffBytes(t, "ifreq mtu", got, unhex(t, nameHex+`
		64050000 // 16 ifru_mtu 1380, little-endian int
		`+zeros(12)))
	if mtu, err := ParseIfreqMTU(got); mtu != 1380 || err != nil {
		t.Errorf("ParseIfreqMTU = %d, %v", mtu, err)
	}
	for _, mtu := range []int{ifMinMTU, ifMaxMTU} {
		if _, err := MarshalIfreqMTU(name, mtu); err != nil {
			t.Errorf("MTU %d: %v", mtu, err)
		}
	}
	for _, mtu := range []int{-1, 0, ifMinMTU - 1, ifMaxMTU + 1, 1 << 30} {
		if _, err := MarshalIfreqMTU(name, mtu); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("MTU %d: %v, want ErrInvalidArgument", mtu, err)
		}
	}

	got, err = MarshalIfreqFlags(name, IFFUp|IFFPointToPoint|IFFRunning|IFFMulticast)
	if err != nil {
		t.Fatal(err)
	}
	diffBytes(t, "ifreq flags", got, unhex(t, nameHex+`
		5180 // 16 ifru_flags 0x8051, a little-endian short
		`+zeros(14)))
	if f, err := ParseIfreqFlags(got); f != 0x8051 || err != nil {
		t.Errorf("ParseIfreqFlags = %#x, %v", f, err)
	}

	got, err = MarshalIfreqAddr4(name, netip.MustParseAddr("10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	diffBytes(t, "ifreq addr", got, unhex(t, nameHex+`
		10 02 0000 0a000001 `+zeros(8)+` // 16 ifru_addr as sockaddr_in
	`))

	got, err = MarshalIn6Ifreq(name, netip.MustParseAddr("fd00::1"))
	if err != nil {
		t.Fatal(err)
	}
	diffBytes(t, "in6_ifreq", got, unhex(t, nameHex+`
		1c1e000000000000 fd000000000000000000000000000001 00000000 // 16 ifru_addr as sockaddr_in6
		`+zeros(sizeofIn6Ifreq-16-28)+` // the rest of the 272-byte union
	`))

	for _, bad := range []struct {
		what string
		err  error
	}{
		{"MarshalIfreq empty", second(MarshalIfreq(""))},
		{"MarshalIfreqMTU long", second(MarshalIfreqMTU("utun0123456789012", 1500))},
		{"MarshalIfreqFlags NUL", second(MarshalIfreqFlags("utun\x00", 1))},
		{"MarshalIfreqAddr4 IPv6", second(MarshalIfreqAddr4(name, netip.MustParseAddr("fd00::1")))},
		{"MarshalIfreqAddr4 mapped", second(MarshalIfreqAddr4(name, netip.MustParseAddr("::ffff:10.0.0.1")))},
		{"MarshalIfreqAddr4 zero", second(MarshalIfreqAddr4(name, netip.Addr{}))},
		{"MarshalIn6Ifreq IPv4", second(MarshalIn6Ifreq(name, netip.MustParseAddr("10.0.0.1")))},
		{"MarshalIn6Ifreq zone", second(MarshalIn6Ifreq(name, netip.MustParseAddr("fe80::1%utun3")))},
		{"MarshalIn6Ifreq zero", second(MarshalIn6Ifreq(name, netip.Addr{}))},
		{"MarshalIn6Ifreq empty name", second(MarshalIn6Ifreq("", netip.MustParseAddr("fd00::1")))},
	} {
		if bad.err == nil {
			t.Errorf("%s: no error", bad.what)
		}
	}
	for _, short := range [][]byte{nil, make([]byte, sizeofIfreq-1)} {
		if _, err := ParseIfreqFlags(short); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseIfreqFlags(%d bytes): %v", len(short), err)
		}
		if _, err := ParseIfreqMTU(short); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseIfreqMTU(%d bytes): %v", len(short), err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestMasks checks every prefix length's mask bytes against netip's own
// masking of an all-ones address.
func TestMasks(t *testing.T) {
	ones4 := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	for bits := 0; bits <= 32; bits++ {
		want := netip.PrefixFrom(ones4, bits).Masked().Addr()
		if got := mask4(bits); got != want {
			t.Errorf("mask4(%d) = %v, want %v", bits, got, want)
		}
	}
	var all [16]byte
	for i := range all {
		all[i] = 0xff
	}
	ones6 := netip.AddrFrom16(all)
	for bits := 0; bits <= 128; bits++ {
		want := netip.PrefixFrom(ones6, bits).Masked().Addr()
		if got := mask6(bits); got != want {
			t.Errorf("mask6(%d) = %v, want %v", bits, got, want)
		}
		req, err := MarshalIn6Aliasreq("utun0", netip.PrefixFrom(netip.MustParseAddr("fd00::1"), max(bits, 1)), netip.Addr{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		m := mask6(max(bits, 1)).As16()
		if !bytes.Equal(req[offIn6IfraPrefixmask+offSin6Addr:offIn6IfraPrefixmask+offSin6Addr+16], m[:]) {
			t.Errorf("/%d: prefixmask bytes % x", bits, req[offIn6IfraPrefixmask:offIn6IfraPrefixmask+28])
		}
	}
}

// TestBuildersFresh checks that each call returns its own slice.
func TestBuildersFresh(t *testing.T) {
	p := netip.MustParsePrefix("fd00::1/64")
	a, _ := MarshalIn6Aliasreq("utun0", p, netip.Addr{}, 0)
	b, _ := MarshalIn6Aliasreq("utun0", p, netip.Addr{}, 0)
	a[0] = 'x'
	if b[0] != 'u' {
		t.Error("two calls share a buffer")
	}
}
