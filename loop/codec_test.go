package loop

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// repeatCodec is a toy Codec: a read is a 1-byte count c and a payload,
// which stands for c copies of the payload; consecutive equal packets are
// written as one such record.
type repeatCodec struct {
	kept    []byte // the payload of the copies not handed out yet
	keptN   int
	writes  [][][]byte
	indexes [][]int
	hdrs    [][1]byte
}

var _ Codec = (*repeatCodec)(nil)

func (c *repeatCodec) HeaderLen() int { return 1 }
func (c *repeatCodec) PutHeader(hdr, _ []byte) error {
	hdr[0] = 1
	return nil
}
func (c *repeatCodec) Room() int { return 16 }

func (c *repeatCodec) Decode(bufs [][]byte, sizes []int, offset, n int) (int, int, bool, error) {
	raw := bufs[0][offset-1 : offset-1+n]
	if raw[0] == 0 {
		return 0, 0, false, errors.New("a record of no packet")
	}
	c.kept, c.keptN = append(c.kept[:0], raw[1:]...), int(raw[0])
	return c.Kept(bufs, sizes, offset)
}

func (c *repeatCodec) Kept(bufs [][]byte, sizes []int, offset int) (int, int, bool, error) {
	k, b := 0, 0
	for ; k < len(bufs) && c.keptN > 0; k++ {
		sizes[k] = copy(bufs[k][offset:], c.kept)
		b += sizes[k]
		c.keptN--
	}
	return k, b, c.keptN > 0, nil
}

func (c *repeatCodec) Count(hdr, _ []byte, total int) (int, int) {
	return int(hdr[0]), int(hdr[0]) * total
}

func (c *repeatCodec) Encode(bufs [][]byte, offset int) (int, error) {
	c.writes, c.indexes, c.hdrs = c.writes[:0], c.indexes[:0], c.hdrs[:0]
	for i := 0; i < len(bufs); {
		j := i + 1
		for j < len(bufs) && j-i < 255 && bytes.Equal(bufs[j][offset:], bufs[i][offset:]) {
			j++
		}
		c.hdrs = append(c.hdrs, [1]byte{byte(j - i)})
		idx := make([]int, 0, j-i)
		for k := i; k < j; k++ {
			idx = append(idx, k)
		}
		c.indexes = append(c.indexes, idx)
		i = j
	}
	for j := range c.hdrs {
		c.writes = append(c.writes, [][]byte{c.hdrs[j][:], bufs[c.indexes[j][0]][offset:]})
	}
	return len(c.writes), nil
}

func (c *repeatCodec) Write(j int) ([][]byte, []int) { return c.writes[j], c.indexes[j] }

