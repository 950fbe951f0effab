package utun

// Every XNU constant the package uses is defined here, once, with the
// header it comes from. They are literals, not x/sys/unix names, so the
// portable builders and their tests see the Darwin values on every OS
// (unix.AF_INET6, for one, is 10 on Linux, not 30). Where x/sys/unix for
// darwin has the same constant, utun_darwin_test.go checks that the two
// agree; the darwin code itself uses the x/sys names where they exist.
//
// Header paths are those of the XNU source tree (bsd/...), as published in
// apple-oss-distributions/xnu.

// Address families, bsd/sys/socket.h. The first two are also the values of
// the utun address-family header.
const (
	// AFInet is AF_INET on Darwin (2).
	AFInet = 2
	// AFInet6 is AF_INET6 on Darwin (30). Linux's value (10) is different.
	AFInet6 = 30
	// afSystem is AF_SYSTEM (32), the family of kernel-control sockets.
	afSystem = 32
)

// Kernel control, bsd/sys/sys_domain.h and bsd/sys/kern_control.h.
const (
	// sysprotoControl is SYSPROTO_CONTROL (2): the protocol of a PF_SYSTEM
	// socket that talks to a kernel control, and the getsockopt level of
	// its options. x/sys/unix does not define it.
	sysprotoControl = 2
	// afSysControl is AF_SYS_CONTROL (2), sockaddr_ctl.ss_sysaddr.
	afSysControl = 2
	// maxKctlName is MAX_KCTL_NAME (96), the size of ctl_info.ctl_name
	// including its terminating NUL.
	maxKctlName = 96
)

// utun, bsd/net/if_utun.h.
const (
	// ControlName is UTUN_CONTROL_NAME, the kernel control that creates
	// utun interfaces.
	ControlName = "com.apple.net.utun_control"
	// utunOptIfname is UTUN_OPT_IFNAME (2): getsockopt at level
	// SYSPROTO_CONTROL returns the interface name, NUL-terminated.
	// x/sys/unix does not define it.
	utunOptIfname = 2
)

// Interfaces, bsd/net/if.h and bsd/net/if_var.h.
const (
	// ifNameSize is IFNAMSIZ (IF_NAMESIZE, 16), including the NUL.
	ifNameSize = 16

	// Interface flags (struct ifreq's short ifru_flags), bsd/net/if.h.

	IFFUp           = 0x1    // IFF_UP: administratively up
	IFFPointToPoint = 0x10   // IFF_POINTOPOINT: utun interfaces have it
	IFFRunning      = 0x40   // IFF_RUNNING: resources allocated
	IFFMulticast    = 0x8000 // IFF_MULTICAST

	// ifMinMTU and ifMaxMTU are IF_MINMTU (72) and IF_MAXMTU (65535),
	// bsd/net/if_var.h: ifioctl (bsd/net/if.c) refuses SIOCSIFMTU outside
	// this range with EINVAL.
	ifMinMTU = 72
	ifMaxMTU = 65535
)

// IPv6 addresses, bsd/netinet6/in6_var.h and bsd/netinet6/nd6.h.
const (
	// In6IFFNoDAD is IN6_IFF_NODAD (0x0020), in6_aliasreq.ifra_flags:
	// "don't perform DAD on this address".
	In6IFFNoDAD = 0x0020
	// nd6InfiniteLifetime is ND6_INFINITE_LIFETIME (0xffffffff), the
	// ia6t_vltime and ia6t_pltime that never expire.
	nd6InfiniteLifetime = 0xffffffff
	// scope6IDMax is SCOPE6_ID_MAX (16), bsd/netinet6/scope6_var.h: the
	// length of in6_ifreq's ifru_scope_id array.
	scope6IDMax = 16
)

// ioctl request encoding, bsd/sys/ioccom.h:
//
//	#define _IOC(inout,group,num,len) \
//		(inout | ((len & IOCPARM_MASK) << 16) | ((group) << 8) | (num))
//	#define _IOW(g,n,t)  _IOC(IOC_IN,    (g), (n), sizeof(t))
//	#define _IOWR(g,n,t) _IOC(IOC_INOUT, (g), (n), sizeof(t))
const (
	iocParmMask = 0x1fff     // IOCPARM_MASK: 13 bits of parameter length
	iocVoid     = 0x20000000 // IOC_VOID: no parameters
	iocOut      = 0x40000000 // IOC_OUT: copy parameters out
	iocIn       = 0x80000000 // IOC_IN: copy parameters in
	iocInOut    = iocIn | iocOut
)

