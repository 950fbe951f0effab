package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
)

// littleEndian reports the host's byte order: the kernel reads these
// structures in it, so the golden bytes are written for little-endian
// hosts (amd64, arm64) and byte-swapped field by field otherwise.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestTxFilterMarshal(t *testing.T) {
	for _, c := range []struct {
		name string
		f    TxFilter
		le   []byte // struct tun_filter on a little-endian host
		be   []byte
	}{
		{"off", TxFilter{}, []byte{0, 0, 0, 0}, []byte{0, 0, 0, 0}},
		{
			"one address",
			TxFilter{Addrs: []net.HardwareAddr{mac("02:00:5e:00:00:02")}},
			[]byte{0, 0, 1, 0, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x02},
			[]byte{0, 0, 0, 1, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x02},
		},
		{
			"allmulti and two",
			TxFilter{AllMulti: true, Addrs: []net.HardwareAddr{mac("02:00:5e:00:00:02"), mac("ff:ff:ff:ff:ff:ff")}},
			[]byte{1, 0, 2, 0, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			[]byte{0, 1, 0, 2, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		},
	} {
		got, err := c.f.marshal()
		want := c.le
		if !littleEndian {
			want = c.be
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: marshal = % x, %v; want % x", c.name, got, err, want)
		}
	}

	// Nine addresses: the ninth must be multicast, and then it is fine.
	nine := make([]net.HardwareAddr, 0, 9)
	for i := 0; i < 8; i++ {
		nine = append(nine, net.HardwareAddr{2, 0, 0, 0, 0, byte(i)})
	}
	nine = append(nine, mac("01:00:5e:00:00:fb"))
	b, err := TxFilter{Addrs: nine}.marshal()
	if err != nil || len(b) != 4+9*6 || binary.NativeEndian.Uint16(b[2:]) != 9 || !bytes.Equal(b[4+8*6:], nine[8]) {
		t.Errorf("nine addresses: % x, %v", b, err)
	}

	for _, c := range []struct {
		name string
		f    TxFilter
		want string
	}{
		{"unicast ninth", TxFilter{Addrs: append(nine[:8:8], mac("02:00:00:00:00:09"))}, "address 8 (02:00:00:00:00:09) is unicast"},
		{"short address", TxFilter{Addrs: []net.HardwareAddr{{1, 2, 3}}}, "is 3 bytes"},
		{"EUI-64", TxFilter{Addrs: []net.HardwareAddr{mac("02:00:00:00:00:00:00:01")}}, "is 8 bytes"},
		{"allmulti alone", TxFilter{AllMulti: true}, "no filter at all"},
		{"too many", TxFilter{Addrs: make([]net.HardwareAddr, 65536)}, "16 bits"},
	} {
		_, err := c.f.marshal()
		if !errors.Is(err, errTxFilter) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error wrapping errTxFilter containing %q", c.name, err, c.want)
		}
	}
}

func TestMarshalBPF(t *testing.T) {
	// tcpdump -dd -y EN10MB 'not icmp'
	prog := []BPFInstruction{
		{0x28, 0, 0, 0x0000000c},
		{0x15, 0, 3, 0x00000800},
		{0x30, 0, 0, 0x00000017},
		{0x15, 0, 1, 0x00000001},
		{0x6, 0, 0, 0x00000000},
		{0x6, 0, 0, 0x00040000},
	}
	le := []byte{
		0x28, 0x00, 0, 0, 0x0c, 0x00, 0x00, 0x00,
		0x15, 0x00, 0, 3, 0x00, 0x08, 0x00, 0x00,
		0x30, 0x00, 0, 0, 0x17, 0x00, 0x00, 0x00,
		0x15, 0x00, 0, 1, 0x01, 0x00, 0x00, 0x00,
		0x06, 0x00, 0, 0, 0x00, 0x00, 0x00, 0x00,
		0x06, 0x00, 0, 0, 0x00, 0x00, 0x04, 0x00,
	}
	want := le
	if !littleEndian {
		want = make([]byte, len(le))
		for i := 0; i < len(le); i += 8 {
			want[i], want[i+1] = le[i+1], le[i]
			want[i+2], want[i+3] = le[i+2], le[i+3]
			want[i+4], want[i+5], want[i+6], want[i+7] = le[i+7], le[i+6], le[i+5], le[i+4]
		}
	}
	got, err := marshalBPF(prog)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("marshalBPF = % x, %v\nwant            % x", got, err, want)
	}
	for _, n := range []int{0, 4097} {
		if _, err := marshalBPF(make([]BPFInstruction, n)); !errors.Is(err, errBPFProgram) {
			t.Errorf("%d instructions: %v, want errBPFProgram", n, err)
		}
	}
	if b, err := marshalBPF(make([]BPFInstruction, 4096)); err != nil || len(b) != 4096*8 {
		t.Errorf("4096 instructions: %d bytes, %v", len(b), err)
	}
}

func FuzzTxFilterMarshal(f *testing.F) {
	f.Add(false, []byte{2, 0, 0x5e, 0, 0, 2})
	f.Add(true, bytes.Repeat([]byte{1, 0, 0x5e, 0, 0, 1}, 10))
	f.Fuzz(func(t *testing.T, allMulti bool, raw []byte) {
		var addrs []net.HardwareAddr
		for len(raw) >= 6 {
			addrs = append(addrs, net.HardwareAddr(raw[:6]))
			raw = raw[6:]
		}
		if len(raw) > 0 {
			addrs = append(addrs, net.HardwareAddr(raw))
		}
		b, err := TxFilter{AllMulti: allMulti, Addrs: addrs}.marshal()
		if err != nil {
			return
		}
		// What the kernel would read back.
		flags, count := binary.NativeEndian.Uint16(b), binary.NativeEndian.Uint16(b[2:])
		if int(count) != len(addrs) || len(b) != 4+6*len(addrs) || (flags == 1) != allMulti {
			t.Fatalf("flags %d count %d len %d for %d addresses", flags, count, len(b), len(addrs))
		}
		for i, a := range addrs {
			if !bytes.Equal(b[4+6*i:10+6*i], a) {
				t.Fatalf("address %d", i)
			}
			if i >= TxFilterExact && a[0]&1 == 0 {
				t.Fatalf("unicast address %d accepted past the exact entries", i)
			}
		}
	})
}