// A Codec turns one read into several packets and several packets into one
// write: the PacketFD counts packets (not reads), hands out what did not fit
// on the next call, and has the callback run again for it although the
// descriptor has nothing new.
func TestPacketCodec(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	a, b := dgramPair(t)
	closeLater(t, b)
	const off = 4
	var (
		mu    sync.Mutex
		got   []string
		calls int
	)
	bufs := [][]byte{make([]byte, off+16), make([]byte, off+16), make([]byte, off+16)}
	sizes := make([]int, 3)
	// One RecvBatch per callback, never a loop until ErrWouldBlock: only
	// the requeue brings the kept packets.
	p := attach(t, l, a, PacketConfig{Framer: &repeatCodec{}, OnReady: func(p *PacketFD, ev Events) {
		n, _ := p.RecvBatch(bufs, sizes, off)
		mu.Lock()
		defer mu.Unlock()
		calls++
		for i := range n {
			got = append(got, string(bufs[i][off:off+sizes[i]]))
		}
	}})
	defer p.Close()

	before := l.Stats()
	mustWrite(t, b, []byte{5, 'x', 'y'})
	waitFor(t, "5 packets from one read of 5", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 5
	})
	mu.Lock()
	if len(got) != 5 || got[0] != "xy" || got[4] != "xy" {
		t.Errorf("got %q, want 5 x \"xy\"", got)
	}
	mu.Unlock()
	s := l.Stats()
	if s.PacketsIn-before.PacketsIn != 5 || s.BytesIn-before.BytesIn != 10 {
		t.Errorf("counted %d packets, %d bytes in; want 5 and 10", s.PacketsIn-before.PacketsIn, s.BytesIn-before.BytesIn)
	}

	onLoop(t, l, func() {
		if err := p.Cancel(Readable); err != nil {
			t.Error(err)
		}
		// Recv passes a read through whole, counted as Count says.
		mustWrite(t, b, []byte{4, 'a'})
		deliver(l)
		before = l.Stats()
		buf := make([]byte, 16)
		if n, err := p.Recv(buf); err != nil || string(buf[:n]) != "a" {
			t.Errorf("Recv: %q, %v; want \"a\"", buf[:n], err)
		}
		if s := l.Stats(); s.PacketsIn-before.PacketsIn != 4 || s.BytesIn-before.BytesIn != 4 {
			t.Errorf("Recv counted %d packets, %d bytes; want 4 and 4", s.PacketsIn-before.PacketsIn, s.BytesIn-before.BytesIn)
		}
		// SendBatch writes what Encode grouped, one write each.
		before = l.Stats()
		out := [][]byte{[]byte("---zz"), []byte("---zz"), []byte("---zz"), []byte("---q")}
		if n, err := p.SendBatch(out, 3); n != 4 || err != nil {
			t.Errorf("SendBatch: %d, %v; want 4, nil", n, err)
		}
		s := l.Stats()
		if s.PacketsOut-before.PacketsOut != 4 || s.BytesOut-before.BytesOut != 7 || s.Syscalls-before.Syscalls != 2 {
			t.Errorf("SendBatch counted %d packets, %d bytes, %d calls; want 4, 7, 2", s.PacketsOut-before.PacketsOut, s.BytesOut-before.BytesOut, s.Syscalls-before.Syscalls)
		}
		// SendHeader passes a header through; the codec counts it.
		before = l.Stats()
		if err := p.SendHeader([]byte{7}, []byte("w")); err != nil {
			t.Errorf("SendHeader: %v", err)
		}
		if s := l.Stats(); s.PacketsOut-before.PacketsOut != 7 {
			t.Errorf("SendHeader counted %d packets, want 7", s.PacketsOut-before.PacketsOut)
		}
		// Send frames with PutHeader.
		if err := p.Send([]byte("s")); err != nil {
			t.Errorf("Send: %v", err)
		}
	})
	buf := make([]byte, 64)
	for _, want := range []string{"\x03zz", "\x01q", "\x07w", "\x01s"} {
		n, err := unix.Read(b, buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("peer read %q, %v; want %q", buf[:max(n, 0)], err, want)
		}
	}

	// A read the codec refuses is an error, after the packets before it.
	onLoop(t, l, func() {
		mustWrite(t, b, []byte{1, 'o'})
		mustWrite(t, b, []byte{0, 'o'})
		deliver(l)
		n, err := p.RecvBatch(bufs, sizes, off)
		if n != 1 || err != nil {
			t.Errorf("RecvBatch before a bad read: %d, %v; want 1, nil", n, err)
		}
		if n, err = p.RecvBatch(bufs, sizes, off); n != 0 || err == nil {
			t.Errorf("RecvBatch after a bad read: %d, %v; want the codec's error", n, err)
		}
		if _, err = p.RecvBatch(bufs, sizes, off); !errors.Is(err, ErrWouldBlock) {
			t.Errorf("RecvBatch once drained: %v, want ErrWouldBlock", err)
		}
		// Each buffer must hold Room bytes after offset.
		short := [][]byte{make([]byte, off+16), make([]byte, off+15)}
		if _, err := p.RecvBatch(short, sizes, off); !errors.Is(err, unix.EINVAL) {
			t.Errorf("RecvBatch with a buffer short of Room: %v, want EINVAL", err)
		}
	})
}
