//go:build unix

package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	// DefaultGroup is the group whose members may use the broker when
	// Config.Group is empty.
	DefaultGroup = "tundra"
	// DefaultSocketMode is the socket's mode when Config.SocketMode is 0:
	// read and write for the owner (root) and the group.
	DefaultSocketMode os.FileMode = 0o660
	// DefaultMaxConns caps the connections handled at once.
	DefaultMaxConns = 64
	// DefaultMaxConnsPerUID caps the connections of one uid handled at
	// once.
	DefaultMaxConnsPerUID = 4
	// DefaultTimeout is the time a client has to send its whole request,
	// and separately the time the server allows for writing the response.
	DefaultTimeout = 5 * time.Second
	// DefaultCreateTimeout bounds the CreateFunc.
	DefaultCreateTimeout = 30 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("broker: server closed")

// Config configures a Server. Only Create is required. NewServer reads it
// once and keeps copies (of the Policy too), so it may be reused or changed
// afterwards.
type Config struct {
	// Create makes the devices: tundra.BrokerCreate in production. Required.
	Create CreateFunc
	// Policy limits what members may ask for; nil means DefaultPolicy.
	// Root is not subject to it.
	Policy *Policy
	// Group is the group whose members are authorized, by name or as a
	// decimal gid; "" means DefaultGroup. A name must exist (os/user); a
	// number need not.
	Group string
	// SocketMode is the mode of the socket file Listen creates; 0 means
	// DefaultSocketMode. The file's group is Group.
	SocketMode os.FileMode
	// MaxConns caps the connections handled at once, and MaxConnsPerUID
	// those of one uid; 0 means the defaults. A connection over a cap is
	// answered with StatusBusy and closed at once.
	MaxConns       int
	MaxConnsPerUID int
	// Timeout is the total time a client has to send its request (and
	// separately the time allowed for writing the response); 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// CreateTimeout bounds each call of Create; 0 means
	// DefaultCreateTimeout.
	CreateTimeout time.Duration
	// Logger receives one audit record per connection and the server's
	// own events; nil means slog.Default().
	Logger *slog.Logger
	// Inventory reports the host's addresses and routes (for the policy)
	// and whether a device still exists (for the per-uid quota). On Linux
	// it must also be a DeviceKeeper, through which the Server marks,
	// watches and reaps the devices it made. Nil means rtnetlink in the
	// network namespace of the thread that calls NewServer (on Linux;
	// elsewhere the standard library's view of the interfaces).
	Inventory Inventory
	// RefusalWindow is how long repeated refusals of one uid with one
	// status are gathered into one summary line (the first is always
	// logged in full); 0 means DefaultRefusalWindow, a negative value
	// logs every refusal in full.
	RefusalWindow time.Duration
}

// Server is the broker daemon: it accepts connections on one or more
// Unix sockets, authorizes them, and creates devices for the requests it
// allows. Build it with NewServer. Its methods are safe to call from any
// goroutine; Serve blocks until Shutdown or Close.
type Server struct {
	create        CreateFunc
	policy        Policy
	gid           int
	groupName     string
	mode          os.FileMode
	maxConns      int
	maxPerUID     int
	timeout       time.Duration
	createTimeout time.Duration
	log           *slog.Logger
	inv           Inventory
	closeInv      func() error
	keeper        DeviceKeeper   // nil where devices cannot outlive their fds
	keepDone      chan struct{}  // closed when the keeper goroutine returns
	refusals      refusalLimiter // summarises floods of refusals
	unknownOnce   sync.Once      // the warning about a kernel without TUN attributes

	ctx    context.Context // canceled by Shutdown/Close: aborts creations
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[*net.UnixListener]*socketFile
	conns     map[*net.UnixConn]struct{}
	total     int
	perUID    map[uint32]int
	wg        sync.WaitGroup // handler goroutines
	connSeq   atomic.Uint64

	devices tracker
}

// socketFile remembers the socket file a Listen created, so that Shutdown
// removes it only if it is still the same file.
type socketFile struct {
	path string
	info os.FileInfo
}

