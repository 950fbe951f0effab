package nl

import (
	"bytes"
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
		}
	}
	return l, nil
}
