package vnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func encodeHeader(h Header) []byte {
	b := make([]byte, HeaderLen)
	h.Encode(b)
	return b
}

// FuzzSplit decodes a virtio-net header and splits what follows. Whatever
// the bytes, nothing panics, Inspect and Split agree, and every segment of
// a super-packet has valid checksums and lengths and carries its share of
// the payload.
func FuzzSplit(f *testing.F) {
	for _, fl := range []flow{tcp4Flow(), tcp6Flow(), udp4Flow(), udp6Flow()} {
		sp, h := super(f, fl, tcpFlags{psh: true}, payloadBytes(1, 3000), 700)
		f.Add(append(encodeHeader(h), sp...))
		h.HdrLen = 0
		f.Add(append(encodeHeader(h), sp[:len(sp)-1]...))
		single := fl.build(f, 0, 1, tcpFlags{}, payloadBytes(2, 40))
		f.Add(append(encodeHeader(Header{Flags: FlagNeedsCsum, CsumStart: 20, CsumOffset: 16}), single...))
	}
	ext := tcp6Flow()
	ext.v6ext = true
	sp, h := super(f, ext, tcpFlags{}, payloadBytes(3, 2000), 500)
	f.Add(append(encodeHeader(h), sp...))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHeader(data)
		if err != nil {
			if len(data) >= HeaderLen {
				t.Fatal(err)
			}
			return
		}
		pkt := data[HeaderLen:]
		lay, ierr := Inspect(pkt, h)
		const off = 3
		out, sizes := buffers(8, off+len(pkt))
		n, err := Split(append([]byte(nil), pkt...), h, out, sizes, off)
		var ve *Error
		if errors.As(err, &ve) && errors.Is(err, ErrNoRoom) && ve.Need <= 512 && ve.Need > len(out) {
			out, sizes = buffers(ve.Need, off+len(pkt))
			n, err = Split(append([]byte(nil), pkt...), h, out, sizes, off)
		}
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("error of another type: %#v", err)
		}
		if (ierr == nil) != (err == nil || errors.Is(err, ErrNoRoom)) {
			t.Fatalf("Inspect says %v, Split says %v", ierr, err)
		}
		if err != nil {
			return
		}
		if n != lay.Segments {
			t.Fatalf("%d segments, Inspect said %d", n, lay.Segments)
		}
		if !h.IsGSO() {
			if sizes[0] != len(pkt) {
				t.Fatalf("single packet of %d bytes became %d", len(pkt), sizes[0])
			}
			return
		}
		total := 0
		for i := range n {
			seg := out[i][off : off+sizes[i]]
			if !bytes.Equal(seg[lay.HeaderLen:], pkt[lay.HeaderLen+i*lay.SegmentSize:lay.HeaderLen+i*lay.SegmentSize+len(seg)-lay.HeaderLen]) {
				t.Fatalf("segment %d payload is not its share", i)
			}
			total += len(seg) - lay.HeaderLen
			checkSegment(t, seg, lay)
		}
		if total != len(pkt)-lay.HeaderLen {
			t.Fatalf("segments carry %d payload bytes of %d", total, len(pkt)-lay.HeaderLen)
		}
		// SplitFrom, three buffers at a time, gives the same segments.
		chunk, csizes := buffers(3, off+len(pkt))
		for first := 0; first < n; {
			k, all, err := SplitFrom(pkt, h, first, chunk, csizes, off)
			if err != nil || all != n || k != min(3, n-first) {
				t.Fatalf("SplitFrom from %d: %d of %d, %v", first, k, all, err)
			}
			for j := range k {
				if !bytes.Equal(chunk[j][off:off+csizes[j]], out[first+j][off:off+sizes[first+j]]) {
					t.Fatalf("SplitFrom's segment %d differs from Split's", first+j)
				}
			}
			first += k
		}
	})
}

// checkSegment verifies the lengths and checksums of one segment Split
// made.
func checkSegment(t *testing.T, seg []byte, lay Layout) {
	t.Helper()
	l4 := lay.TransportOffset
	var src, dst []byte
	if lay.IPVersion == 4 {
		if int(binary.BigEndian.Uint16(seg[2:])) != len(seg) || Checksum(seg[:l4], 0) != 0xffff {
			t.Fatalf("IPv4 length or header checksum wrong: %x", seg[:l4])
		}
		src, dst = seg[12:16], seg[16:20]
	} else {
		if int(binary.BigEndian.Uint16(seg[4:])) != len(seg)-40 {
			t.Fatalf("IPv6 payload length wrong")
		}
		src, dst = seg[8:24], seg[24:40]
	}
	if lay.Protocol == protoUDP && int(binary.BigEndian.Uint16(seg[l4+4:])) != len(seg)-l4 {
		t.Fatalf("UDP length wrong")
	}
	if Checksum(seg[l4:], PseudoHeaderChecksum(lay.Protocol, src, dst, len(seg)-l4)) != 0xffff {
		t.Fatalf("transport checksum wrong")
	}
}

