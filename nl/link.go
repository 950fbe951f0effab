package nl

import (
	"bytes"
	"fmt"
	"net"
	"strings"
)

// Link describes a network interface as RTM_NEWLINK reports it.
type Link struct {
	Index int    // ifi_index
	Name  string // IFLA_IFNAME
	// Flags holds the IFF_* bits of ifi_flags, e.g. unix.IFF_UP.
	Flags uint32
	MTU   int    // IFLA_MTU
	Type  uint16 // ARPHRD_* (ifi_type), e.g. unix.ARPHRD_NONE for a TUN device
	// OperState is the RFC 2863 operational state (IFLA_OPERSTATE), one
	// of the Oper* constants.
	OperState uint8
	// HardwareAddr is IFLA_ADDRESS, nil for links without one (TUN).
	HardwareAddr net.HardwareAddr
	// Stats are the link's counters (IFLA_STATS64) at the time of the
	// reply, or nil if the kernel sent none.
	Stats *LinkStats
	// Kind is the driver that made the link (IFLA_LINKINFO's
	// IFLA_INFO_KIND): "tun" for TUN and TAP devices, "veth", "dummy",
	// "bridge", ...; "" for links without one, such as lo or most
	// physical NICs.
	Kind string
	// Tun holds the TUN/TAP driver's settings (IFLA_INFO_DATA) when Kind
	// is "tun", and is nil otherwise.
	Tun *TunInfo
	// Alias is the link's free-form description (IFLA_IFALIAS, `ip link
	// set DEV alias TEXT`), "" when it has none. See Conn.SetLinkAlias.
	Alias string
}

// TunInfo is what the kernel's TUN/TAP driver reports about a device in
// IFLA_INFO_DATA (drivers/net/tun.c, tun_fill_info): the same settings
// `ip -d link` prints. They describe the device, whichever fd set them.
type TunInfo struct {
	// Type is IFLA_TUN_TYPE: 1 for a TUN device (IFF_TUN, layer 3), 2 for
	// a TAP device (IFF_TAP, Ethernet frames).
	Type uint8
	// PI reports the 4-byte packet-information header (IFF_NO_PI not
	// set). It is the setting the device was created with; a queue that
	// attaches later with other framing does not change it.
	PI bool
	// VnetHdr reports IFF_VNET_HDR: packets start with a virtio_net_hdr.
	VnetHdr bool
	// Persist reports IFF_PERSIST: the device outlives its last fd.
	Persist bool
	// MultiQueue reports IFF_MULTI_QUEUE.
	MultiQueue bool
	// Owner is the uid allowed to attach without CAP_NET_ADMIN
	// (TUNSETOWNER), in the user namespace of the process that opened
	// the netlink socket. HasOwner is false, and Owner 0, when no owner
	// is set: the kernel then leaves IFLA_TUN_OWNER out. Owner 0 with
	// HasOwner true is an owner of root.
	Owner    uint32
	HasOwner bool
	// Group is the gid allowed to attach (TUNSETGROUP), like Owner;
	// HasGroup is false when none is set.
	Group    uint32
	HasGroup bool
	// NumQueues is the number of queue fds attached to the device and
	// NumDisabledQueues the number of those detached with
	// IFF_DETACH_QUEUE. The kernel reports both for multi-queue devices
	// only; for the others they are 0 whatever is attached.
	NumQueues         uint32
	NumDisabledQueues uint32
}

// ifInfomsg is struct ifinfomsg, the fixed header of link messages.
type ifInfomsg struct {
	Family uint8
	Type   uint16
	Index  int32
	Flags  uint32
	Change uint32
}

func (m ifInfomsg) marshal() []byte {
	b := make([]byte, sizeofIfInfomsg)
	b[0] = m.Family
	nativeEndian.PutUint16(b[2:4], m.Type)
	nativeEndian.PutUint32(b[4:8], uint32(m.Index))
	nativeEndian.PutUint32(b[8:12], m.Flags)
	nativeEndian.PutUint32(b[12:16], m.Change)
	return b
}

