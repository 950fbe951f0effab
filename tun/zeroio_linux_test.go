package tun_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
)

// Read and Write refuse a buffer with no byte beyond the framing headers
// the queue is known to carry: a read(2) of 0 bytes would take a packet and
// keep nothing of it, and a write of nothing sends no packet.
func TestReadWriteRefuseEmptyBuffers(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	for i, tc := range []struct {
		cfg tun.Config
		hdr int
	}{
		{tun.Config{}, 0},
		{tun.Config{PacketInfo: true}, tun.PIHeaderLen},
		{tun.Config{VnetHdr: true}, 10},
		{tun.Config{PacketInfo: true, VnetHdr: true}, tun.PIHeaderLen + 10},
	} {
		name := fmt.Sprintf("tdrzero%d", i)
		t.Run(name, func(t *testing.T) {
			ns := netnstest.New(t)
			tc.cfg.Name = name
			dev := open(t, ns, tc.cfg)
			upWithAddr(t, ns, name)
			q := dev.Queues()[0]
			for { // what the kernel queued when the link came up
				if _, err := q.Read(make([]byte, 2048)); err != nil {
					break
				}
			}
			sendUDP(t, ns, 11, []byte("kept"))
			pfd := []unix.PollFd{{Fd: int32(q.Fd()), Events: unix.POLLIN}}
			if n, err := unix.Poll(pfd, 5000); n != 1 {
				t.Fatalf("no packet queued: %v", err)
			}
			check := func(what string, n int, err error) {
				t.Helper()
				var op *tun.OpError
				if n != 0 || !errors.As(err, &op) || !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "buffer 0 ") {
					t.Errorf("%s: %d, %v; want an *OpError wrapping EINVAL naming buffer 0", what, n, err)
				}
			}
			for _, size := range []int{0, tc.hdr} {
				n, err := q.Read(make([]byte, size))
				check(fmt.Sprintf("Read of %d bytes", size), n, err)
				n, err = q.Write(make([]byte, size))
				check(fmt.Sprintf("Write of %d bytes", size), n, err)
			}
			n, err := q.Read(nil)
			check("Read(nil)", n, err)
			// The waiting packet is still there, whole.
			got := readUntil(t, q, 2048, func(b []byte) bool { return len(b) > tc.hdr && isUDPTo(11)(b[tc.hdr:]) })
			if !strings.HasSuffix(string(got), "kept") {
				t.Errorf("packet after the refusals: % x", got)
			}
		})
	}
}
