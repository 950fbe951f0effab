//go:build unix

package broker

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// The server's side of Tundra's client protocol (tundraproto.go). Tundra's
// protocol has no error reply: a client learns of a refusal only by the
// connection closing without a descriptor. So on this path the server
// writes nothing but a successful response; every refusal goes to the
// audit record (tagged proto=tundra) and the connection is closed.

// errTundraOversize is the refusal of a client that sent more than one
// request's worth of bytes.
var errTundraOversize = fmt.Errorf("the client sent more than the %d bytes of a Tundra request", tundraRequestLen)

// serveTundra serves a connection whose first bytes, got (read with
// readErr), are those of a Tundra request (isTundraStart). It runs under
// the read deadline serve set, reads the rest of the fixed-size request,
// and hands it to grant like one of ours.
func (s *Server) serveTundra(c *net.UnixConn, a *audit, got []byte, readErr error) {
	a.proto = protoTundra
	fail := func(result, why string) {
		a.result, a.status, a.reason = result, StatusBadRequest, why
	}
	var buf [tundraRequestLen]byte
	n := copy(buf[:], got)
	read := func(upTo int) bool {
		if readErr == nil && n < upTo {
			var m int
			m, readErr = readFull(c, buf[n:upTo])
			n += m
		}
		if readErr != nil {
			fail("dropped", readProblem("request", n, tundraRequestLen, readErr, s.timeout))
			return false
		}
		return true
	}
	// The size field decides whether this is a Tundra request at all,
	// before the client is waited for any longer.
	if !read(tundraOffSize + 8) {
		return
	}
	if err := decodeTundraSize(buf[:n]); err != nil {
		fail("refused", err.Error())
		return
	}
	if !read(tundraRequestLen) {
		return
	}
	// The client sends its request with one send(2), and a Unix stream
	// socket queues it whole, so bytes beyond it are here by now.
	if pendingInput(c) {
		fail("refused", errTundraOversize.Error())
		return
	}
	r, err := decodeTundraRequest(buf[:])
	if err != nil {
		fail("refused", err.Error())
		return
	}
	s.grant(c, a, r)
}

// replyTundra is reply for a Tundra client: a success is the 32-byte
// response with the one descriptor, in one sendmsg(2); anything else is
// not written at all (the caller closes the connection, which is how
// Tundra's protocol says no). It returns the write error, or why the
// response could not be sent.
func (s *Server) replyTundra(c *net.UnixConn, r response, fds []int) error {
	if r.Status != StatusOK {
		return nil
	}
	if len(fds) != 1 {
		// A Tundra client takes exactly one descriptor
		// (cmsg_len == CMSG_LEN(sizeof(int))).
		return fmt.Errorf("a Tundra client takes one descriptor, the device has %d", len(fds))
	}
	msg, err := encodeTundraResponse(r.Name)
	if err != nil {
		return err
	}
	// Checked again now that the device exists: bytes sent after the
	// first check would otherwise go unnoticed.
	if pendingInput(c) {
		return errTundraOversize
	}
	c.SetWriteDeadline(time.Now().Add(s.timeout))
	n, _, err := c.WriteMsgUnix(msg[:], unix.UnixRights(fds...), nil)
	if err == nil && n < len(msg) {
		// The descriptor went with the first byte.
		_, err = c.Write(msg[n:])
	}
	return bareNetError(err)
}

// pendingInput reports whether c has unread bytes queued, without waiting
// and without consuming them. A client that has shut down its side has
// none.
func pendingInput(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	pending := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			// No control buffer: a descriptor queued with the bytes is
			// not installed by a peek.
			n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			pending = err == nil && n > 0
			return
		}
	})
	return pending
}
