//go:build linux || darwin

package utun

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/loop"
	"golang.org/x/sys/unix"
)

// TestFramerThroughLoop runs the Framer inside a loop.PacketFD on a
// datagram socket pair, which frames packets as a utun socket does: one
// packet per read and write. It checks what actually crosses the
// descriptor: the 4-byte family header in network order, then the packet.
func TestFramerThroughLoop(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	dev, peer := fds[0], fds[1]
	defer unix.Close(peer)
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}

	l, err := loop.New()
	if err != nil {
		unix.Close(dev)
		t.Fatalf("loop.New: %v", err)
	}
	defer l.Close()
	p, err := l.AttachPacketFD(dev, loop.PacketConfig{
		Framer:  Framer{},
		OnReady: func(*loop.PacketFD, loop.Events) {},
		Close:   func() error { return unix.Close(dev) },
	})
	if err != nil {
		unix.Close(dev)
		t.Fatalf("attach: %v", err)
	}
	do := func(fn func()) {
		t.Helper()
		if err := l.Do(fn); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	readPeer := func() []byte {
		t.Helper()
		b := make([]byte, 2048)
		n, err := unix.Read(peer, b)
		if err != nil {
			t.Fatalf("read from peer: %v", err)
		}
		return b[:n]
	}

	v4 := []byte{0x45, 0x00, 0x00, 0x1c, 1, 2, 3, 4}
	v6 := []byte{0x60, 0x00, 0x00, 0x00, 9, 8, 7}

	// Send: the header goes in its own iovec, chosen from the first
	// non-empty part.
	do(func() { err = p.Send(nil, v6[:2], v6[2:]) })
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got, want := readPeer(), append([]byte{0, 0, 0, 0x1e}, v6...); !bytes.Equal(got, want) {
		t.Errorf("Send IPv6: wire % x, want % x", got, want)
	}

	// SendBatch: the header is written into the headroom in place.
	const off = 8
	bufs := [][]byte{
		append(make([]byte, off), v4...),
		append(make([]byte, off), v6...),
	}
	var n int
	do(func() { n, err = p.SendBatch(bufs, off) })
	if err != nil || n != 2 {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	if got, want := readPeer(), append([]byte{0, 0, 0, 2}, v4...); !bytes.Equal(got, want) {
		t.Errorf("SendBatch IPv4: wire % x, want % x", got, want)
	}
	if got, want := readPeer(), append([]byte{0, 0, 0, 0x1e}, v6...); !bytes.Equal(got, want) {
		t.Errorf("SendBatch IPv6: wire % x, want % x", got, want)
	}
	if !bytes.Equal(bufs[0][off-HeaderLen:off], []byte{0, 0, 0, 2}) {
		t.Errorf("headroom of the IPv4 buffer: % x", bufs[0][:off])
	}

	// A packet that is neither IPv4 nor IPv6 is refused before it is sent.
	do(func() { err = p.Send([]byte{0x50, 1, 2, 3}) })
	if !errors.Is(err, ErrNotIP) {
		t.Errorf("Send of a version-5 packet: %v, want ErrNotIP", err)
	}
	// An empty packet never reaches the framer: the loop refuses it.
	do(func() { err = p.Send() })
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "empty packet") {
		t.Errorf("Send of nothing: %v, want the loop's EINVAL for an empty packet", err)
	}

	// Recv strips the header.
	if _, err := unix.Write(peer, append([]byte{0, 0, 0, 2}, v4...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	do(func() { n, err = p.Recv(buf) })
	if err != nil || !bytes.Equal(buf[:n], v4) {
		t.Errorf("Recv = % x, %v; want % x", buf[:n], err, v4)
	}

	// RecvBatch leaves the header in the headroom, where ParseFamilyHeader
	// reads it.
	if _, err := unix.Write(peer, append([]byte{0, 0, 0, 0x1e}, v6...)); err != nil {
		t.Fatal(err)
	}
	rbufs := [][]byte{make([]byte, off+1500)}
	sizes := make([]int, 1)
	do(func() { n, err = p.RecvBatch(rbufs, sizes, off) })
	if err != nil || n != 1 {
		t.Fatalf("RecvBatch = %d, %v", n, err)
	}
	if got := rbufs[0][off : off+sizes[0]]; !bytes.Equal(got, v6) {
		t.Errorf("RecvBatch packet % x, want % x", got, v6)
	}
	if fam, err := ParseFamilyHeader(rbufs[0][off-HeaderLen : off]); fam != AFInet6 || err != nil {
		t.Errorf("RecvBatch header: %d, %v", fam, err)
	}
}
