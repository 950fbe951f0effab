package utun

import "testing"

// TestIoctlNumber recomputes every request number with ioctlNumber, the
// _IOC macro of bsd/sys/ioccom.h, from the struct sizes, and compares it
// with a published value: for the requests x/sys/unix defines, the value
// in zerrors_darwin_{amd64,arm64}.go (generated from the macOS SDK, the
// same on both); for the two IPv6 ones, which x/sys lacks, the values other
// macOS code uses (0x8080691a and 0x81206919, seen in several independent
// projects) — which is also what _IOW with the XNU struct sizes gives.
func TestIoctlNumber(t *testing.T) {
	tests := []struct {
		name      string
		dir       uint32
		group     byte
		num       uint32
		size      uint32
		constant  uint32 // the package's constant
		published uint32
	}{
		{"CTLIOCGINFO", iocInOut, 'N', 3, sizeofCtlInfo, ctlIOCGInfo, 0xc0644e03},
		{"SIOCSIFFLAGS", iocIn, 'i', 16, sizeofIfreq, siocSIFFlags, 0x80206910},
		{"SIOCGIFFLAGS", iocInOut, 'i', 17, sizeofIfreq, siocGIFFlags, 0xc0206911},
		{"SIOCDIFADDR", iocIn, 'i', 25, sizeofIfreq, siocDIFAddr, 0x80206919},
		{"SIOCAIFADDR", iocIn, 'i', 26, sizeofIfaliasreq, siocAIFAddr, 0x8040691a},
		{"SIOCGIFMTU", iocInOut, 'i', 51, sizeofIfreq, siocGIFMTU, 0xc0206933},
		{"SIOCSIFMTU", iocIn, 'i', 52, sizeofIfreq, siocSIFMTU, 0x80206934},
		{"SIOCDIFADDR_IN6", iocIn, 'i', 25, sizeofIn6Ifreq, siocDIFAddrIn6, 0x81206919},
		{"SIOCAIFADDR_IN6", iocIn, 'i', 26, sizeofIn6Aliasreq, siocAIFAddrIn6, 0x8080691a},
	}
	for _, tt := range tests {
		got := ioctlNumber(tt.dir, uint32(tt.group), tt.num, tt.size)
		if got != tt.published {
			t.Errorf("%s: ioctlNumber = %#x, published %#x", tt.name, got, tt.published)
		}
		if tt.constant != tt.published {
			t.Errorf("%s: constant = %#x, published %#x", tt.name, tt.constant, tt.published)
		}
		// Decode it back the way the kernel does (IOCPARM_LEN, IOCGROUP).
		if l := (got >> 16) & iocParmMask; l != tt.size {
			t.Errorf("%s: IOCPARM_LEN = %d, want %d", tt.name, l, tt.size)
		}
		if g := (got >> 8) & 0xff; g != uint32(tt.group) {
			t.Errorf("%s: IOCGROUP = %q, want %q", tt.name, rune(g), rune(tt.group))
		}
	}
}

// TestIoctlNumberEncoding checks the macro's parts on their own, including
// the 13-bit truncation of the size that the C macro also does.
func TestIoctlNumberEncoding(t *testing.T) {
	tests := []struct {
		dir, group, num, size uint32
		want                  uint32
	}{
		{iocVoid, 'i', 0, 0, 0x20006900},
		{iocOut, 't', 104, 4, 0x40047468}, // _IOR('t', 104, int): TIOCGWINSZ is 0x40087468 with its 8-byte struct
		{iocIn, 'i', 26, 128, 0x8080691a},
		{iocInOut, 'i', 0xff, iocParmMask, 0xdfff69ff},
		{iocIn, 'i', 1, iocParmMask + 1, 0x80006901}, // 0x2000 & 0x1fff == 0
		{iocIn, 'i', 1, iocParmMask + 2, 0x80016901},
	}
	for _, tt := range tests {
		if got := ioctlNumber(tt.dir, tt.group, tt.num, tt.size); got != tt.want {
			t.Errorf("ioctlNumber(%#x, %q, %d, %d) = %#x, want %#x", tt.dir, rune(tt.group), tt.num, tt.size, got, tt.want)
		}
	}
	if iocInOut != 0xc0000000 {
		t.Errorf("IOC_INOUT = %#x", uint32(iocInOut))
	}
}