// ioctlNumber is the _IOC macro of bsd/sys/ioccom.h: the request number
// for direction dir (iocIn, iocOut, iocInOut or iocVoid), group (a
// character such as 'i'), command num and parameter size. Like the macro it
// keeps only the low 13 bits of size.
func ioctlNumber(dir, group, num, size uint32) uint32 {
	return dir | (size&iocParmMask)<<16 | group<<8 | num
}

// Struct sizes on darwin/arm64 and darwin/amd64. Both are LP64 with the
// same alignment rules (int64 and pointers 8-aligned), so each struct has
// one layout; layout.go builds them and documents every field offset.
const (
	sizeofSockaddr    = 16  // struct sockaddr, bsd/sys/socket.h
	sizeofSockaddrIn  = 16  // struct sockaddr_in, bsd/netinet/in.h
	sizeofSockaddrIn6 = 28  // struct sockaddr_in6, bsd/netinet6/in6.h
	sizeofCtlInfo     = 100 // struct ctl_info, bsd/sys/kern_control.h
	sizeofSockaddrCtl = 32  // struct sockaddr_ctl, bsd/sys/kern_control.h
	sizeofIfreq       = 32  // struct ifreq, bsd/net/if.h
	sizeofIfaliasreq  = 64  // struct ifaliasreq, bsd/net/if.h
	sizeofIn6Ifreq    = 288 // struct in6_ifreq, bsd/netinet6/in6_var.h
	sizeofIn6Aliasreq = 128 // struct in6_aliasreq, bsd/netinet6/in6_var.h

	// sizeofIcmp6Ifstat is struct icmp6_ifstat, bsd/netinet6/in6_var.h:
	// 17 input and 17 output u_quad_t counters. It is the largest member
	// of in6_ifreq's union (in6_ifstat has 25 counters, ifru_scope_id is
	// SCOPE6_ID_MAX u_int32_t), so sizeofIn6Ifreq = 16 + 272.
	sizeofIcmp6Ifstat = 34 * 8
)

// Request numbers. Each is the _IOW/_IOWR of its header, computed from the
// struct size above; the comment gives the macro and the value, which the
// tests recompute with ioctlNumber. The ones x/sys/unix also defines for
// darwin are checked against it in utun_darwin_test.go.
const (
	// _IOWR('N', 3, struct ctl_info), bsd/sys/kern_control.h = 0xc0644e03.
	ctlIOCGInfo = iocInOut | (sizeofCtlInfo&iocParmMask)<<16 | 'N'<<8 | 3

	// _IOW('i', 16, struct ifreq), bsd/sys/sockio.h = 0x80206910.
	siocSIFFlags = iocIn | (sizeofIfreq&iocParmMask)<<16 | 'i'<<8 | 16
	// _IOWR('i', 17, struct ifreq), bsd/sys/sockio.h = 0xc0206911.
	siocGIFFlags = iocInOut | (sizeofIfreq&iocParmMask)<<16 | 'i'<<8 | 17
	// _IOW('i', 25, struct ifreq), bsd/sys/sockio.h = 0x80206919.
	siocDIFAddr = iocIn | (sizeofIfreq&iocParmMask)<<16 | 'i'<<8 | 25
	// _IOW('i', 26, struct ifaliasreq), bsd/sys/sockio.h = 0x8040691a.
	siocAIFAddr = iocIn | (sizeofIfaliasreq&iocParmMask)<<16 | 'i'<<8 | 26
	// _IOWR('i', 51, struct ifreq), bsd/sys/sockio.h = 0xc0206933.
	siocGIFMTU = iocInOut | (sizeofIfreq&iocParmMask)<<16 | 'i'<<8 | 51
	// _IOW('i', 52, struct ifreq), bsd/sys/sockio.h = 0x80206934.
	siocSIFMTU = iocIn | (sizeofIfreq&iocParmMask)<<16 | 'i'<<8 | 52

	// _IOW('i', 25, struct in6_ifreq), bsd/netinet6/in6_var.h = 0x81206919.
	// Not in x/sys/unix.
	siocDIFAddrIn6 = iocIn | (sizeofIn6Ifreq&iocParmMask)<<16 | 'i'<<8 | 25
	// _IOW('i', 26, struct in6_aliasreq), bsd/netinet6/in6_var.h =
	// 0x8080691a. Not in x/sys/unix. (The kernel's SIOCAIFADDR_IN6_64 has
	// the same value: in6_aliasreq_64 is this layout.)
	siocAIFAddrIn6 = iocIn | (sizeofIn6Aliasreq&iocParmMask)<<16 | 'i'<<8 | 26
)
