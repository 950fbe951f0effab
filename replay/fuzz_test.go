package replay

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// seedCaptures adds the repository's captures, generated and real, to a
// fuzz corpus.
func seedCaptures(f *testing.F) {
	for _, pattern := range []string{"../testdata/pcaps/*.pcap*", "../testdata/pcaps/real/*.pcap"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			if filepath.Ext(name) == ".expect" {
				continue
			}
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// Malformed captures never panic and never make Reader loop forever: every
// call either returns a record (each consuming input) or an error of the
// documented kinds.
func FuzzReader(f *testing.F) {
	seedCaptures(f)
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Add(append(ngSection(), ngIDBlock(276, nil)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := newReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("NewReader error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		// Each record takes input bytes, at least its 16-byte header;
		// gzip can expand the input by about a thousand.
		limit := len(b)
		if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
			limit *= 1100
		}
		for i := 0; ; i++ {
			p, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("Next: unexpected error kind: %v", err)
				}
				return
			}
			if i > limit {
				t.Fatalf("%d records from %d bytes of input", i, len(b))
			}
			if p.IP != nil {
				exercisePacket(t, p.IP)
			}
		}
	})
}

// exercisePacket runs every pure function that looks at a packet over p,
// checking the properties they promise.
func exercisePacket(t *testing.T, p []byte) {
	_ = describe(p)
	goodBefore := badChecksums(p) == 0
	c := append([]byte(nil), p...)
	fixChecksums(c)
	if bad := badChecksums(c); bad != 0 {
		t.Fatalf("after FixChecksums, %v still bad in %x", bad, c)
	}
	rw, err := newRewriter(RewriteConfig{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8"), netip.MustParsePrefix("fd00::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	r := append([]byte(nil), p...)
	if _, err := rw.Rewrite(r); err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if len(r) != len(p) {
		t.Fatalf("Rewrite changed the length")
	}
	if goodBefore && badChecksums(r) != 0 {
		t.Fatalf("Rewrite broke a right checksum: %v in %x (from %x)", badChecksums(r), r, p)
	}
	m := newMatcher()
	o := &Outcome{}
	m.sent(p, o)
	m.answer(p)
	m.answer(r)
	for _, lt := range []LinkType{linkTypeEthernet, linkTypeLinuxSLL, linkTypeSLL2, linkTypeNull, linkTypeIPv6} {
		stripLink(lt, p)
	}
}

// Arbitrary bytes given as a packet never panic the packet functions.
func FuzzPacket(f *testing.F) {
	f.Add(udpPkt(f, tA6, tB6, 1, 2, "x"))
	f.Add(udpPkt(f, tA4, tB4, 1, 2, "x"))
	f.Add(tcpPkt(f, tA4, tB4, 1, 80, 1, 0, "S", ""))
	f.Add(echoPkt(f, tA6, tB6, false, 1, 1))
	f.Add(icmpError(f, udpPkt(f, tA6, tB6, 1, 2, "x"), 1, 4))
	f.Add([]byte{0x60})
	f.Add([]byte{0x4f, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		exercisePacket(t, p)
	})
}
