package nl

import (
	"golang.org/x/sys/unix"
)

// status is what an NLMSG_ERROR (acknowledgement or error) or an NLMSG_DONE
// reports: the errno, 0 on success, and the extended-ack details.
type status struct {
	Errno   unix.Errno
	Message string // NLMSGERR_ATTR_MSG
	Offset  uint32 // NLMSGERR_ATTR_OFFS
	// TLVErr is set when the extended-ack attributes could not be parsed;
	// the errno is still meaningful.
	TLVErr error
}

// sizeofNlmsgerr is sizeof(struct nlmsgerr): the int error and the header
// of the request it answers.
const sizeofNlmsgerr = 4 + nlmsgHdrLen

// parseError decodes the payload of an NLMSG_ERROR message. The payload is
// the negative errno and the request's header; then, unless the kernel
// capped it (NLM_F_CAPPED), the rest of the request; then, when
// NLM_F_ACK_TLVS is set, extended-ack attributes.
func parseError(m message) (status, error) {
	b := m.Data
	if len(b) < sizeofNlmsgerr {
		return status{}, malformed("NLMSG_ERROR payload of %d bytes, want at least %d", len(b), sizeofNlmsgerr)
	}
	st := status{Errno: errnoFromKernel(int32(nativeEndian.Uint32(b[0:4])))}
	if m.Header.Flags&nlmFAckTLVs == 0 {
		return st, nil
	}
	tlvs := sizeofNlmsgerr
	if m.Header.Flags&nlmFCapped == 0 {
		// The whole request follows: its own nlmsg_len says how long,
		// and the kernel padded it to NLMSG_ALIGNTO.
		orig := unmarshalHeader(b[4:])
		if orig.Len < nlmsgHdrLen || uint64(orig.Len)+4 > uint64(len(b)) {
			st.TLVErr = malformed("NLMSG_ERROR: echoed request length %d does not fit the %d-byte payload", orig.Len, len(b))
			return st, nil
		}
		tlvs = min(4+nlmsgAlign(int(orig.Len)), len(b))
	}
	st.Message, st.Offset, st.TLVErr = parseExtAck(b[tlvs:])
	return st, nil
}

// parseDone decodes the payload of an NLMSG_DONE message: the dump's final
// int status, then extended-ack attributes when NLM_F_ACK_TLVS is set. An
// empty payload counts as success.
func parseDone(m message) (status, error) {
	b := m.Data
	if len(b) == 0 {
		return status{}, nil
	}
	if len(b) < 4 {
		return status{}, malformed("NLMSG_DONE payload of %d bytes, want 0 or at least 4", len(b))
	}
	st := status{Errno: errnoFromKernel(int32(nativeEndian.Uint32(b[0:4])))}
	if m.Header.Flags&nlmFAckTLVs != 0 {
		st.Message, st.Offset, st.TLVErr = parseExtAck(b[4:])
	}
	return st, nil
}

// errnoFromKernel turns the kernel's negative error code into an Errno. A
// positive code never comes from the kernel; it is taken at face value
// rather than lost.
func errnoFromKernel(code int32) unix.Errno {
	c := int64(code)
	if c < 0 {
		c = -c
	}
	return unix.Errno(c)
}

// parseExtAck reads the extended-ack attributes the package reports.
func parseExtAck(b []byte) (msg string, off uint32, err error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return "", 0, err
	}
	for _, a := range attrs {
		switch a.kind() {
		case nlmsgerrAttrMsg:
			msg = attrString(a)
		case nlmsgerrAttrOffs:
			if off, err = attrU32(a); err != nil {
				return msg, 0, err
			}
		}
	}
	return msg, off, nil
}
