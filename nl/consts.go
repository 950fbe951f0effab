package nl

// Protocol constants, with the values of the Linux UAPI headers named beside
// each group. They are spelled out here rather than taken from
// golang.org/x/sys/unix because the encoding code must compile on every
// platform (x/sys/unix lacks them on darwin), and the wire format is Linux's
// wherever the code is compiled.

// From include/uapi/linux/netlink.h: message header and control types.
const (
	nlmsgHdrLen  = 16 // sizeof(struct nlmsghdr)
	nlmsgAlignTo = 4  // NLMSG_ALIGNTO
	nlaHdrLen    = 4  // NLA_HDRLEN
	nlaAlignTo   = 4  // NLA_ALIGNTO

	nlmsgNoop    = 0x1 // NLMSG_NOOP
	nlmsgError   = 0x2 // NLMSG_ERROR
	nlmsgDone    = 0x3 // NLMSG_DONE
	nlmsgOverrun = 0x4 // NLMSG_OVERRUN

	// Flags of nlmsg_flags.
	nlmFRequest  = 0x01  // NLM_F_REQUEST
	nlmFMulti    = 0x02  // NLM_F_MULTI
	nlmFAck      = 0x04  // NLM_F_ACK
	nlmFDumpIntr = 0x10  // NLM_F_DUMP_INTR
	nlmFDump     = 0x300 // NLM_F_DUMP: NLM_F_ROOT|NLM_F_MATCH
	nlmFReplace  = 0x100 // NLM_F_REPLACE (new requests)
	nlmFExcl     = 0x200 // NLM_F_EXCL
	nlmFCreate   = 0x400 // NLM_F_CREATE
	nlmFCapped   = 0x100 // NLM_F_CAPPED (on NLMSG_ERROR)
	nlmFAckTLVs  = 0x200 // NLM_F_ACK_TLVS (on NLMSG_ERROR, NLMSG_DONE)

	nlaFNested       = 1 << 15 // NLA_F_NESTED
	nlaFNetByteorder = 1 << 14 // NLA_F_NET_BYTEORDER
	nlaTypeMask      = ^uint16(nlaFNested | nlaFNetByteorder)

	// enum nlmsgerr_attrs
	nlmsgerrAttrMsg  = 1 // NLMSGERR_ATTR_MSG
	nlmsgerrAttrOffs = 2 // NLMSGERR_ATTR_OFFS
)

// From include/uapi/linux/rtnetlink.h: message types and route fields.
const (
	rtmNewLink  = 16 // RTM_NEWLINK
	rtmDelLink  = 17 // RTM_DELLINK
	rtmGetLink  = 18 // RTM_GETLINK
	rtmSetLink  = 19 // RTM_SETLINK
	rtmNewAddr  = 20 // RTM_NEWADDR
	rtmDelAddr  = 21 // RTM_DELADDR
	rtmGetAddr  = 22 // RTM_GETADDR
	rtmNewRoute = 24 // RTM_NEWROUTE
	rtmDelRoute = 25 // RTM_DELROUTE
	rtmGetRoute = 26 // RTM_GETROUTE

	rtnUnicast = 1 // RTN_UNICAST

	rtprotStatic = 4 // RTPROT_STATIC

	rtScopeUniverse = 0   // RT_SCOPE_UNIVERSE
	rtScopeLink     = 253 // RT_SCOPE_LINK
	rtScopeNowhere  = 255 // RT_SCOPE_NOWHERE

	rtTableUnspec = 0   // RT_TABLE_UNSPEC
	rtTableMain   = 254 // RT_TABLE_MAIN

	// enum rtattr_type_t
	rtaDst       = 1  // RTA_DST
	rtaOIF       = 4  // RTA_OIF
	rtaGateway   = 5  // RTA_GATEWAY
	rtaPriority  = 6  // RTA_PRIORITY
	rtaMultipath = 9  // RTA_MULTIPATH: struct rtnexthop entries
	rtaTable     = 15 // RTA_TABLE

	sizeofRtnexthop = 8 // sizeof(struct rtnexthop)

	rtextFilterSkipStats = 1 << 3 // RTEXT_FILTER_SKIP_STATS

	sizeofIfInfomsg = 16 // sizeof(struct ifinfomsg)
	sizeofIfAddrmsg = 8  // sizeof(struct ifaddrmsg)
	sizeofRtmsg     = 12 // sizeof(struct rtmsg)
)