// NewServer checks cfg and returns a Server that is not yet listening.
// Call it on a thread in the network namespace the devices should live in
// when cfg.Inventory is nil (any thread of an ordinary process). With a
// DeviceKeeper it first finds the devices an earlier run marked (counting
// live ones against their uid's quota, deleting those that persist or were
// given away), then starts following link events; Shutdown or Close stops
// that, so call one of them even if the Server never serves.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Create == nil {
		return nil, errors.New("broker: NewServer: Config.Create is nil")
	}
	pol := DefaultPolicy()
	if cfg.Policy != nil {
		pol = *cfg.Policy
		pol.AllowedPrefixes = slices.Clone(pol.AllowedPrefixes)
		pol.NamePatterns = slices.Clone(pol.NamePatterns)
	}
	if err := pol.Validate(); err != nil {
		return nil, fmt.Errorf("broker: NewServer: %w", err)
	}
	group := cfg.Group
	if group == "" {
		group = DefaultGroup
	}
	gid, name, err := LookupGroup(group)
	if err != nil {
		return nil, fmt.Errorf("broker: NewServer: %w", err)
	}
	s := &Server{
		create:        cfg.Create,
		policy:        pol,
		gid:           gid,
		groupName:     name,
		mode:          cfg.SocketMode,
		maxConns:      cfg.MaxConns,
		maxPerUID:     cfg.MaxConnsPerUID,
		timeout:       cfg.Timeout,
		createTimeout: cfg.CreateTimeout,
		log:           cfg.Logger,
		inv:           cfg.Inventory,
		listeners:     make(map[*net.UnixListener]*socketFile),
		conns:         make(map[*net.UnixConn]struct{}),
		perUID:        make(map[uint32]int),
	}
	if s.mode == 0 {
		s.mode = DefaultSocketMode
	}
	if s.mode&^os.ModePerm != 0 {
		return nil, fmt.Errorf("broker: NewServer: SocketMode %v has bits beyond the permissions", cfg.SocketMode)
	}
	if s.maxConns <= 0 {
		s.maxConns = DefaultMaxConns
	}
	if s.maxPerUID <= 0 {
		s.maxPerUID = DefaultMaxConnsPerUID
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.createTimeout <= 0 {
		s.createTimeout = DefaultCreateTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.inv == nil {
		inv, closeInv, err := defaultInventory()
		if err != nil {
			return nil, fmt.Errorf("broker: NewServer: %w", err)
		}
		s.inv, s.closeInv = inv, closeInv
	}
	s.devices.init()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.refusals.window = cfg.RefusalWindow
	if s.refusals.window == 0 {
		s.refusals.window = DefaultRefusalWindow
	}
	s.refusals.summary = s.logRefusalSummary
	if k, ok := s.inv.(DeviceKeeper); ok {
		s.keeper = k
	} else if keeperRequired {
		s.cancel()
		if s.closeInv != nil {
			s.closeInv()
		}
		return nil, fmt.Errorf("broker: NewServer: the Inventory (%T) is not a DeviceKeeper: without one, a member could make its device persistent or give it away unnoticed", s.inv)
	}
	if s.keeper != nil {
		if err := s.recoverDevices(); err != nil {
			s.cancel()
			if s.closeInv != nil {
				s.closeInv()
			}
			return nil, fmt.Errorf("broker: NewServer: %w", err)
		}
		s.keepDone = make(chan struct{})
		go s.keep()
	}
	return s, nil
}

// LookupGroup resolves a group given by name or as a decimal gid, returning
// the gid and a name for messages (the number itself when a numeric gid has
// no entry). Safe from any goroutine.
func LookupGroup(group string) (gid int, name string, err error) {
	if n, err := strconv.ParseUint(group, 10, 32); err == nil {
		if n == 0xffffffff {
			return 0, "", fmt.Errorf("group %q: gid 4294967295 is the invalid gid", group)
		}
		name = group
		if g, err := user.LookupGroupId(group); err == nil {
			name = g.Name
		}
		return int(n), name, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, "", fmt.Errorf("group %q: %w (create it with groupadd --system %s, or choose another group)", group, err, group)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, "", fmt.Errorf("group %q: gid %q is not a number", group, g.Gid)
	}
	return n, g.Name, nil
}

// Listen creates the Unix socket at path with its final owner (the
// server's euid), group (Config.Group) and mode (Config.SocketMode) before
// the name appears, so there is no moment when the socket is more widely
// reachable: it binds inside a fresh 0700 directory beside path, sets
// ownership and mode there, and renames the socket into place. A stale
// socket at path (nobody accepting) is replaced; a live one, or any other
// kind of file, is an error. Shutdown and Close remove the socket file if
// it is still the one Listen made.
func (s *Server) Listen(path string) (*net.UnixListener, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrServerClosed
	}
	l, info, err := listenSocket(path, os.Geteuid(), s.gid, s.mode)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		removeIfSame(path, info)
		return nil, ErrServerClosed
	}
	s.listeners[l] = &socketFile{path: path, info: info}
	s.log.Info("listening", "socket", path, "group", s.groupName, "gid", s.gid, "mode", fmt.Sprintf("%#o", s.mode))
	return l, nil
}