// encodeBatch lays packets out as the fuzz input of FuzzCoalesce: a
// configuration byte, then each packet behind its little-endian 16-bit
// length.
func encodeBatch(cfg byte, pkts [][]byte) []byte {
	b := []byte{cfg}
	for _, p := range pkts {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// FuzzCoalesce coalesces any batch. Nothing panics; every packet lands in
// exactly one Item, in order; and every super-packet passes Inspect and
// splits back into the packets it was made of.
func FuzzCoalesce(f *testing.F) {
	a, u, c6 := tcp4Flow(), udp4Flow(), tcp6Flow()
	f.Add(encodeBatch(0x07, a.segments(f, 6, 700, 100, true)))
	f.Add(encodeBatch(0x07, u.datagrams(f, 5, 300, 0)))
	f.Add(encodeBatch(0x0f, c6.segments(f, 4, 500, 0, false)))
	mixed := append(a.segments(f, 3, 400, 0, false), u.datagrams(f, 3, 200, 0)...)
	mixed = append(mixed, c6.segments(f, 3, 400, 10, false)...)
	f.Add(encodeBatch(0x37, mixed))
	f.Add(encodeBatch(0x3f, mixed)) // checksums trusted: mutated packets still merge
	fixed := a
	fixed.fixedID = true
	f.Add(encodeBatch(0x27, fixed.segments(f, 4, 300, 0, false)))
	u6 := udp6Flow()
	u6.v6ext = true
	f.Add(encodeBatch(0x07, u6.datagrams(f, 3, 100, 0)))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cfgByte := data[0]
		cfg := Config{
			Offloads:       Offloads{TCP4: cfgByte&1 != 0, TCP6: cfgByte&2 != 0, UDP: cfgByte&4 != 0},
			TrustChecksums: cfgByte&8 != 0,
			MaxParts:       []int{0, 2, 3, 5, 8, 65, 100, 1}[cfgByte>>4&7],
		}
		const off = 4
		var pkts [][]byte
		for rest := data[1:]; len(rest) >= 2 && len(pkts) < 256; {
			n := int(binary.LittleEndian.Uint16(rest))
			rest = rest[2:]
			n = min(n, len(rest))
			b := make([]byte, off+n)
			copy(b[off:], rest[:n])
			pkts = append(pkts, b)
			rest = rest[n:]
		}
		orig := clonePackets(pkts)
		co := NewCoalescer(cfg)
		items, err := co.Coalesce(pkts, off)
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, len(pkts))
		prev := -1
		for _, it := range items {
			if len(it.Index) == 0 || it.Index[0] <= prev || len(it.Vec) > co.Config().MaxParts || len(it.Vec) != len(it.Index)+1 {
				t.Fatalf("bad item %+v", it)
			}
			prev = it.Index[0]
			for k, i := range it.Index {
				if seen[i] || (k > 0 && i <= it.Index[k-1]) {
					t.Fatalf("packet %d twice or out of order", i)
				}
				seen[i] = true
			}
			if it.Packets() == 1 {
				continue
			}
			b := flatten(it)
			if _, err := Inspect(b[HeaderLen:], it.Header); err != nil {
				t.Fatalf("super-packet fails Inspect: %v", err)
			}
			out, sizes := buffers(len(it.Index), 65536)
			n, err := Split(b[HeaderLen:], it.Header, out, sizes, 0)
			if err != nil || n != len(it.Index) {
				t.Fatalf("split: %d of %d, %v", n, len(it.Index), err)
			}
			fixedID := true
			for _, i := range it.Index[1:] {
				fixedID = fixedID && bytes.Equal(pkts[i][off+4:off+6], pkts[it.Index[0]][off+4:off+6])
			}
			for k, i := range it.Index {
				samePacket(t, out[k][:sizes[k]], pkts[i][off:], it.Header, fixedID, cfg.TrustChecksums)
			}
		}
		for i := range pkts {
			if !seen[i] {
				t.Fatalf("packet %d in no item", i)
			}
			if !bytes.Equal(pkts[i], orig[i]) {
				t.Fatalf("input %d modified", i)
			}
		}
	})
}

// samePacket compares a re-split segment with the input packet, allowing
// what the round trip legitimately changes: the IPv4 identification of a
// fixed-ID flow (and so its header checksum), the 0x0000/0xffff spelling of
// a TCP checksum, and any transport checksum when checksums were trusted.
func samePacket(t *testing.T, got, want []byte, h Header, fixedID, trusted bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("length %d, want %d", len(got), len(want))
	}
	g, w := append([]byte(nil), got...), append([]byte(nil), want...)
	if g[0]>>4 == 4 && fixedID {
		copy(g[4:6], w[4:6])
		copy(g[10:12], w[10:12])
	}
	cs := int(h.CsumStart) + int(h.CsumOffset)
	if trusted || (g[cs] == 0 && g[cs+1] == 0 && w[cs] == 0xff && w[cs+1] == 0xff) {
		copy(g[cs:cs+2], w[cs:cs+2])
	}
	if !bytes.Equal(g, w) {
		t.Fatalf("round trip differs:\n got %x\nwant %x", got[:min(len(got), 80)], want[:min(len(want), 80)])
	}
}
