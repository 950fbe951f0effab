package tun

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
)

func TestVnetByteOrder(t *testing.T) {
	refused := syscall.EINVAL
	tests := []struct {
		name      string
		order     binary.ByteOrder
		setErr    error
		wantCall  bool
		wantError bool
	}{
		{"little-endian host: nothing to do", binary.LittleEndian, nil, false, false},
		{"little-endian host, kernel would refuse: not asked", binary.LittleEndian, refused, false, false},
		{"big-endian host: switched", binary.BigEndian, nil, true, false},
		{"big-endian host, kernel refuses: refused", binary.BigEndian, refused, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			err := vnetByteOrder(tt.order, "tun7", func() error { called = true; return tt.setErr })
			if called != tt.wantCall {
				t.Errorf("TUNSETVNETLE called = %v, want %v", called, tt.wantCall)
			}
			if (err != nil) != tt.wantError {
				t.Fatalf("err = %v, want error %v", err, tt.wantError)
			}
			if err == nil {
				return
			}
			var oe *OpError
			if !errors.As(err, &oe) || oe.Op != "TUNSETVNETLE" || oe.Name != "tun7" {
				t.Errorf("err = %#v, want an *OpError for TUNSETVNETLE on tun7", err)
			}
			if !errors.Is(err, ErrVnetByteOrder) || !errors.Is(err, refused) {
				t.Errorf("err = %v, want it to wrap ErrVnetByteOrder and the kernel's EINVAL", err)
			}
		})
	}
}

// The host this runs on is little-endian (every target of the project):
// the native order must not ask for the switch, or every SetOffload would
// make a needless ioctl.
func TestVnetNeedsLENative(t *testing.T) {
	if vnetNeedsLE(binary.NativeEndian) {
		var b [2]byte
		binary.NativeEndian.PutUint16(b[:], 1)
		if b[0] == 1 {
			t.Fatal("vnetNeedsLE says a little-endian host needs TUNSETVNETLE")
		}
	}
	if !vnetNeedsLE(binary.BigEndian) || vnetNeedsLE(binary.LittleEndian) {
		t.Fatal("vnetNeedsLE mixes up the byte orders")
	}
}
