package vnet

import (
	"testing"
)

// BenchmarkSplit splits a 64 KiB TCP super-packet (45 segments of 1448
// bytes, timestamps) and a UDP one; ns/segment is the figure to read.
func BenchmarkSplit(b *testing.B) {
	const off = 16
	run := func(b *testing.B, f flow, mss, segs int, inPlace bool) {
		sp, h := super(b, f, tcpFlags{psh: true}, payloadBytes(1, mss*segs), mss)
		out, sizes := buffers(64, off+2048)
		if inPlace {
			out[0] = make([]byte, off+len(sp))
		}
		b.SetBytes(int64(len(sp)))
		b.ReportAllocs()
		for b.Loop() {
			pkt := sp
			if inPlace {
				copy(out[0][off:], sp) // as if read there: part of the cost
				pkt = out[0][off : off+len(sp)]
			}
			if _, err := Split(pkt, h, out, sizes, off); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*segs), "ns/segment")
	}
	b.Run("tcp4-64KiB", func(b *testing.B) { run(b, tcp4Flow(), 1448, 45, false) })
	b.Run("tcp4-64KiB-inplace", func(b *testing.B) { run(b, tcp4Flow(), 1448, 45, true) })
	b.Run("tcp6-64KiB", func(b *testing.B) { run(b, tcp6Flow(), 1428, 45, false) })
	b.Run("udp4-64KiB", func(b *testing.B) { run(b, udp4Flow(), 1400, 46, false) })
}

// BenchmarkCoalesce coalesces a batch of 64 packets; ns/packet is the
// figure to read.
func BenchmarkCoalesce(b *testing.B) {
	const off = 16
	run := func(b *testing.B, pkts [][]byte, cfg Config) {
		pkts = withRoom(pkts, off)
		c := NewCoalescer(cfg)
		bytes := 0
		for _, p := range pkts {
			bytes += len(p) - off
		}
		b.SetBytes(int64(bytes))
		b.ReportAllocs()
		var items []Item
		for b.Loop() {
			var err error
			if items, err = c.Coalesce(pkts, off); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
		b.ReportMetric(float64(len(items)), "items")
	}
	tcp := func(b *testing.B) [][]byte { return tcp4Flow().segments(b, 64, 1448, 0, false) }
	udp := func(b *testing.B) [][]byte { return udp4Flow().datagrams(b, 64, 1400, 0) }
	mixed := func(b *testing.B) [][]byte {
		var pkts [][]byte
		fs := []flow{tcp4Flow(), tcp6Flow(), udp4Flow(), udp6Flow()}
		fs[1].sport, fs[3].sport = 1, 2
		per := make([][][]byte, len(fs))
		for i, f := range fs {
			if f.udp {
				per[i] = f.datagrams(b, 16, 1200, 0)
			} else {
				per[i] = f.segments(b, 16, 1200, 0, false)
			}
		}
		for j := range 16 {
			for i := range fs {
				pkts = append(pkts, per[i][j])
			}
		}
		return pkts
	}
	b.Run("tcp4-64x1448", func(b *testing.B) { run(b, tcp(b), Config{Offloads: allOffloads}) })
	b.Run("tcp4-64x1448-trust", func(b *testing.B) { run(b, tcp(b), Config{Offloads: allOffloads, TrustChecksums: true}) })
	b.Run("tcp4-64x1448-parts64", func(b *testing.B) { run(b, tcp(b), Config{Offloads: allOffloads, MaxParts: 64}) })
	b.Run("udp4-64x1400", func(b *testing.B) { run(b, udp(b), Config{Offloads: allOffloads}) })
	b.Run("udp4-64x1400-trust", func(b *testing.B) { run(b, udp(b), Config{Offloads: allOffloads, TrustChecksums: true}) })
	b.Run("mixed-4flows", func(b *testing.B) { run(b, mixed(b), Config{Offloads: allOffloads}) })
	b.Run("tcp4-no-offload", func(b *testing.B) { run(b, tcp(b), Config{}) })
}
