package main

import "testing"

func TestSwapIPv6(t *testing.T) {
	p := make([]byte, 48)
	p[0] = 0x60
	for i := range 16 {
		p[8+i], p[24+i] = 0xaa, 0xbb
	}
	if !swapIPv6(p) {
		t.Fatal("did not swap an IPv6 packet")
	}
	if p[8] != 0xbb || p[23] != 0xbb || p[24] != 0xaa || p[39] != 0xaa {
		t.Fatalf("addresses not swapped: % x", p[8:40])
	}
	for _, bad := range [][]byte{nil, make([]byte, 39), append([]byte{0x45}, make([]byte, 59)...)} {
		if swapIPv6(bad) {
			t.Errorf("swapped a non-IPv6 or short packet (% x)", bad[:min(len(bad), 4)])
		}
	}
}
