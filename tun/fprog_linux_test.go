package tun

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestSockFprogLayout checks the struct sock_fprog that TUNATTACHFILTER
// reads: { unsigned short len; struct sock_filter *filter; }, the pointer
// aligned to its size, so 16 bytes on 64-bit hosts with 6 bytes of padding.
// No root needed: nothing reaches the kernel.
func TestSockFprogLayout(t *testing.T) {
	b, err := marshalBPF([]BPFInstruction{{Op: 0x06, K: 0xffffffff}, {Op: 0x06}, {Op: 0x06, K: 1}})
	if err != nil {
		t.Fatal(err)
	}
	fp := sockFprog(b)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&fp)), unsafe.Sizeof(fp))
	ptrSize := int(unsafe.Sizeof(uintptr(0)))
	want := make([]byte, 2*ptrSize) // len, padding to the pointer, pointer
	binary.NativeEndian.PutUint16(want, 3)
	p := uintptr(unsafe.Pointer(&b[0]))
	if ptrSize == 8 {
		binary.NativeEndian.PutUint64(want[8:], uint64(p))
	} else {
		binary.NativeEndian.PutUint32(want[4:], uint32(p))
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("struct sock_fprog bytes % x, want % x", raw, want)
	}
	if unsafe.Sizeof(unix.SockFilter{}) != 8 {
		t.Errorf("struct sock_filter is %d bytes, want 8", unsafe.Sizeof(unix.SockFilter{}))
	}
	// The instructions as the kernel will copy them through that pointer.
	insns := unsafe.Slice(fp.Filter, fp.Len)
	if insns[0] != (unix.SockFilter{Code: 0x06, K: 0xffffffff}) || insns[2] != (unix.SockFilter{Code: 0x06, K: 1}) {
		t.Errorf("instructions through the pointer: %+v", insns)
	}
}
