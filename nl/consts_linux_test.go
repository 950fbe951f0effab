package nl

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The portable constants are typed in by hand from the kernel headers; on
// Linux, x/sys/unix has most of them too, and they must agree.
func TestConstantsMatchUnix(t *testing.T) {
	for _, c := range []struct {
		name      string
		ours, sys int
	}{
		{"NLMSG_HDRLEN", nlmsgHdrLen, unix.NLMSG_HDRLEN},
		{"NLMSG_ALIGNTO", nlmsgAlignTo, unix.NLMSG_ALIGNTO},
		{"NLA_ALIGNTO", nlaAlignTo, unix.NLA_ALIGNTO},
		{"NLA_HDRLEN", nlaHdrLen, unix.SizeofNlAttr},
		{"NLMSG_NOOP", nlmsgNoop, unix.NLMSG_NOOP},
		{"NLMSG_ERROR", nlmsgError, unix.NLMSG_ERROR},
		{"NLMSG_DONE", nlmsgDone, unix.NLMSG_DONE},
		{"NLMSG_OVERRUN", nlmsgOverrun, unix.NLMSG_OVERRUN},
		{"NLM_F_REQUEST", nlmFRequest, unix.NLM_F_REQUEST},
		{"NLM_F_MULTI", nlmFMulti, unix.NLM_F_MULTI},
		{"NLM_F_ACK", nlmFAck, unix.NLM_F_ACK},
		{"NLM_F_DUMP_INTR", nlmFDumpIntr, unix.NLM_F_DUMP_INTR},
		{"NLM_F_DUMP", nlmFDump, unix.NLM_F_DUMP},
		{"NLM_F_REPLACE", nlmFReplace, unix.NLM_F_REPLACE},
		{"NLM_F_EXCL", nlmFExcl, unix.NLM_F_EXCL},
		{"NLM_F_CREATE", nlmFCreate, unix.NLM_F_CREATE},
		{"NLM_F_CAPPED", nlmFCapped, unix.NLM_F_CAPPED},
		{"NLM_F_ACK_TLVS", nlmFAckTLVs, unix.NLM_F_ACK_TLVS},
		{"NLA_F_NESTED", nlaFNested, unix.NLA_F_NESTED},
		{"NLA_F_NET_BYTEORDER", nlaFNetByteorder, unix.NLA_F_NET_BYTEORDER},
		{"NLMSGERR_ATTR_MSG", nlmsgerrAttrMsg, unix.NLMSGERR_ATTR_MSG},
		{"NLMSGERR_ATTR_OFFS", nlmsgerrAttrOffs, unix.NLMSGERR_ATTR_OFFS},
		{"RTM_NEWLINK", rtmNewLink, unix.RTM_NEWLINK},
		{"RTM_DELLINK", rtmDelLink, unix.RTM_DELLINK},
		{"RTM_GETLINK", rtmGetLink, unix.RTM_GETLINK},
		{"RTM_SETLINK", rtmSetLink, unix.RTM_SETLINK},
		{"RTM_NEWADDR", rtmNewAddr, unix.RTM_NEWADDR},
		{"RTM_DELADDR", rtmDelAddr, unix.RTM_DELADDR},
		{"RTM_GETADDR", rtmGetAddr, unix.RTM_GETADDR},
		{"RTM_NEWROUTE", rtmNewRoute, unix.RTM_NEWROUTE},
		{"RTM_DELROUTE", rtmDelRoute, unix.RTM_DELROUTE},
		{"RTN_UNICAST", rtnUnicast, unix.RTN_UNICAST},
		{"RTPROT_STATIC", rtprotStatic, unix.RTPROT_STATIC},
		{"RT_SCOPE_UNIVERSE", rtScopeUniverse, unix.RT_SCOPE_UNIVERSE},
		{"RT_SCOPE_LINK", rtScopeLink, unix.RT_SCOPE_LINK},
		{"RT_SCOPE_NOWHERE", rtScopeNowhere, unix.RT_SCOPE_NOWHERE},
		{"RT_TABLE_UNSPEC", rtTableUnspec, unix.RT_TABLE_UNSPEC},
		{"RT_TABLE_MAIN", rtTableMain, unix.RT_TABLE_MAIN},
		{"RTA_DST", rtaDst, unix.RTA_DST},
		{"RTA_OIF", rtaOIF, unix.RTA_OIF},
		{"RTA_GATEWAY", rtaGateway, unix.RTA_GATEWAY},
		{"RTA_PRIORITY", rtaPriority, unix.RTA_PRIORITY},
		{"RTA_TABLE", rtaTable, unix.RTA_TABLE},
		{"RTA_MULTIPATH", rtaMultipath, unix.RTA_MULTIPATH},
		{"sizeof(rtnexthop)", sizeofRtnexthop, unix.SizeofRtNexthop},
		{"sizeof(ifinfomsg)", sizeofIfInfomsg, unix.SizeofIfInfomsg},
		{"sizeof(ifaddrmsg)", sizeofIfAddrmsg, unix.SizeofIfAddrmsg},
		{"sizeof(rtmsg)", sizeofRtmsg, unix.SizeofRtMsg},
		{"IFLA_ADDRESS", iflaAddress, unix.IFLA_ADDRESS},
		{"IFLA_IFNAME", iflaIfname, unix.IFLA_IFNAME},
		{"IFLA_MTU", iflaMTU, unix.IFLA_MTU},
		{"IFLA_OPERSTATE", iflaOperstate, unix.IFLA_OPERSTATE},
		{"IFLA_STATS64", iflaStats64, unix.IFLA_STATS64},
		{"IFLA_EXT_MASK", iflaExtMask, unix.IFLA_EXT_MASK},
		{"IFLA_LINKINFO", iflaLinkinfo, unix.IFLA_LINKINFO},
		{"IFLA_IFALIAS", iflaIfalias, unix.IFLA_IFALIAS},
		{"IFLA_INFO_KIND", iflaInfoKind, unix.IFLA_INFO_KIND},
		{"IFLA_INFO_DATA", iflaInfoData, unix.IFLA_INFO_DATA},
		{"IFLA_TUN_OWNER", iflaTunOwner, unix.IFLA_TUN_OWNER},
		{"IFLA_TUN_GROUP", iflaTunGroup, unix.IFLA_TUN_GROUP},
		{"IFLA_TUN_TYPE", iflaTunType, unix.IFLA_TUN_TYPE},
		{"IFLA_TUN_PI", iflaTunPI, unix.IFLA_TUN_PI},
		{"IFLA_TUN_VNET_HDR", iflaTunVnetHdr, unix.IFLA_TUN_VNET_HDR},
		{"IFLA_TUN_PERSIST", iflaTunPersist, unix.IFLA_TUN_PERSIST},
		{"IFLA_TUN_MULTI_QUEUE", iflaTunMultiQueue, unix.IFLA_TUN_MULTI_QUEUE},
		{"IFLA_TUN_NUM_QUEUES", iflaTunNumQueues, unix.IFLA_TUN_NUM_QUEUES},
		{"IFLA_TUN_NUM_DISABLED_QUEUES", iflaTunNumDisabledQueues, unix.IFLA_TUN_NUM_DISABLED_QUEUES},
		{"IFF_TUN (IFLA_TUN_TYPE of a TUN device)", 1, unix.IFF_TUN},
		{"IFF_TAP (IFLA_TUN_TYPE of a TAP device)", 2, unix.IFF_TAP},
		{"IFA_ADDRESS", ifaAddress, unix.IFA_ADDRESS},
		{"IFA_LOCAL", ifaLocal, unix.IFA_LOCAL},
		{"IFA_FLAGS", ifaFlags, unix.IFA_FLAGS},
		{"IFA_BROADCAST", ifaBroadcast, unix.IFA_BROADCAST},
		{"AF_UNSPEC", afUnspec, unix.AF_UNSPEC},
		{"AF_INET", afInet, unix.AF_INET},
		{"AF_INET6", afInet6, unix.AF_INET6},
		{"IFF_UP", iffUp, unix.IFF_UP},
		{"IFNAMSIZ", ifNameSize, unix.IFNAMSIZ},
		{"IFA_F_NODAD", IFA_F_NODAD, unix.IFA_F_NODAD},
		{"IFA_F_NOPREFIXROUTE", IFA_F_NOPREFIXROUTE, unix.IFA_F_NOPREFIXROUTE},
		{"IFA_F_PERMANENT", IFA_F_PERMANENT, unix.IFA_F_PERMANENT},
	} {
		if c.ours != c.sys {
			t.Errorf("%s = %d here, %d in x/sys/unix", c.name, c.ours, c.sys)
		}
	}
}
