package vnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/gopacket/layers"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Flags: FlagNeedsCsum, GSOType: GSOTCPv4 | GSOECN, HdrLen: 0x1234, GSOSize: 1448, CsumStart: 20, CsumOffset: 16}
	b := make([]byte, HeaderLen)
	h.Encode(b)
	want := []byte{1, 0x81, 0x34, 0x12, 0xa8, 0x05, 20, 0, 16, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded %x, want %x (little-endian)", b, want)
	}
	got, err := DecodeHeader(b)
	if err != nil || got != h {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if _, err := DecodeHeader(b[:9]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short header: %v", err)
	}
}

// super builds the super-packet the kernel would hand over for a flow: one
// packet with all the payload, the transport checksum field holding the
// pseudo-header sum, and the matching virtio-net header.
func super(t testing.TB, f flow, fl tcpFlags, payload []byte, gso int) ([]byte, Header) {
	t.Helper()
	p := f.build(t, 0, f.seq, fl, payload)
	var l4 int
	if f.v6 {
		l4 = 40
		if f.v6ext {
			l4 += 8
		}
	} else {
		l4 = int(p[0]&0x0f) * 4
	}
	h := Header{Flags: FlagNeedsCsum, GSOSize: uint16(gso), CsumStart: uint16(l4)}
	var hl int
	if f.udp {
		h.GSOType, h.CsumOffset = GSOUDPL4, 6
		hl = l4 + 8
	} else {
		h.GSOType, h.CsumOffset = GSOTCPv4, 16
		if f.v6 {
			h.GSOType = GSOTCPv6
		}
		if fl.cwr {
			h.GSOType |= GSOECN
		}
		hl = l4 + int(p[l4+12]>>4)*4
	}
	h.HdrLen = uint16(hl)
	src, dst := p[12:16], p[16:20]
	if f.v6 {
		src, dst = p[8:24], p[24:40]
	}
	proto := uint8(protoTCP)
	if f.udp {
		proto = protoUDP
	}
	binary.BigEndian.PutUint16(p[l4+int(h.CsumOffset):], PseudoHeaderChecksum(proto, src, dst, len(p)-l4))
	return p, h
}

func buffers(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out, make([]int, n)
}

func concat(pkts [][]byte, hl int) []byte {
	var b []byte
	for _, p := range pkts {
		b = append(b, p[hl:]...)
	}
	return b
}