func listenSocket(path string, uid, gid int, mode os.FileMode) (*net.UnixListener, os.FileInfo, error) {
	fail := func(step string, err error) (*net.UnixListener, os.FileInfo, error) {
		return nil, nil, fmt.Errorf("broker: listen %s: %s: %w", path, step, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return fail("check existing file", fmt.Errorf("%s exists and is not a socket (mode %v)", path, fi.Mode()))
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fail("check existing socket", errors.New("another server is accepting on it"))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fail("check existing file", err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".tundra-sock-")
	if err != nil {
		return fail("private directory", err)
	}
	defer os.Remove(dir) // empty by then, or holding a socket we remove below
	tmp := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fail("bind", err)
	}
	l.SetUnlinkOnClose(false)
	undo := func() {
		l.Close()
		os.Remove(tmp)
	}
	if err := os.Lchown(tmp, uid, gid); err != nil {
		undo()
		return fail("chown", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		undo()
		return fail("chmod", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		undo()
		return fail("rename into place", err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return fail("stat", err)
	}
	return l, info, nil
}

func removeIfSame(path string, info os.FileInfo) {
	if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, info) {
		os.Remove(path)
	}
}

// ListenAndServe is Listen followed by Serve; it blocks like Serve.
func (s *Server) ListenAndServe(path string) error {
	l, err := s.Listen(path)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close, handling each on
// its own goroutine, and then returns ErrServerClosed. Other accept errors
// are returned too, except temporary ones (out of descriptors, out of
// memory, aborted connections), after which it backs off and goes on. l
// may come from Listen or elsewhere (then its socket file is not
// removed); Serve closes it when it returns.
func (s *Server) Serve(l *net.UnixListener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if _, ok := s.listeners[l]; !ok {
		s.listeners[l] = nil
	}
	s.mu.Unlock()
	defer s.closeListener(l)

	var backoff time.Duration
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if temporaryAcceptError(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, backing off", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
				}
				continue
			}
			return fmt.Errorf("broker: accept: %w", err)
		}
		backoff = 0
		s.admit(c)
	}
}

func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.ECONNABORTED, unix.EINTR, unix.EAGAIN, unix.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) closeListener(l *net.UnixListener) {
	s.mu.Lock()
	sf, ok := s.listeners[l]
	delete(s.listeners, l)
	s.mu.Unlock()
	if ok {
		l.Close()
		if sf != nil {
			removeIfSame(sf.path, sf.info)
		}
	}
}

// Shutdown stops accepting, removes the socket files Listen created, and
// waits for the connections in progress to finish. When ctx ends first it
// closes them and cancels their creations, waits for their goroutines, and
// returns ctx's error. Serve then returns ErrServerClosed. Later calls are
// harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	ls := make([]*net.UnixListener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		s.closeListener(l)
	}

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.cancel()
	if s.keepDone != nil {
		<-s.keepDone // it stops within keepPoll of the cancel
	}
	s.refusals.close()
	s.mu.Lock()
	closeInv := s.closeInv
	s.closeInv = nil
	s.mu.Unlock()
	if closeInv != nil {
		closeInv()
	}
	return err
}

// Close is Shutdown without waiting: connections in progress are closed at
// once.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Shutdown(ctx)
	return nil
}

// peer is what the kernel says about the other end of a connection, as of
// its connect(2).
type peer struct {
	uid, gid uint32
	pid      int32
	groups   []uint32
}

// audit collects what one connection asked and what was done, logged as
// one record when the connection is finished.
type audit struct {
	conn    uint64
	peer    peer
	credOK  bool
	request string
	proto   string // "tundra" for Tundra's client protocol (tundraserve.go), "" for ours
	result  string // created, refused, failed, dropped
	status  Status
	reason  string
	device  string
	index   int
	queues  int
	start   time.Time
}

