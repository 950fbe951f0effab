package loop_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/tundra-go/tundra/loop"
	"golang.org/x/sys/unix"
)

// A loop owns a packet descriptor (here one end of a datagram socket
// pair, standing in for a TUN queue) and a timer. The readiness callback
// and the timer run on the loop's thread, so they share state without
// locks; the callback reads until ErrWouldBlock, which arms it again.
func Example() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close() // closes every descriptor the loop owns

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		panic(err)
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		unix.SetNonblock(fd, true)
	}
	peer := fds[1]
	defer unix.Close(peer)

	done := make(chan struct{})
	buf := make([]byte, 2048) // touched only on the loop's thread
	_, err = l.AttachPacketFD(fds[0], loop.PacketConfig{
		OnReady: func(p *loop.PacketFD, ev loop.Events) {
			for {
				n, err := p.Recv(buf)
				if errors.Is(err, loop.ErrWouldBlock) {
					return // armed: called again when more arrives
				}
				if err != nil {
					fmt.Println("recv:", err)
					return
				}
				fmt.Printf("read %q\n", buf[:n])
				if string(buf[:n]) == "from the timer" {
					close(done)
				}
			}
		},
	})
	if err != nil {
		unix.Close(fds[0])
		panic(err)
	}

	// A packet now, and one from a timer on the loop 10 ms later.
	if _, err := unix.Write(peer, []byte("hello")); err != nil {
		panic(err)
	}
	if _, err := l.AfterFunc(10*time.Millisecond, func() {
		unix.Write(peer, []byte("from the timer"))
	}); err != nil {
		panic(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// read "hello"
	// read "from the timer"
}