func TestSplitMatchesSenderSegments(t *testing.T) {
	const off = 16
	ipOpt := []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	cases := []struct {
		name      string
		f         flow
		n, mss    int
		last      int
		fl        tcpFlags
		wantFirst tcpFlags // flags of the first segment
	}{
		{name: "tcp4 timestamps", f: tcp4Flow(), n: 45, mss: 1448, last: 0, fl: tcpFlags{psh: true}},
		{name: "tcp4 short last", f: tcp4Flow(), n: 10, mss: 1448, last: 100, fl: tcpFlags{psh: true}},
		{name: "tcp6", f: tcp6Flow(), n: 44, mss: 1428, last: 7, fl: tcpFlags{psh: true}},
		{name: "tcp4 no options", f: func() flow { f := tcp4Flow(); f.opts = nil; return f }(), n: 3, mss: 1460},
		{name: "tcp4 ID wraps", f: func() flow { f := tcp4Flow(); f.id = 0xfffe; return f }(), n: 5, mss: 1000},
		{name: "tcp4 IP options", f: func() flow { f := tcp4Flow(); f.ipOpts = ipOpt; return f }(), n: 4, mss: 1000, last: 1},
		{name: "tcp6 dest options", f: func() flow { f := tcp6Flow(); f.v6ext = true; return f }(), n: 4, mss: 1000, last: 10},
		{name: "tcp4 cwr fin psh", f: tcp4Flow(), n: 6, mss: 1200, last: 3, fl: tcpFlags{cwr: true, fin: true, psh: true, ece: true}},
		{name: "tcp one segment", f: tcp4Flow(), n: 1, mss: 1448, last: 5, fl: tcpFlags{psh: true}},
		{name: "udp4", f: udp4Flow(), n: 40, mss: 1200, last: 0},
		{name: "udp4 short last", f: udp4Flow(), n: 5, mss: 1200, last: 1},
		{name: "udp6", f: udp6Flow(), n: 50, mss: 1232, last: 600},
		{name: "udp6 dest options", f: func() flow { f := udp6Flow(); f.v6ext = true; return f }(), n: 3, mss: 500, last: 499},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The segments a sender would have sent.
			var want [][]byte
			seq := tc.f.seq
			for i := range tc.n {
				size := tc.mss
				if i == tc.n-1 && tc.last > 0 {
					size = tc.last
				}
				fl := tcpFlags{ece: tc.fl.ece}
				if i == 0 {
					fl.cwr = tc.fl.cwr
				}
				if i == tc.n-1 {
					fl.fin, fl.psh = tc.fl.fin, tc.fl.psh
				}
				want = append(want, tc.f.build(t, i, seq, fl, payloadBytes(seq, size)))
				seq += uint32(size)
			}
			hl := len(want[0]) - tc.mss
			if tc.n == 1 {
				hl = len(want[0]) - tc.last
			}
			sp, h := super(t, tc.f, tc.fl, concat(want, hl), tc.mss)

			lay, err := Inspect(sp, h)
			if err != nil {
				t.Fatal(err)
			}
			if lay.Segments != tc.n || lay.HeaderLen != hl {
				t.Fatalf("Inspect: %+v, want %d segments of header %d", lay, tc.n, hl)
			}

			out, sizes := buffers(tc.n, off+2000)
			n, err := Split(sp, h, out, sizes, off)
			if err != nil {
				t.Fatal(err)
			}
			got := make([][]byte, n)
			for i := range n {
				got[i] = out[i][off : off+sizes[i]]
				verifyChecksums(t, got[i])
			}
			mustEqualPackets(t, got, want)

			// In place: the super-packet read into the first buffer.
			out, sizes = buffers(tc.n, off+2000)
			out[0] = make([]byte, off+len(sp))
			copy(out[0][off:], sp)
			n, err = Split(out[0][off:], h, out, sizes, off)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				got[i] = out[i][off : off+sizes[i]]
			}
			mustEqualPackets(t, got[:n], want)

			// hdr_len is only a hint: the kernel's skb_headlen may be
			// anything up to the packet length.
			for _, hint := range []uint16{0, 1, uint16(len(sp))} {
				h2 := h
				h2.HdrLen = hint
				out, sizes = buffers(tc.n, off+2000)
				if n, err := Split(sp, h2, out, sizes, off); err != nil || n != tc.n {
					t.Fatalf("hdr_len %d: %d, %v", hint, n, err)
				}
			}
		})
	}
}

func TestSplitSinglePacket(t *testing.T) {
	const off = 12
	for _, f := range []flow{tcp4Flow(), tcp6Flow(), udp4Flow(), udp6Flow()} {
		full := f.build(t, 0, f.seq, tcpFlags{psh: true}, payloadBytes(9, 999))
		l4 := 20
		if f.v6 {
			l4 = 40
		}
		field := 16
		proto := uint8(protoTCP)
		if f.udp {
			field, proto = 6, protoUDP
		}
		partial := append([]byte(nil), full...)
		src, dst := partial[12:16], partial[16:20]
		if f.v6 {
			src, dst = partial[8:24], partial[24:40]
		}
		binary.BigEndian.PutUint16(partial[l4+field:], PseudoHeaderChecksum(proto, src, dst, len(partial)-l4))

		out, sizes := buffers(1, off+len(full))
		n, err := Split(partial, Header{Flags: FlagNeedsCsum, CsumStart: uint16(l4), CsumOffset: uint16(field)}, out, sizes, off)
		if err != nil || n != 1 || sizes[0] != len(full) {
			t.Fatalf("%d %v %v", n, sizes, err)
		}
		got := out[0][off : off+sizes[0]]
		if !bytes.Equal(got, full) && !sameButChecksumZero(got, full) {
			t.Fatalf("completed checksum:\n got %x\nwant %x", got[:60], full[:60])
		}
		verifyChecksums(t, got)

		// No flags: copied as is; in place: untouched.
		out, sizes = buffers(1, off+len(full))
		if n, err := Split(full, Header{Flags: FlagDataValid}, out, sizes, off); err != nil || n != 1 || !bytes.Equal(out[0][off:off+sizes[0]], full) {
			t.Fatalf("plain copy: %d %v", n, err)
		}
		inplace := make([]byte, off+len(partial))
		copy(inplace[off:], partial)
		if _, err := Split(inplace[off:], Header{Flags: FlagNeedsCsum, CsumStart: uint16(l4), CsumOffset: uint16(field)}, [][]byte{inplace}, sizes, off); err != nil {
			t.Fatal(err)
		}
		verifyChecksums(t, inplace[off:])
	}
}

