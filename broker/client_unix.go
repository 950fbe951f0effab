//go:build unix

package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func (c *Client) create(ctx context.Context, r Request) (Created, error) {
	path := c.path()
	fail := func(op string, err error) (Created, error) {
		return Created{}, &Error{Op: op, Path: path, Err: err}
	}
	frame, err := marshalRequest(r)
	if err != nil {
		return fail("validate", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout())
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fail("dial", explainDial(path, err))
	}
	uc := conn.(*net.UnixConn)
	defer uc.Close()
	dl, _ := ctx.Deadline()
	uc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// Read the answer even when the write failed: a server that refuses
	// before reading (unauthorized, busy) may have answered and closed.
	_, werr := uc.Write(frame)
	resp, fds, rerr := readResponse(uc)
	if rerr != nil {
		closeFDs(fds)
		switch {
		case ctx.Err() != nil:
			return fail("receive", fmt.Errorf("%w (%v)", ctx.Err(), rerr))
		case werr != nil:
			return fail("send", werr)
		}
		return fail("receive", rerr)
	}
	if resp.Status != StatusOK {
		closeFDs(fds)
		return Created{}, &Error{Op: "create", Path: path, Status: resp.Status, Message: resp.Message, Errno: syscall.Errno(resp.Errno)}
	}
	if len(fds) != resp.Fds {
		closeFDs(fds)
		return fail("receive", fmt.Errorf("%w: the response announces %d descriptors, %d arrived", ErrProtocol, resp.Fds, len(fds)))
	}
	// Go's net package receives them close-on-exec (MSG_CMSG_CLOEXEC on
	// Linux, FD_CLOEXEC set at once elsewhere). What they are is checked
	// where they are adopted (tun.AdoptQueues, utun.Adopt): once, by the
	// code that then relies on it.
	return Created{Fds: fds, Name: resp.Name, Index: resp.Index}, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// readResponse reads one response frame and every descriptor that arrives
// with it. The caller closes the descriptors on error.
func readResponse(c *net.UnixConn) (response, []int, error) {
	var buf [MaxFrameSize]byte
	oob := make([]byte, unix.CmsgSpace(MaxQueues*4))
	var fds []int
	read := func(b []byte) (int, error) {
		n := 0
		for n < len(b) {
			m, oobn, flags, _, err := c.ReadMsgUnix(b[n:], oob)
			if m < 0 { // the syscall's -1 on error passes through
				m = 0
			}
			n += m
			if oobn > 0 {
				got, perr := parseRights(oob[:oobn])
				fds = append(fds, got...)
				if perr != nil {
					return n, fmt.Errorf("%w: control message: %v", ErrProtocol, perr)
				}
			}
			if flags&unix.MSG_CTRUNC != 0 {
				return n, fmt.Errorf("%w: control message truncated (MSG_CTRUNC): descriptors were lost, is RLIMIT_NOFILE exhausted?", ErrProtocol)
			}
			if err != nil {
				return n, bareNetError(err)
			}
			if m == 0 {
				return n, io.EOF
			}
		}
		return n, nil
	}
	n, err := read(buf[:headerLen])
	if err != nil {
		if errors.Is(err, io.EOF) && n == 0 {
			return response{}, fds, errors.New("the server closed the connection without answering")
		}
		return response{}, fds, fmt.Errorf("reading the response header (%d of %d bytes): %w", n, headerLen, err)
	}
	h, err := parseHeader(buf[:headerLen])
	if err != nil {
		return response{}, fds, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if n, err := read(buf[headerLen : headerLen+h.BodyLen]); err != nil {
		return response{}, fds, fmt.Errorf("reading the response body (%d of %d bytes): %w", n, h.BodyLen, err)
	}
	resp, err := unmarshalResponse(buf[:headerLen+h.BodyLen])
	if err != nil {
		return response{}, fds, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return resp, fds, nil
}

// parseRights returns the descriptors of every SCM_RIGHTS message in oob.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return fds, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// explainDial adds what usually causes a dial error to it, keeping the
// errno for errors.Is.
func explainDial(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w (no socket there: is tundra-server running?)", err)
	case errors.Is(err, unix.ECONNREFUSED):
		return fmt.Errorf("%w (a stale socket: nothing accepts on it; is tundra-server running?)", err)
	case errors.Is(err, fs.ErrPermission):
		fi, serr := os.Stat(path)
		if serr != nil {
			return fmt.Errorf("%w (this process may not reach %s)", err, path)
		}
		group := "?"
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			group = strconv.FormatUint(uint64(st.Gid), 10)
			if g, err := user.LookupGroupId(group); err == nil {
				group = g.Name + " (gid " + group + ")"
			}
		}
		return fmt.Errorf("%w (the socket is %v, group %s: uid %d must be a member of that group; see docs/broker.md)", err, fi.Mode(), group, os.Getuid())
	}
	return err
}