// TestDerivedSizes checks the sizes that follow from other constants.
func TestDerivedSizes(t *testing.T) {
	// in6_ifreq's union: the largest member decides. in6_ifstat has 25
	// u_quad_t counters, ifru_scope_id SCOPE6_ID_MAX u_int32_t, a
	// sockaddr_in6 28 bytes; icmp6_ifstat's 34 counters win.
	members := []int{sizeofSockaddrIn6, 4, 8, 25 * 8, sizeofIcmp6Ifstat, scope6IDMax * 4, 8*2 + 4*2}
	union := 0
	for _, m := range members {
		union = max(union, m)
	}
	if union != sizeofIcmp6Ifstat || ifNameSize+union != sizeofIn6Ifreq {
		t.Errorf("in6_ifreq: union %d, size %d, want %d", union, ifNameSize+union, sizeofIn6Ifreq)
	}
	if sizeofIn6Ifreq%8 != 0 {
		t.Errorf("in6_ifreq size %d is not a multiple of its 8-byte alignment", sizeofIn6Ifreq)
	}
	// ifreq: IFNAMSIZ + a 16-byte, 8-aligned union.
	if ifNameSize+sizeofSockaddr != sizeofIfreq {
		t.Errorf("ifreq: %d + %d != %d", ifNameSize, sizeofSockaddr, sizeofIfreq)
	}
	// ifaliasreq: IFNAMSIZ + three struct sockaddr.
	if ifNameSize+3*sizeofSockaddr != sizeofIfaliasreq {
		t.Errorf("ifaliasreq: %d", ifNameSize+3*sizeofSockaddr)
	}
	// in6_aliasreq: IFNAMSIZ + 3 sockaddr_in6 + int, padded to 8, + the
	// 24-byte in6_addrlifetime.
	n := ifNameSize + 3*sizeofSockaddrIn6 + 4
	n = (n + 7) &^ 7
	n += 8 + 8 + 4 + 4
	if n != sizeofIn6Aliasreq {
		t.Errorf("in6_aliasreq: %d, want %d", n, sizeofIn6Aliasreq)
	}
	// ctl_info: u_int32_t + char[MAX_KCTL_NAME].
	if n := 4 + maxKctlName; n != sizeofCtlInfo {
		t.Errorf("ctl_info: %d", n)
	}
	// sockaddr_ctl: 1 + 1 + 2 + 4 + 4 + 5*4.
	if n := 1 + 1 + 2 + 4 + 4 + 5*4; n != sizeofSockaddrCtl {
		t.Errorf("sockaddr_ctl: %d", n)
	}
}

// TestDarwinValues pins the Darwin constants that differ from Linux, so a
// refactor that reaches for x/sys/unix on the wrong OS shows up here.
func TestDarwinValues(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"AF_INET", AFInet, 2},
		{"AF_INET6", AFInet6, 30},
		{"AF_SYSTEM", afSystem, 32},
		{"AF_SYS_CONTROL", afSysControl, 2},
		{"SYSPROTO_CONTROL", sysprotoControl, 2},
		{"UTUN_OPT_IFNAME", utunOptIfname, 2},
		{"MAX_KCTL_NAME", maxKctlName, 96},
		{"IFNAMSIZ", ifNameSize, 16},
		{"IN6_IFF_NODAD", In6IFFNoDAD, 0x20},
		{"IFF_UP", IFFUp, 1},
		{"IFF_POINTOPOINT", IFFPointToPoint, 0x10},
		{"IFF_RUNNING", IFFRunning, 0x40},
		{"IFF_MULTICAST", IFFMulticast, 0x8000},
		{"IF_MINMTU", ifMinMTU, 72},
		{"IF_MAXMTU", ifMaxMTU, 65535},
		{"SCOPE6_ID_MAX", scope6IDMax, 16},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if nd6InfiniteLifetime != 0xffffffff {
		t.Errorf("ND6_INFINITE_LIFETIME = %#x", uint32(nd6InfiniteLifetime))
	}
	if ControlName != "com.apple.net.utun_control" {
		t.Errorf("UTUN_CONTROL_NAME = %q", ControlName)
	}
}
