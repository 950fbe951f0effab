package broker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/tun"
)

// fakeServer accepts one connection on a socket in a temp dir, reads a
// request, and answers with frame and the descriptors in rights. It needs
// no privilege: these tests aim hostile answers at the Client.
func fakeServer(t *testing.T, frame []byte, rights []int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.AcceptUnix()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var buf [MaxFrameSize]byte
		if _, err := c.Read(buf[:]); err != nil {
			t.Error(err)
			return
		}
		var oob []byte
		if len(rights) > 0 {
			oob = unix.UnixRights(rights...)
		}
		if _, _, err := c.WriteMsgUnix(frame, oob, nil); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return path
}

func mustResponse(t *testing.T, r response) []byte {
	t.Helper()
	b, err := marshalResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The Client closes every descriptor of an answer it rejects, and never
// leaks one. The fake server's own copies are opened before the snapshot
// and closed after the check.
func TestClientRejectsHostileAnswers(t *testing.T) {
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	ok := response{Status: StatusOK, Name: "tun0", Index: 3, Fds: 1}
	cases := []struct {
		name   string
		frame  []byte
		rights []int
		want   string
		proto  bool
	}{
		{"extra descriptors", mustResponse(t, ok), []int{pipe[0], pipe[1]}, "announces 1 descriptors, 2 arrived", true},
		{"missing descriptor", mustResponse(t, ok), nil, "announces 1 descriptors, 0 arrived", true},
		{"refusal with descriptors", mustResponse(t, response{Status: StatusDenied, Message: "no"}), []int{pipe[0]}, "denied by policy: no", false},
		{"garbage", []byte("HTTP/1.1 200 OK\r\n\r\n"), []int{pipe[1]}, "bad magic", true},
		{"truncated", mustResponse(t, ok)[:15], []int{pipe[1]}, "reading the response body (3 of 28 bytes): EOF", false},
		{"silence", nil, nil, "the server closed the connection without answering", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := fakeServer(t, tc.frame, tc.rights)
			before := leakcheck.FDs(t)
			c := Client{Path: path, Timeout: 5 * time.Second}
			cr, err := c.Create(context.Background(), Request{Addr: netip.MustParsePrefix("fd00::1/64")})
			if err == nil {
				cr.Close()
				t.Fatal("Create accepted the answer")
			}
			var be *Error
			if !errors.As(err, &be) || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrProtocol) != tc.proto {
				t.Errorf("error %v (ErrProtocol %t), want one mentioning %q (ErrProtocol %t)", err, errors.Is(err, ErrProtocol), tc.want, tc.proto)
			}
			leakcheck.NoNewFDs(t, before)
		})
	}
}

// The Client does not look at what the descriptors are: the adoption
// that relies on it checks, once. A pipe passes the Client and is refused
// by tun.AdoptQueues, which leaves it open for the caller to close.
func TestClientLeavesCheckingToAdoption(t *testing.T) {
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	path := fakeServer(t, mustResponse(t, response{Status: StatusOK, Name: "tun0", Index: 3, Fds: 1}), []int{pipe[0]})
	before := leakcheck.FDs(t)
	c := Client{Path: path, Timeout: 5 * time.Second}
	cr, err := c.Create(context.Background(), Request{Addr: netip.MustParsePrefix("fd00::1/64")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tun.AdoptQueues(cr.Fds); err == nil || !strings.Contains(err.Error(), "not a TUN/TAP fd") {
		t.Errorf("AdoptQueues of a pipe: %v, want a refusal", err)
	}
	if _, err := unix.FcntlInt(uintptr(cr.Fds[0]), unix.F_GETFD, 0); err != nil {
		t.Errorf("the refused descriptor was closed: %v", err)
	}
	cr.Close()
	leakcheck.NoNewFDs(t, before)
}

// A control message the kernel had to truncate (here because the client
// is out of descriptors) is refused, and what did arrive is closed.
func TestClientRejectsTruncatedRights(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[1])
	f := os.NewFile(uintptr(pair[0]), "client")
	fc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	var rights []int
	for i := 0; i < 8; i++ {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		rights = append(rights, fd)
	}
	frame := mustResponse(t, response{Status: StatusOK, Name: "tun0", Index: 3, Fds: 8})
	if err := unix.Sendmsg(pair[1], frame, unix.UnixRights(rights...), nil, 0); err != nil {
		t.Fatal(err)
	}
	before := leakcheck.FDs(t)

	// Leave room for about three of the eight descriptors.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	inUse := map[int]bool{}
	for _, e := range before {
		var n int
		if _, err := fmtSscan(e, &n); err == nil {
			inUse[n] = true
		}
	}
	// The kernel hands out the lowest free numbers below the limit: pick
	// the limit that leaves exactly three of them.
	limit, free := 0, 0
	for free < 3 {
		if !inUse[limit] {
			free++
		}
		limit++
	}
	low := lim
	low.Cur = uint64(limit)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	_, fds, rerr := readResponse(fc.(*net.UnixConn))
	closeFDs(fds)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if rerr == nil || !errors.Is(rerr, ErrProtocol) || !strings.Contains(rerr.Error(), "MSG_CTRUNC") {
		t.Fatalf("readResponse error = %v, want ErrProtocol naming MSG_CTRUNC", rerr)
	}
	if len(fds) == 0 || len(fds) >= 8 {
		t.Errorf("%d descriptors arrived; the test wants a partial delivery", len(fds))
	}
	leakcheck.NoNewFDs(t, before)
}

// fmtSscan reads the descriptor number at the start of an OpenFDs entry.
func fmtSscan(entry string, n *int) (int, error) {
	i := strings.IndexByte(entry, ' ')
	if i < 0 {
		return 0, syscall.EINVAL
	}
	v := 0
	for _, c := range entry[:i] {
		if c < '0' || c > '9' {
			return 0, syscall.EINVAL
		}
		v = v*10 + int(c-'0')
	}
	*n = v
	return 1, nil
}

// Dial errors say what is usually wrong.
func TestClientDialErrors(t *testing.T) {
	dir := t.TempDir()
	c := Client{Path: filepath.Join(dir, "none.sock")}
	_, err := c.Create(context.Background(), Request{Addr: netip.MustParsePrefix("fd00::1/64")})
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "is tundra-server running?") {
		t.Errorf("missing socket: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	c.Path = stale
	_, err = c.Create(context.Background(), Request{Addr: netip.MustParsePrefix("fd00::1/64")})
	if !errors.Is(err, unix.ECONNREFUSED) || !strings.Contains(err.Error(), "stale socket") {
		t.Errorf("stale socket: %v", err)
	}
	_, err = c.Create(context.Background(), Request{})
	var be *Error
	if !errors.As(err, &be) || be.Op != "validate" {
		t.Errorf("invalid request: %v", err)
	}
	if c := (Client{}); c.path() != DefaultSocketPath || c.timeout() != DefaultClientTimeout {
		t.Errorf("zero Client uses %s, %v", c.path(), c.timeout())
	}
}

// A context that ends while the server is silent ends Create.
func TestClientContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slow.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	c := Client{Path: path}
	_, err = c.Create(ctx, Request{Addr: netip.MustParsePrefix("fd00::1/64")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Create = %v, want context.Canceled", err)
	}
	if sc := <-accepted; sc != nil {
		sc.Close()
	}
}