// validLinkName checks a name against what the kernel can store (IFNAMSIZ
// with its NUL) before sending it, because an embedded NUL would silently
// name another link and an overlong name only earns a generic policy error.
func validLinkName(op, name string) *Error {
	switch {
	case name == "":
		return invalid(op, "empty link name")
	case len(name) >= ifNameSize:
		return invalid(op, "link name %q is %d bytes, the limit is %d", name, len(name), ifNameSize-1)
	case strings.IndexByte(name, 0) >= 0:
		return invalid(op, "link name %q contains a NUL byte", name)
	}
	return nil
}

// validIndex checks an interface index before it is put in a 32-bit field.
func validIndex(op, what string, index int) *Error {
	if index <= 0 || index > 1<<31-1 {
		return invalid(op, "%s %d out of range", what, index)
	}
	return nil
}

// getLinkRequest builds the payload of RTM_GETLINK for one link, by index or
// (when index is 0) by name. IFLA_EXT_MASK with RTEXT_FILTER_SKIP_STATS
// leaves out the per-VF statistics of SR-IOV devices, which grow with the
// number of VFs and are never used here. Despite its name, the flag does not
// remove the link's own counters: IFLA_STATS64, which fills Link.Stats,
// comes regardless (TestKernelLinkStats checks this against the kernel).
func getLinkRequest(index int, name string) []byte {
	e := encoder{b: ifInfomsg{Index: int32(index)}.marshal()}
	if name != "" {
		e.str(iflaIfname, name)
	}
	e.u32(iflaExtMask, rtextFilterSkipStats)
	return e.b
}

// dumpLinksRequest builds the payload of the RTM_GETLINK dump, filtered as
// getLinkRequest's.
func dumpLinksRequest() []byte {
	e := encoder{b: ifInfomsg{Family: afUnspec}.marshal()}
	e.u32(iflaExtMask, rtextFilterSkipStats)
	return e.b
}

// setFlagsRequest builds the RTM_SETLINK payload that sets or clears IFF_UP.
// ifi_change limits the change to IFF_UP: with a zero mask the kernel would
// take ifi_flags as the complete new flag set and clear every other flag.
func setFlagsRequest(index int, up bool) []byte {
	m := ifInfomsg{Index: int32(index), Change: iffUp}
	if up {
		m.Flags = iffUp
	}
	return m.marshal()
}

// setMTURequest builds the RTM_SETLINK payload that changes the MTU.
func setMTURequest(index int, mtu uint32) []byte {
	e := encoder{b: ifInfomsg{Index: int32(index)}.marshal()}
	e.u32(iflaMTU, mtu)
	return e.b
}

// validAlias checks an alias before it is sent. The kernel stores it with a
// NUL in a buffer of IFALIASZ bytes, so 255 bytes is the limit; a NUL inside
// would cut it short without an error.
func validAlias(op, alias string) *Error {
	if len(alias) >= ifAliasSize {
		return invalid(op, "alias of %d bytes, the limit is %d", len(alias), ifAliasSize-1)
	}
	if strings.IndexByte(alias, 0) >= 0 {
		return invalid(op, "alias %q contains a NUL byte", alias)
	}
	return nil
}

// setAliasRequest builds the RTM_SETLINK payload that sets or clears the
// alias. The value goes without a terminating NUL, as iproute2 sends it:
// the kernel takes the attribute's whole length as the alias and adds its
// own NUL, so with one of ours a 255-byte alias would not fit. An empty
// value clears the alias.
func setAliasRequest(index int, alias string) []byte {
	e := encoder{b: ifInfomsg{Index: int32(index)}.marshal()}
	e.bytes(iflaIfalias, []byte(alias))
	return e.b
}

// deleteLinkRequest builds the payload of RTM_DELLINK for one link.
func deleteLinkRequest(index int) []byte {
	return ifInfomsg{Index: int32(index)}.marshal()
}

// renameRequest builds the RTM_SETLINK payload that renames a link.
func renameRequest(index int, name string) []byte {
	e := encoder{b: ifInfomsg{Index: int32(index)}.marshal()}
	e.str(iflaIfname, name)
	return e.b
}