func TestSplitErrors(t *testing.T) {
	f := tcp4Flow()
	sp, h := super(t, f, tcpFlags{}, payloadBytes(1, 5000), 1000) // 5 segments
	u6, hu := super(t, udp6Flow(), tcpFlags{}, payloadBytes(2, 3000), 1000)
	single := f.build(t, 0, 1, tcpFlags{}, payloadBytes(3, 100))
	mod := func(b []byte, fn func([]byte)) []byte {
		c := append([]byte(nil), b...)
		fn(c)
		return c
	}
	with := func(fn func(*Header)) Header {
		h2 := h
		fn(&h2)
		return h2
	}
	type tcase struct {
		name string
		pkt  []byte
		h    Header
		bufs int
		size int
		want error
	}
	cases := []tcase{
		{"hdr_len past the packet", sp, with(func(h *Header) { h.HdrLen = uint16(len(sp) + 1) }), 8, 2000, ErrMalformed},
		{"csum past a single packet", single, Header{Flags: FlagNeedsCsum, CsumStart: uint16(len(single) - 10), CsumOffset: 9}, 1, 2000, ErrMalformed},
		{"csum_start far past", single, Header{Flags: FlagNeedsCsum, CsumStart: 0xffff, CsumOffset: 0xffff}, 1, 2000, ErrMalformed},
		{"csum_start not the transport header", sp, with(func(h *Header) { h.CsumStart = 24 }), 8, 2000, ErrMalformed},
		{"csum_offset not TCP's", sp, with(func(h *Header) { h.CsumOffset = 6 }), 8, 2000, ErrMalformed},
		{"gso size 0", sp, with(func(h *Header) { h.GSOSize = 0 }), 8, 2000, ErrMalformed},
		{"gso type 2", sp, with(func(h *Header) { h.GSOType = 2 }), 8, 2000, ErrUnsupported},
		{"gso type 6", sp, with(func(h *Header) { h.GSOType = 6 }), 8, 2000, ErrUnsupported},
		{"gso type ECN alone", sp, with(func(h *Header) { h.GSOType = GSOECN }), 8, 2000, ErrUnsupported},
		{"UFO", sp, with(func(h *Header) { h.GSOType = GSOUDP }), 8, 2000, ErrUnsupported},
		{"unknown flag", sp, with(func(h *Header) { h.Flags |= 4 }), 8, 2000, ErrUnsupported},
		{"TCPv6 on IPv4", sp, with(func(h *Header) { h.GSOType = GSOTCPv6 }), 8, 2000, ErrMalformed},
		{"TCPv4 on IPv6", u6, Header{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 40, CsumOffset: 16}, 8, 2000, ErrMalformed},
		{"UDP type on TCP", sp, with(func(h *Header) { h.GSOType, h.CsumOffset = GSOUDPL4, 6 }), 8, 2000, ErrMalformed},
		{"UDP with ECN", u6, func() Header { h := hu; h.GSOType |= GSOECN; return h }(), 8, 2000, ErrMalformed},
		{"IP version 5", mod(sp, func(b []byte) { b[0] = 0x55 }), h, 8, 2000, ErrMalformed},
		{"IHL 4", mod(sp, func(b []byte) { b[0] = 0x44 }), h, 8, 2000, ErrMalformed},
		{"IHL past the packet", mod(sp[:30], func(b []byte) { b[0], b[2], b[3] = 0x4f, 0, 30 }), with(func(h *Header) { h.HdrLen = 0 }), 8, 2000, ErrTruncated},
		{"total length lies", mod(sp, func(b []byte) { b[3]-- }), h, 8, 2000, ErrMalformed},
		{"IPv4 fragment", mod(sp, func(b []byte) { b[6] |= 0x20 }), h, 8, 2000, ErrMalformed},
		{"protocol not TCP", mod(sp, func(b []byte) { b[9] = 17 }), h, 8, 2000, ErrMalformed},
		{"TCP data offset 4", mod(sp, func(b []byte) { b[32] = 0x40 }), h, 8, 2000, ErrMalformed},
		{"TCP header past the end", mod(sp[:40], func(b []byte) { b[2], b[3] = 0, 40 }), with(func(h *Header) { h.HdrLen = 0 }), 8, 2000, ErrTruncated},
		{"truncated IPv4", sp[:12], with(func(h *Header) { h.HdrLen = 0 }), 8, 2000, ErrTruncated},
		{"empty", nil, with(func(h *Header) { h.HdrLen = 0 }), 8, 2000, ErrTruncated},
		{"IPv6 payload length lies", mod(u6, func(b []byte) { b[5]++ }), hu, 8, 2000, ErrMalformed},
		{"IPv6 routing header", mod(u6, func(b []byte) { b[6] = 43 }), hu, 8, 2000, ErrUnsupported},
		{"IPv6 fragment header", mod(u6, func(b []byte) { b[6] = 44 }), hu, 8, 2000, ErrUnsupported},
		{"IPv6 hop-by-hop past the end", mod(u6[:48], func(b []byte) { b[4], b[5], b[6], b[41] = 0, 8, 0, 200 }), func() Header { h := hu; h.HdrLen = 0; return h }(), 8, 2000, ErrTruncated},
		{"too few buffers", sp, h, 4, 2000, ErrNoRoom},
		{"buffer too short", sp, h, 8, 1000, ErrNoRoom},
		{"single into a short buffer", single, Header{}, 1, 10, ErrNoRoom},
		{"no buffers", single, Header{}, 0, 0, ErrNoRoom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, sizes := buffers(tc.bufs, tc.size)
			before := make([][]byte, len(out))
			for i := range out {
				before[i] = append([]byte(nil), out[i]...)
			}
			n, err := Split(tc.pkt, tc.h, out, sizes, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %d, %v; want %v", n, err, tc.want)
			}
			var ve *Error
			if !errors.As(err, &ve) || ve.Op != "split" {
				t.Fatalf("not a *vnet.Error from split: %#v", err)
			}
			for i := range out {
				if !bytes.Equal(out[i], before[i]) {
					t.Fatalf("buffer %d written on error", i)
				}
			}
			t.Log(err)
		})
	}

	// The error says how many buffers a super-packet needs.
	big, hb := super(t, f, tcpFlags{}, payloadBytes(4, 65535-52), 1448)
	out, sizes := buffers(10, 2000)
	_, err := Split(big, hb, out, sizes, 0)
	var ve *Error
	if !errors.As(err, &ve) || ve.Need != 46 || !errors.Is(err, ErrNoRoom) {
		t.Fatalf("want ErrNoRoom needing 46 buffers, got %v", err)
	}
	if _, err := Split(big, hb, out, sizes, -1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("negative offset: %v", err)
	}
}