func (s *Server) logAudit(a *audit) {
	if a.result == "refused" && !s.refusals.allow(refusalKey{uid: a.peer.uid, hasUID: a.credOK, status: a.status}, a.reason) {
		return // counted into a summary
	}
	attrs := []slog.Attr{
		slog.Uint64("conn", a.conn),
	}
	if a.credOK {
		attrs = append(attrs,
			slog.Uint64("uid", uint64(a.peer.uid)),
			slog.Uint64("gid", uint64(a.peer.gid)),
			slog.Int64("pid", int64(a.peer.pid)),
			slog.String("groups", formatGroups(a.peer.groups)))
	}
	if a.proto != "" {
		attrs = append(attrs, slog.String("proto", a.proto))
	}
	if a.request != "" {
		attrs = append(attrs, slog.String("request", a.request))
	}
	attrs = append(attrs, slog.String("result", a.result), slog.String("status", a.status.String()))
	if a.reason != "" {
		attrs = append(attrs, slog.String("reason", a.reason))
	}
	if a.device != "" {
		attrs = append(attrs, slog.String("device", a.device), slog.Int("index", a.index), slog.Int("queues", a.queues))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(a.start)))
	level := slog.LevelInfo
	if a.result != "created" {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(context.Background(), level, "audit", attrs...)
}

// logRefusalSummary writes the line that stands for the refusals the
// limiter held back.
func (s *Server) logRefusalSummary(k refusalKey, n int, last string, window time.Duration) {
	who := "an unidentified peer"
	if k.hasUID {
		who = fmt.Sprintf("uid %d", k.uid)
	}
	attrs := []slog.Attr{slog.String("summary", fmt.Sprintf("%d more refused (%s) from %s in the last %v", n, k.status, who, window))}
	if k.hasUID {
		attrs = append(attrs, slog.Uint64("uid", uint64(k.uid)))
	}
	attrs = append(attrs, slog.String("status", k.status.String()), slog.Int("count", n), slog.String("last_reason", last))
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "refusals summarised", attrs...)
}

// admit runs on the accept loop. It never blocks on the client: the
// credential lookup is a getsockopt, and a refusal is one non-blocking
// write.
func (s *Server) admit(c *net.UnixConn) {
	a := &audit{conn: s.connSeq.Add(1), start: time.Now()}
	p, err := peerCredentials(c)
	if err != nil {
		s.reject(c, a, StatusUnauthorized, "cannot read peer credentials: "+err.Error())
		return
	}
	a.peer, a.credOK = p, true
	if why := s.authorize(p); why != "" {
		s.reject(c, a, StatusUnauthorized, why)
		return
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		s.reject(c, a, StatusBusy, "server is shutting down")
		return
	case s.total >= s.maxConns:
		s.mu.Unlock()
		s.reject(c, a, StatusBusy, fmt.Sprintf("server is handling its limit of %d connections; retry later", s.maxConns))
		return
	case s.perUID[p.uid] >= s.maxPerUID:
		s.mu.Unlock()
		s.reject(c, a, StatusBusy, fmt.Sprintf("uid %d already has %d connections in progress (the limit); retry later", p.uid, s.maxPerUID))
		return
	}
	s.total++
	s.perUID[p.uid]++
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.handle(c, a)
}

// authorize returns "" when p may use the broker, or why not.
func (s *Server) authorize(p peer) string {
	if p.uid == 0 || p.gid == uint32(s.gid) || slices.Contains(p.groups, uint32(s.gid)) {
		return ""
	}
	return fmt.Sprintf("uid %d is neither root nor a member of group %s (gid %d): its gid is %d and its supplementary groups are %s",
		p.uid, s.groupName, s.gid, p.gid, formatGroups(p.groups))
}

// formatGroups prints a group list like fmt's %v, cut after 16 entries.
func formatGroups(g []uint32) string {
	const show = 16
	if len(g) <= show {
		return fmt.Sprint(g)
	}
	s := fmt.Sprint(g[:show])
	return fmt.Sprintf("%s... (%d in all)]", s[:len(s)-1], len(g))
}

// reject answers with one non-blocking write and closes c.
func (s *Server) reject(c *net.UnixConn, a *audit, st Status, why string) {
	tryReply(c, st, why)
	c.Close()
	a.result, a.status, a.reason = "refused", st, why
	s.logAudit(a)
}