// parseLink decodes the payload of an RTM_NEWLINK message.
func parseLink(b []byte) (Link, error) {
	if len(b) < sizeofIfInfomsg {
		return Link{}, malformed("link message of %d bytes, want at least %d", len(b), sizeofIfInfomsg)
	}
	l := Link{
		Type:  nativeEndian.Uint16(b[2:4]),
		Index: int(int32(nativeEndian.Uint32(b[4:8]))),
		Flags: nativeEndian.Uint32(b[8:12]),
	}
	attrs, err := parseAttrs(b[sizeofIfInfomsg:])
	if err != nil {
		return Link{}, err
	}
	for _, a := range attrs {
		switch a.kind() {
		case iflaIfname:
			l.Name = attrString(a)
		case iflaMTU:
			mtu, err := attrU32(a)
			if err != nil {
				return Link{}, err
			}
			l.MTU = int(mtu)
		case iflaOperstate:
			if l.OperState, err = attrU8(a); err != nil {
				return Link{}, err
			}
		case iflaAddress:
			l.HardwareAddr = net.HardwareAddr(bytes.Clone(a.Data))
		case iflaStats64:
			if l.Stats, err = parseLinkStats64(a); err != nil {
				return Link{}, err
			}
		case iflaIfalias:
			l.Alias = attrString(a)
		case iflaLinkinfo:
			if l.Kind, l.Tun, err = parseLinkInfo(a); err != nil {
				return Link{}, err
			}
		}
	}
	return l, nil
}

// parseLinkInfo decodes IFLA_LINKINFO: the kind, and for a "tun" link the
// driver's attributes. Data of other kinds is skipped. The kernel puts
// IFLA_INFO_KIND before IFLA_INFO_DATA, but the order is not relied on.
func parseLinkInfo(a attr) (kind string, tun *TunInfo, err error) {
	attrs, err := parseAttrs(a.Data)
	if err != nil {
		return "", nil, fmt.Errorf("IFLA_LINKINFO: %w", err)
	}
	var data *attr
	for i := range attrs {
		switch attrs[i].kind() {
		case iflaInfoKind:
			kind = attrString(attrs[i])
		case iflaInfoData:
			data = &attrs[i]
		}
	}
	if kind == "tun" && data != nil {
		if tun, err = parseTunInfo(*data); err != nil {
			return "", nil, fmt.Errorf("IFLA_LINKINFO: %w", err)
		}
	}
	return kind, tun, nil
}

// parseTunInfo decodes the IFLA_TUN_* attributes of a tun link's
// IFLA_INFO_DATA. Every flag is a u8 and every count or id a u32; another
// size is malformed. Attributes of later kernels are ignored.
func parseTunInfo(a attr) (*TunInfo, error) {
	attrs, err := parseAttrs(a.Data)
	if err != nil {
		return nil, fmt.Errorf("IFLA_INFO_DATA: %w", err)
	}
	t := new(TunInfo)
	for _, at := range attrs {
		var flag *bool
		switch at.kind() {
		case iflaTunOwner:
			t.Owner, err = attrU32(at)
			t.HasOwner = err == nil
		case iflaTunGroup:
			t.Group, err = attrU32(at)
			t.HasGroup = err == nil
		case iflaTunType:
			t.Type, err = attrU8(at)
		case iflaTunPI:
			flag = &t.PI
		case iflaTunVnetHdr:
			flag = &t.VnetHdr
		case iflaTunPersist:
			flag = &t.Persist
		case iflaTunMultiQueue:
			flag = &t.MultiQueue
		case iflaTunNumQueues:
			t.NumQueues, err = attrU32(at)
		case iflaTunNumDisabledQueues:
			t.NumDisabledQueues, err = attrU32(at)
		}
		if flag != nil {
			var v uint8
			v, err = attrU8(at)
			*flag = v != 0
		}
		if err != nil {
			return nil, fmt.Errorf("IFLA_INFO_DATA of a tun link: %w", err)
		}
	}
	return t, nil
}