func TestSplitBigTCP(t *testing.T) {
	// BIG TCP: a super-packet past 64 KiB has an IPv4 total length of 0.
	f := tcp4Flow()
	f.opts = nil
	payload := payloadBytes(5, 70000)
	p := make([]byte, 40+len(payload))
	small := f.build(t, 0, f.seq, tcpFlags{}, nil)
	copy(p, small)
	copy(p[40:], payload)
	p[2], p[3] = 0, 0
	h := Header{GSOType: GSOTCPv4, GSOSize: 1460}
	out, sizes := buffers(60, 1600)
	n, err := Split(p, h, out, sizes, 0)
	if err != nil || n != 48 {
		t.Fatalf("%d, %v", n, err)
	}
	for i := range n {
		verifyChecksums(t, out[i][:sizes[i]])
	}
	// The same zero length under 64 KiB is a lie.
	if _, err := Split(p[:60000], h, out, sizes, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("zero total length under 64 KiB: %v", err)
	}
}

// Split and Checksum share nothing: run them from many goroutines on one
// read-only super-packet (go test -race).
func TestSplitConcurrent(t *testing.T) {
	sp, h := super(t, tcp6Flow(), tcpFlags{}, payloadBytes(9, 20000), 1400)
	done := make(chan error)
	for range 8 {
		go func() {
			out, sizes := buffers(20, 1600)
			var err error
			for range 50 {
				if _, err = Split(sp, h, out, sizes, 0); err != nil {
					break
				}
				_ = Checksum(sp, 0)
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// A UDP checksum that computes to 0 is sent as 0xffff (RFC 768), by the
// segmentation and by the completion of a NEEDS_CSUM packet.
func TestChecksumZeroIsAllOnes(t *testing.T) {
	f := udp4Flow()
	p := f.build(t, 0, 0, tcpFlags{}, payloadBytes(3, 100))
	p[26], p[27] = 0, 0
	ph := PseudoHeaderChecksum(protoUDP, p[12:16], p[16:20], len(p)-20)
	c := ^Checksum(p[20:], ph)
	// Add c to the last payload word: the sum becomes 0xffff, the
	// checksum 0.
	w := uint32(binary.BigEndian.Uint16(p[len(p)-2:])) + uint32(c)
	w = w&0xffff + w>>16
	binary.BigEndian.PutUint16(p[len(p)-2:], uint16(w))
	if ^Checksum(p[20:], ph) != 0 {
		t.Fatal("test packet does not sum to zero")
	}

	out, sizes := buffers(1, 200)
	h := Header{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1000, CsumStart: 20, CsumOffset: 6}
	if _, err := Split(p, h, out, sizes, 0); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(out[0][26:]); got != 0xffff {
		t.Fatalf("segmented: checksum %#04x, want 0xffff", got)
	}
	binary.BigEndian.PutUint16(p[26:], ph)
	if _, err := Split(p, Header{Flags: FlagNeedsCsum, CsumStart: 20, CsumOffset: 6}, out, sizes, 0); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(out[0][26:]); got != 0xffff {
		t.Fatalf("completed: checksum %#04x, want 0xffff", got)
	}
	verifyChecksums(t, out[0][:sizes[0]])
}

// SplitFrom in chunks of every size gives what one Split gives, byte for
// byte, and never writes the super-packet.
func TestSplitFromMatchesSplit(t *testing.T) {
	for _, f := range []flow{tcp4Flow(), tcp6Flow(), udp4Flow(), udp6Flow()} {
		sp, h := super(t, f, tcpFlags{psh: true}, payloadBytes(7, 9000), 1000) // 9 segments
		whole, wsizes := buffers(16, 1600)
		n, err := Split(append([]byte(nil), sp...), h, whole, wsizes, 4)
		if err != nil || n != 9 {
			t.Fatalf("Split: %d, %v", n, err)
		}
		orig := append([]byte(nil), sp...)
		for chunk := 1; chunk <= 10; chunk++ {
			for first := 0; first < n; {
				out, sizes := buffers(chunk, 1600)
				k, total, err := SplitFrom(sp, h, first, out, sizes, 4)
				if err != nil || total != n || k != min(chunk, n-first) {
					t.Fatalf("chunk %d from %d: %d of %d, %v", chunk, first, k, total, err)
				}
				for j := range k {
					if !bytes.Equal(out[j][4:4+sizes[j]], whole[first+j][4:4+wsizes[first+j]]) {
						t.Fatalf("chunk %d: segment %d differs from Split's", chunk, first+j)
					}
				}
				first += k
			}
		}
		if !bytes.Equal(sp, orig) {
			t.Fatal("SplitFrom wrote into the super-packet")
		}
	}
}

func TestSplitFromErrors(t *testing.T) {
	f := tcp4Flow()
	sp, h := super(t, f, tcpFlags{}, payloadBytes(1, 5000), 1000) // 5 segments
	out, sizes := buffers(2, 2000)
	for _, tc := range []struct {
		name  string
		first int
		out   [][]byte
		want  error
	}{
		{"first past the end", 5, out, ErrMalformed},
		{"negative first", -1, out, ErrMalformed},
		{"no buffers", 0, nil, ErrNoRoom},
		{"buffer too short", 3, [][]byte{make([]byte, 100)}, ErrNoRoom},
	} {
		if k, total, err := SplitFrom(sp, h, tc.first, tc.out, sizes, 0); !errors.Is(err, tc.want) || k != 0 || total != 5 {
			t.Errorf("%s: %d of %d, %v; want %v", tc.name, k, total, err, tc.want)
		}
	}
	if _, _, err := SplitFrom(sp[:30], h, 0, out, sizes, 0); err == nil {
		t.Error("a truncated super-packet split")
	}
}