// From include/uapi/linux/if_link.h: link attributes.
const (
	iflaAddress   = 1  // IFLA_ADDRESS
	iflaIfname    = 3  // IFLA_IFNAME
	iflaMTU       = 4  // IFLA_MTU
	iflaOperstate = 16 // IFLA_OPERSTATE
	iflaLinkinfo  = 18 // IFLA_LINKINFO: nested IFLA_INFO_*
	iflaIfalias   = 20 // IFLA_IFALIAS
	iflaStats64   = 23 // IFLA_STATS64: struct rtnl_link_stats64
	iflaExtMask   = 29 // IFLA_EXT_MASK

	// Inside IFLA_LINKINFO (enum in if_link.h).
	iflaInfoKind = 1 // IFLA_INFO_KIND: the driver's name, a string
	iflaInfoData = 2 // IFLA_INFO_DATA: nested, the driver's own attributes

	// Inside IFLA_INFO_DATA of a "tun" link (drivers/net/tun.c,
	// tun_fill_info).
	iflaTunOwner             = 1 // IFLA_TUN_OWNER: u32, absent when unset
	iflaTunGroup             = 2 // IFLA_TUN_GROUP: u32, absent when unset
	iflaTunType              = 3 // IFLA_TUN_TYPE: u8, IFF_TUN or IFF_TAP
	iflaTunPI                = 4 // IFLA_TUN_PI: u8
	iflaTunVnetHdr           = 5 // IFLA_TUN_VNET_HDR: u8
	iflaTunPersist           = 6 // IFLA_TUN_PERSIST: u8
	iflaTunMultiQueue        = 7 // IFLA_TUN_MULTI_QUEUE: u8
	iflaTunNumQueues         = 8 // IFLA_TUN_NUM_QUEUES: u32, multi-queue only
	iflaTunNumDisabledQueues = 9 // IFLA_TUN_NUM_DISABLED_QUEUES: u32, multi-queue only

	// ifAliasSize is IFALIASZ (include/uapi/linux/if.h): an alias must be
	// shorter, as the kernel counts a terminating NUL.
	ifAliasSize = 256
)

// From include/uapi/linux/if_addr.h: address attributes.
const (
	ifaAddress   = 1 // IFA_ADDRESS
	ifaLocal     = 2 // IFA_LOCAL
	ifaBroadcast = 4 // IFA_BROADCAST
	ifaFlags     = 8 // IFA_FLAGS
)

// From include/uapi/linux/socket.h and include/uapi/linux/if.h. AF_INET6 is
// 10 on Linux but 30 on darwin, so the host's value must not be used.
const (
	afUnspec = 0  // AF_UNSPEC
	afInet   = 2  // AF_INET
	afInet6  = 10 // AF_INET6

	iffUp = 0x1 // IFF_UP

	ifNameSize = 16 // IFNAMSIZ, including the terminating NUL
)

// Address flags for Addr.Flags, from include/uapi/linux/if_addr.h. Only the
// ones a caller is likely to set are exported.
const (
	// IFA_F_NODAD skips IPv6 duplicate address detection, so the address
	// is usable at once instead of staying tentative.
	IFA_F_NODAD = 0x02
	// IFA_F_NOPREFIXROUTE stops the kernel adding a route for the
	// address's prefix.
	IFA_F_NOPREFIXROUTE = 0x200
	// IFA_F_PERMANENT marks an address configured by hand, as opposed to
	// one learned from router advertisements; the kernel sets it itself.
	IFA_F_PERMANENT = 0x80
)

// Operational states of Link.OperState (IF_OPER_*, RFC 2863), from
// include/uapi/linux/if.h.
const (
	OperUnknown        = 0 // IF_OPER_UNKNOWN
	OperNotPresent     = 1 // IF_OPER_NOTPRESENT
	OperDown           = 2 // IF_OPER_DOWN
	OperLowerLayerDown = 3 // IF_OPER_LOWERLAYERDOWN
	OperTesting        = 4 // IF_OPER_TESTING
	OperDormant        = 5 // IF_OPER_DORMANT
	OperUp             = 6 // IF_OPER_UP
)
