//go:build unix

// The examples use x/sys/unix for EAGAIN and poll(2), which Windows lacks.

package tun_test

import (
	"errors"
	"fmt"
	"log"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/tun"
)

// Open a TUN device, let the kernel pick its name, and read packets from it.
// Addresses and link state are configured elsewhere (with rtnetlink), after
// Open returns. Needs CAP_NET_ADMIN.
func Example() {
	dev, err := tun.Open(tun.Config{Name: "tundra%d"})
	if err != nil {
		log.Fatal(err) // e.g. "tun: open /dev/net/tun: permission denied (...)"
	}
	defer dev.Close()
	log.Printf("opened %s (%v)", dev.Name(), dev.Flags())

	q := dev.Queues()[0]
	buf := make([]byte, 65535) // the largest packet a TUN device can hand over
	for packets := 0; packets < 10; {
		n, err := q.Read(buf)
		if errors.Is(err, unix.EAGAIN) {
			// Nothing queued: the fd is non-blocking, so wait until it is
			// readable. Any poller works; this is the simplest.
			fds := []unix.PollFd{{Fd: int32(q.Fd()), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				log.Fatal(err)
			}
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		packets++
		log.Printf("IPv%d packet, %d bytes", tun.IPVersion(buf[:n]), n)
	}
}

// Frame an IP packet for a device opened with Config.PacketInfo.
func ExamplePIHeaderFor() {
	packet := []byte{0x60, 0, 0, 0, 0, 0, 59, 64} // the start of an IPv6 header
	h, err := tun.PIHeaderFor(packet)
	if err != nil {
		log.Fatal(err)
	}
	frame := make([]byte, tun.PIHeaderLen+len(packet))
	tun.PutPIHeader(frame, h)
	copy(frame[tun.PIHeaderLen:], packet)
	fmt.Printf("% x\n", frame[:tun.PIHeaderLen])
	// Output: 00 00 86 dd
}

func ExampleFlags_String() {
	fmt.Println(tun.FlagTUN | tun.FlagNoPI | tun.FlagMultiQueue)
	// Output: TUN|NO_PI|MULTI_QUEUE
}

func ExampleValidateName() {
	fmt.Println(tun.ValidateName("wg%d"))
	fmt.Println(tun.ValidateName("a-very-long-name0"))
	// Output:
	// <nil>
	// tun: validate name a-very-long-name0: invalid interface name: name is 17 bytes, the limit is 15 (IFNAMSIZ is 16 including the NUL)
}