// tryReply writes a failure response if it fits in the socket buffer right
// now, and gives up otherwise.
func tryReply(c *net.UnixConn, st Status, msg string) {
	frame, err := marshalResponse(response{Status: st, Message: msg})
	if err != nil {
		return
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Write(func(fd uintptr) bool {
		unix.Write(int(fd), frame) // the socket is non-blocking
		return true
	})
}

// errFDsSent is the read error for a client that attached descriptors.
var errFDsSent = errors.New("the client sent file descriptors, which the server does not accept")

// readFull reads exactly len(b) bytes. It passes no control buffer to
// recvmsg, so descriptors a client attaches are never installed in this
// process (the kernel drops them and sets MSG_CTRUNC, which ends the
// read with errFDsSent).
func readFull(c *net.UnixConn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, _, flags, _, err := c.ReadMsgUnix(b[n:], nil)
		if m < 0 { // the syscall's -1 on error passes through
			m = 0
		}
		n += m
		if flags&unix.MSG_CTRUNC != 0 {
			return n, errFDsSent
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

// handle serves one admitted connection: one request, one response.
func (s *Server) handle(c *net.UnixConn, a *audit) {
	defer func() {
		if r := recover(); r != nil {
			a.result, a.status, a.reason = "failed", StatusFailed, "internal error"
			s.log.Error("panic while handling a connection", "conn", a.conn, "panic", r, "stack", string(debug.Stack()))
			if a.proto != protoTundra { // Tundra's protocol has no error reply: closing says no
				tryReply(c, StatusFailed, "internal server error")
			}
		}
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.total--
		if s.perUID[a.peer.uid]--; s.perUID[a.peer.uid] <= 0 {
			delete(s.perUID, a.peer.uid)
		}
		s.mu.Unlock()
		s.logAudit(a)
		s.wg.Done()
	}()
	s.serve(c, a)
}

func (s *Server) serve(c *net.UnixConn, a *audit) {
	refuse := func(st Status, why string) {
		a.result, a.status, a.reason = "refused", st, why
		s.reply(c, a, response{Status: st, Message: why}, nil)
	}
	drop := func(why string) {
		a.result, a.status, a.reason = "dropped", StatusBadRequest, why
		tryReply(c, StatusBadRequest, why)
	}

	c.SetReadDeadline(a.start.Add(s.timeout))
	var buf [MaxFrameSize]byte
	n, err := readFull(c, buf[:headerLen])
	if isTundraStart(buf[:n]) { // Tundra's client protocol: tundraserve.go
		s.serveTundra(c, a, buf[:n], err)
		return
	}
	if err != nil {
		drop(readProblem("header", n, headerLen, err, s.timeout))
		return
	}
	h, err := parseHeader(buf[:headerLen])
	if err != nil {
		if errors.Is(err, errVersion) {
			refuse(StatusBadVersion, fmt.Sprintf("protocol version %d is not supported; this server speaks version %d", h.Version, ProtocolVersion))
		} else {
			refuse(StatusBadRequest, err.Error())
		}
		return
	}
	if h.Type != typeCreateRequest {
		refuse(StatusBadRequest, fmt.Sprintf("frame type %d is not a create request (%d)", h.Type, typeCreateRequest))
		return
	}
	n, err = readFull(c, buf[headerLen:headerLen+h.BodyLen])
	if err != nil {
		drop(readProblem("body", n, h.BodyLen, err, s.timeout))
		return
	}
	r, err := unmarshalRequest(buf[:headerLen+h.BodyLen])
	if err != nil {
		refuse(StatusBadRequest, err.Error())
		return
	}
	s.grant(c, a, r)
}

// grant applies to a decoded request, whichever protocol it came in, the
// checks every request gets (validity, policy, quota), creates the device
// and replies (through reply, which speaks the connection's protocol).
func (s *Server) grant(c *net.UnixConn, a *audit, r Request) {
	refuse := func(st Status, why string) {
		a.result, a.status, a.reason = "refused", st, why
		s.reply(c, a, response{Status: st, Message: why}, nil)
	}
	a.request = r.String()
	if err := r.Validate(); err != nil {
		refuse(StatusBadRequest, err.Error())
		return
	}

	root := a.peer.uid == 0
	if !root {
		// The rules that need no host state first, so a member over
		// quota still learns what else is wrong.
		if err := s.policy.Check(r, nil); err != nil {
			refuse(StatusDenied, err.Error())
			return
		}
	}
	limit := -1
	if !root {
		limit = s.policy.MaxDevicesPerUID
	}
	res, err := s.devices.reserve(a.peer.uid, limit, r.Addr, s.inv)
	if err != nil {
		if errors.Is(err, errReserve) {
			refuse(StatusDenied, err.Error())
		} else {
			refuse(StatusFailed, err.Error())
		}
		return
	}
	// Every refusal from here on releases the reservation before replying:
	// a client that sends its next request as soon as it reads the answer
	// must not find this one still claiming its prefix.
	defer s.devices.release(res) // no-op after commit or release
	if !root {
		host, err := s.inv.HostAddrs()
		if err != nil {
			s.devices.release(res)
			refuse(StatusFailed, "cannot list the host's addresses: "+err.Error())
			return
		}
		if err := s.policy.Check(r, host); err != nil {
			s.devices.release(res)
			refuse(StatusDenied, err.Error())
			return
		}
		routes, err := s.inv.HostRoutes()
		if err != nil {
			s.devices.release(res)
			refuse(StatusFailed, "cannot list the host's routes: "+err.Error())
			return
		}
		if err := s.policy.CheckRoutes(r, routes); err != nil {
			s.devices.release(res)
			refuse(StatusDenied, err.Error())
			return
		}
	}

	ctx, cancel := context.WithTimeout(WithRequesterUID(s.ctx, a.peer.uid), s.createTimeout)
	created, err := s.create(ctx, r)
	cancel()
	if err == nil && (len(created.Fds) == 0 || len(created.Fds) > MaxQueues || created.Index <= 0 || created.Name == "" || len(created.Name) > MaxNameLen) {
		created.Close()
		err = fmt.Errorf("the creator returned %d descriptors for %q (index %d)", len(created.Fds), created.Name, created.Index)
	}
	if err == nil {
		if err = s.claim(created, a.peer.uid); err != nil {
			created.Close() // the device goes with its last descriptor
		}
	}
	if err != nil {
		s.devices.release(res)
		var errno syscall.Errno
		errors.As(err, &errno)
		a.result, a.status, a.reason = "failed", StatusFailed, err.Error()
		s.reply(c, a, response{Status: StatusFailed, Message: err.Error(), Errno: uint32(errno)}, nil)
		return
	}
	// The server keeps no copy: whatever happens to the reply, these fds
	// are closed here, and the device lives as long as the client's.
	defer created.Close()
	s.devices.commit(res, created.Index, created.Name)
	a.device, a.index, a.queues = created.Name, created.Index, len(created.Fds)
	if err := s.reply(c, a, response{Status: StatusOK, Name: created.Name, Index: created.Index, Fds: len(created.Fds)}, created.Fds); err != nil {
		a.result, a.status, a.reason = "failed", StatusFailed, "device created but not delivered, so released: "+err.Error()
		return
	}
	a.result, a.status = "created", StatusOK
}

// readProblem explains a failed read of part of a request.
func readProblem(part string, got, want int, err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, errFDsSent):
		return err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("no complete request within %v (read %d of %d %s bytes)", timeout, got, want, part)
	case errors.Is(err, net.ErrClosed):
		return fmt.Sprintf("the server closed the connection while shutting down (read %d of %d %s bytes)", got, want, part)
	case errors.Is(err, io.EOF) && part == "header" && got == 0:
		return "the client closed the connection without sending a request"
	case errors.Is(err, io.EOF):
		return fmt.Sprintf("truncated frame: the client closed after %d of %d %s bytes", got, want, part)
	}
	return fmt.Sprintf("reading the request %s: %v", part, bareNetError(err))
}

// reply writes a response, with fds attached when there are any, within
// the write timeout. It returns the write error (also recorded in a when
// the reply was a refusal).
func (s *Server) reply(c *net.UnixConn, a *audit, r response, fds []int) error {
	if a.proto == protoTundra {
		return s.replyTundra(c, r, fds)
	}
	frame, err := marshalResponse(r)
	if err != nil {
		// Cannot happen for the responses built here; never send
		// descriptors with a frame that does not announce them.
		return fmt.Errorf("encoding the response: %w", err)
	}
	c.SetWriteDeadline(time.Now().Add(s.timeout))
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := c.WriteMsgUnix(frame, oob, nil)
	if err == nil && n < len(frame) {
		// A stream socket may take part of the frame; the descriptors
		// went with the first byte.
		_, err = c.Write(frame[n:])
	}
	err = bareNetError(err)
	if err != nil && a.result == "refused" {
		a.reason += " (the reply could not be written: " + err.Error() + ")"
	}
	return err
}

// bareNetError strips a *net.OpError down to its cause: its addresses are
// the listener's temporary bind path, which only confuses a log reader.
func bareNetError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
