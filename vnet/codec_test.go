package vnet

import (
	"bytes"
	"testing"
)

// The codec lays a read out as Split does, keeps the segments that do not
// fit and hands them out, in order, over the next calls; Count sees a
// super-packet passed through as its segments.
func TestCodecDecodeKeepsWhatDoesNotFit(t *testing.T) {
	const off = 12 // headroom: HeaderLen and then some
	for _, f := range []flow{tcp4Flow(), udp6Flow()} {
		sp, h := super(t, f, tcpFlags{psh: true}, payloadBytes(3, 9000), 1000) // 9 segments
		whole, wsizes := buffers(16, 1600)
		n, err := Split(append([]byte(nil), sp...), h, whole, wsizes, off)
		if err != nil || n != 9 {
			t.Fatalf("Split: %d, %v", n, err)
		}
		c := NewCodec(nil)
		bufs, sizes := buffers(4, off+maxRead)
		read := append(make([]byte, HeaderLen), sp...)
		h.Encode(read)
		copy(bufs[0][off-HeaderLen:], read)
		var got [][]byte
		k, b, more, err := c.Decode(bufs, sizes, off, len(read))
		for calls := 0; ; calls++ {
			if err != nil || k != min(4, 9-len(got)) {
				t.Fatalf("%v call %d: %d packets, %v", f, calls, k, err)
			}
			sum := 0
			for i := range k {
				got = append(got, append([]byte(nil), bufs[i][off:off+sizes[i]]...))
				sum += sizes[i]
			}
			if sum != b {
				t.Errorf("call %d: %d bytes reported, %d laid out", calls, b, sum)
			}
			if more != (len(got) < 9) {
				t.Fatalf("call %d: more %v with %d of 9 out", calls, more, len(got))
			}
			if !more {
				break
			}
			k, b, more, err = c.Kept(bufs, sizes, off)
		}
		for i := range got {
			if !bytes.Equal(got[i], whole[i][off:off+wsizes[i]]) {
				t.Errorf("%v: segment %d differs from Split's", f, i)
			}
		}
		if k, _, more, err := c.Kept(bufs, sizes, off); k != 0 || more || err != nil {
			t.Errorf("Kept once empty: %d, %v, %v", k, more, err)
		}
		packets, bytes := c.Count(read[:HeaderLen], sp, len(sp))
		wantBytes := 0
		for i := range n {
			wantBytes += wsizes[i]
		}
		if packets != 9 || bytes != wantBytes {
			t.Errorf("Count: %d packets, %d bytes; want 9, %d", packets, bytes, wantBytes)
		}
		if last, err := c.Last(); err != nil || last != h {
			t.Errorf("Last: %+v, %v; want %+v", last, err, h)
		}
	}
}

// A read whose header lies is refused, and nothing is kept.
func TestCodecDecodeRefusesBadHeader(t *testing.T) {
	c := NewCodec(nil)
	bufs, sizes := buffers(2, 10+maxRead)
	bufs[0][0] = 0xff // unknown flags
	if _, _, more, err := c.Decode(bufs, sizes, HeaderLen, HeaderLen+20); err == nil || more {
		t.Errorf("Decode of a bad header: more %v, %v; want an error", more, err)
	}
}
