package relay

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/tuntest"
	"golang.org/x/sys/unix"
)

// A lane over a fake queue (tuntest) and a loopback UDP socket: packets
// the device hands over reach the peer, the peer's datagrams are written
// to the device, and a packet the device refuses is counted. No device,
// no namespace, no CAP_NET_ADMIN.
func TestLaneOverFakeQueue(t *testing.T) {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	fd, err := udpSocket(netip.MustParseAddrPort("127.0.0.1:0"), peerAddr, false)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	laneAddr := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))

	l, err := loop.New()
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer l.Close()
	q := tuntest.NewQueue()
	refused := errors.New("not an IP packet")
	q.Refuse = func(p []byte) error {
		if bytes.HasPrefix(p, []byte("bad")) {
			return refused
		}
		return nil
	}
	r := &Relay{}
	ln, err := r.addLane(q, 0, l, fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}

	// Device to peer: the test plays the readiness the loop would report.
	out := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	q.Inject(out...)
	if err := l.Do(ln.fromTun); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	for _, want := range out {
		n, err := peer.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("peer read %q, %v; want %q", buf[:n], err, want)
		}
	}
	if q.Pending() != 0 {
		t.Errorf("%d packets left unread on the queue", q.Pending())
	}

	// Peer to device, through the loop's own readiness of the socket.
	back := [][]byte{[]byte("four"), []byte("bad one"), []byte("five")}
	for _, b := range back {
		if _, err := peer.WriteToUDPAddrPort(b, laneAddr); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]byte
	for deadline := time.Now().Add(5 * time.Second); len(got) < 2 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got = append(got, q.Sent()...)
	}
	if len(got) != 2 || string(got[0]) != "four" || string(got[1]) != "five" {
		t.Errorf("device got %q, want four and five", got)
	}
	l.Do(func() {}) // the lane's callback has returned, its counts are in
	st := r.Stats()[0]
	if st.TunToUDP != 3 || st.UDPToTun != 2 || st.DroppedToTun != 1 {
		t.Errorf("stats %+v, want 3 to UDP, 2 to the device, 1 refused", st)
	}
}
