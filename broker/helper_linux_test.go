package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/nl"
)

// The privileged tests run the Server in this process, inside a private
// network namespace, and its clients as child processes of this test
// binary (see helperMain) with other uids, gids and supplementary groups.

const helperEnv = "TUNDRA_BROKER_HELPER"

// Test identities. None needs an /etc/group entry.
const (
	tundraGID   = 4242 // the allowed group
	memberUID   = 4243 // in tundraGID as a supplementary group
	primaryUID  = 4244 // tundraGID is its primary group
	outsiderUID = 4245 // gid 4245, supplementary 4246
	wrongGIDUID = 4247 // gid 4248, supplementary 4249
	flooderUID  = 4250 // a member that floods
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	code := m.Run()
	sharedMu.Lock()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	sharedMu.Unlock()
	os.Exit(code)
}

var (
	sharedMu  sync.Mutex
	sharedDir string // world-searchable, holds exe
	sharedExe string // a copy of this test binary other uids can run
)

// shared returns a directory every uid can search and a copy of the test
// binary every uid can execute (the go build cache is private to root).
func shared(t *testing.T) (dir, exe string) {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDir != "" {
		return sharedDir, sharedExe
	}
	d, err := os.MkdirTemp("", "tundra-broker-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		os.RemoveAll(d)
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(d)
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		os.RemoveAll(d)
		t.Fatal(err)
	}
	defer in.Close()
	exe = filepath.Join(d, "broker.test")
	out, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err == nil {
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.RemoveAll(d)
		t.Fatal(err)
	}
	sharedDir, sharedExe = d, exe
	return d, exe
}

// testDir returns a fresh world-searchable directory, removed after the
// test.
func testDir(t *testing.T) string {
	t.Helper()
	base, _ := shared(t)
	d, err := os.MkdirTemp(base, "t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// recorder is a slog.Handler that keeps every record's attributes, so
// tests can wait for audit lines and look at them.
type recorder struct {
	t           testing.TB
	allowPanics atomic.Bool // a test that makes the server panic on purpose
	mu          sync.Mutex
	records     []map[string]string
	changed     chan struct{}
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, changed: make(chan struct{})}
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message, "level": rec.Level.String()}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	if strings.Contains(rec.Message, "panic") && !r.allowPanics.Load() {
		r.t.Errorf("server logged a panic: %v", m)
	}
	r.mu.Lock()
	r.records = append(r.records, m)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// all returns every record so far.
func (r *recorder) all() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.records)
}

// audits returns the audit records so far.
func (r *recorder) audits() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return onlyAudits(r.records)
}

func onlyAudits(recs []map[string]string) []map[string]string {
	var out []map[string]string
	for _, m := range recs {
		if m["msg"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}

// until waits up to 20 s for done to report true on the records so far,
// checking again after each new record; what names the wait in the
// failure.
func (r *recorder) until(t testing.TB, what string, done func(recs []map[string]string) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		ch := r.changed
		recs := slices.Clone(r.records)
		r.mu.Unlock()
		if done(recs) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; have %v", what, recs)
		}
	}
}

// waitAudits waits until there are at least n audit records and returns
// them.
func (r *recorder) waitAudits(t testing.TB, n int) []map[string]string {
	t.Helper()
	var a []map[string]string
	r.until(t, fmt.Sprintf("%d audit records", n), func(recs []map[string]string) bool {
		a = onlyAudits(recs)
		return len(a) >= n
	})
	return a
}

// waitAuditSince waits until an audit record after the first n
// satisfies match and returns it.
func (r *recorder) waitAuditSince(t testing.TB, n int, match func(map[string]string) bool) map[string]string {
	t.Helper()
	var found map[string]string
	r.until(t, fmt.Sprintf("an audit record after the first %d", n), func(recs []map[string]string) bool {
		if a := onlyAudits(recs); len(a) > n {
			i := slices.IndexFunc(a[n:], match)
			if i >= 0 {
				found = a[n+i]
			}
		}
		return found != nil
	})
	return found
}

// waitRecord waits until some record satisfies match and returns it.
func (r *recorder) waitRecord(t testing.TB, match func(map[string]string) bool) map[string]string {
	t.Helper()
	var found map[string]string
	r.until(t, "a log record", func(recs []map[string]string) bool {
		if i := slices.IndexFunc(recs, match); i >= 0 {
			found = recs[i]
		}
		return found != nil
	})
	return found
}

// testServer is a Server running in this process inside ns.
type testServer struct {
	ns   *netnstest.Namespace
	srv  *broker.Server
	path string
	dir  string
	log  *recorder
	nl   *nl.Conn

	stopOnce sync.Once
	stopFn   func()
}

// stop shuts the server down (Shutdown, Serve's return, socket removed),
// as the test's cleanup would; calling it again does nothing.
func (ts *testServer) stop() { ts.stopOnce.Do(ts.stopFn) }

// startServer starts a server in a fresh namespace with a world-reachable
// socket (mode 0666 unless mod sets another), so that the tests exercise
// the server's own authorization. mod may adjust the Config.
func startServer(t *testing.T, mod func(*broker.Config)) *testServer {
	t.Helper()
	return startServerIn(t, netnstest.New(t), mod)
}

// startServerIn is startServer in an existing namespace: a restarted
// server finds what the first one left there.
func startServerIn(t *testing.T, ns *netnstest.Namespace, mod func(*broker.Config)) *testServer {
	t.Helper()
	ts := &testServer{ns: ns, dir: testDir(t), log: newRecorder(t)}
	ts.path = filepath.Join(ts.dir, "tundra.sock")
	var w *nl.LinkWatcher
	if err := ns.Do(func() (err error) {
		if ts.nl, err = nl.Dial(); err != nil {
			return err
		}
		if w, err = nl.WatchLinks(); err != nil {
			ts.nl.Close()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); ts.nl.Close() })
	pol := broker.DefaultPolicy()
	cfg := broker.Config{
		Create: func(ctx context.Context, r broker.Request) (c broker.Created, err error) {
			err = ns.Do(func() error { c, err = tundra.BrokerCreate(ctx, r); return err })
			return c, err
		},
		Policy:     &pol,
		Group:      fmt.Sprint(tundraGID),
		SocketMode: 0o666,
		Timeout:    time.Second,
		Logger:     slog.New(ts.log),
		Inventory:  broker.NetlinkInventory(ts.nl, w),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := broker.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	l, err := srv.Listen(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	ts.stopFn = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if _, err := os.Lstat(ts.path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket %s still exists after Shutdown: %v", ts.path, err)
		}
	}
	t.Cleanup(ts.stop)
	return ts
}

// links returns the names of the namespace's links other than lo.
func (ts *testServer) links(t testing.TB) []string {
	t.Helper()
	ls, err := ts.ns.Links()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		if l.Name != "lo" {
			names = append(names, l.Name)
		}
	}
	slices.Sort(names)
	return names
}

// waitLinks waits until the namespace's links other than lo are want.
func (ts *testServer) waitLinks(t testing.TB, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := ts.links(t)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("links are %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rootCreate asks for a device from this process (root) and closes it
// again, checking that it worked and that the device then disappears.
// It is the "legitimate client" of the abuse tests.
func (ts *testServer) rootCreate(t testing.TB, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := broker.Client{Path: ts.path}
	before := len(ts.log.audits())
	start := time.Now()
	cr, err := c.Create(ctx, broker.Request{Addr: pfx(addr)})
	if err != nil {
		t.Fatalf("legitimate client not served: %v", err)
	}
	t.Logf("legitimate client served in %v: %s", time.Since(start).Round(time.Millisecond), cr.Name)
	// The server writes the audit record after the descriptor has gone
	// out, so wait for it: callers count records from here on.
	ts.log.waitAuditSince(t, before, func(a map[string]string) bool {
		return a["result"] == "created" && a["device"] == cr.Name
	})
	if l, err := ts.ns.LinkByName(cr.Name); err != nil || !l.HasFlag("UP") {
		t.Errorf("device %s: %+v, %v", cr.Name, l, err)
	}
	cr.Close()
	ts.waitLinks(t)
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }
func discard() *slog.Logger     { return slog.New(slog.DiscardHandler) }

// ---- child processes ----

// result is what a helper prints for each request, one JSON line each.
type result struct {
	Name    string `json:",omitempty"`
	Index   int    `json:",omitempty"`
	Fds     int    `json:",omitempty"`
	Op      string `json:",omitempty"`
	Status  string `json:",omitempty"`
	Message string `json:",omitempty"`
	Errno   int    `json:",omitempty"`
	Err     string `json:",omitempty"`
	Perm    bool   `json:",omitempty"`
	Event   string `json:",omitempty"` // for non-request lines
	Counts  map[string]int
}

// child is a helper process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error

	stopOnce sync.Once
	stopErr  error
}

// cred describes a child's identity.
type cred struct {
	uid, gid uint32
	groups   []uint32
}

var (
	asMember   = cred{memberUID, memberUID, []uint32{tundraGID}}
	asPrimary  = cred{primaryUID, tundraGID, nil}
	asOutsider = cred{outsiderUID, outsiderUID, []uint32{outsiderUID + 1}}
	asWrongGID = cred{wrongGIDUID, wrongGIDUID + 1, []uint32{wrongGIDUID + 2}}
	asFlooder  = cred{flooderUID, flooderUID, []uint32{tundraGID}}
)

// startChild runs the test binary as a helper in ts's namespace with the
// given identity. env adds variables. The child is stopped (stdin closed,
// then killed by PID if it lingers) when the test ends.
func (ts *testServer) startChild(t *testing.T, who cred, mode string, env ...string) *child {
	t.Helper()
	_, exe := shared(t)
	cmd := exec.Command(exe)
	cmd.Env = append([]string{helperEnv + "=" + mode, "TUNDRA_SOCKET=" + ts.path, "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// No Pdeathsig: it fires when the forking thread exits, and
		// ns.Do's thread exits right after the start.
		Credential: &syscall.Credential{Uid: who.uid, Gid: who.gid, Groups: who.groups},
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr netnstest.SyncBuffer
	cmd.Stderr = &stderr
	if err := ts.ns.Start(cmd); err != nil {
		t.Fatalf("starting helper %s: %v", mode, err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if err := c.stop(10 * time.Second); err != nil {
			t.Errorf("helper %s (uid %d): %v; stderr: %s", mode, who.uid, err, stderr.String())
		}
	})
	return c
}

// next returns the child's next result line.
func (c *child) next(t testing.TB) result {
	t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			t.Fatalf("helper exited without output: %v", <-c.done)
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("helper printed %q: %v", line, err)
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the helper")
	}
	return result{}
}

// stop closes the child's stdin, which tells it to exit, and waits; a
// child that does not exit in time is killed by PID. Calling it twice is
// harmless.
func (c *child) stop(wait time.Duration) error {
	c.stopOnce.Do(func() {
		c.stdin.Close()
		go func() {
			for range c.lines { // unblock the reader so that it can Wait
			}
		}()
		select {
		case c.stopErr = <-c.done:
		case <-time.After(wait):
			c.cmd.Process.Kill()
			c.stopErr = fmt.Errorf("did not exit within %v; killed (%v)", wait, <-c.done)
		}
	})
	return c.stopErr
}

// helperMain is the body of a helper process. Modes:
//
//	create   create TUNDRA_REQUEST, print the result, hold the device
//	         until stdin closes
//	exit     create and exit at once (the fd dies with the process)
//	close    create, close the fd, print a line, hold until stdin closes
//	reflect  create and answer ICMPv6 echo requests until stdin closes
//	batch    create each request of the JSON array, printing each result,
//	         and hold them all until stdin closes
//	raw      send TUNDRA_RAW (hex) and print the response
//	flood    open TUNDRA_FLOOD connections at once, print, then read every
//	         answer and print the statuses
//	tamper   create, then apply TUNDRA_TAMPER to the last fd (persist,
//	         owner=UID or group=GID, as ioctls), print a line, close every
//	         fd if TUNDRA_CLOSE is set (print a line), hold until stdin
//	         closes; with TUNDRA_CLOSE_FIRST, close every other fd before
//	         the tampering
//	stranger open the clone device TUNDRA_CLONE and attach with TUNSETIFF
//	         to TUNDRA_NAME (multi-queue if TUNDRA_MQ is set); print the
//	         errno (Errno 0: attached); hold until stdin closes
func helperMain(mode string) int {
	out := json.NewEncoder(os.Stdout)
	c := broker.Client{Path: os.Getenv("TUNDRA_SOCKET")}
	ctx := context.Background()
	waitStdin := func() { io.Copy(io.Discard, os.Stdin) }
	var req broker.Request
	if s := os.Getenv("TUNDRA_REQUEST"); s != "" {
		if err := json.Unmarshal([]byte(s), &req); err != nil {
			fmt.Fprintln(os.Stderr, "TUNDRA_REQUEST:", err)
			return 2
		}
	}
	switch mode {
	case "create", "exit", "close", "reflect":
		cr, err := c.Create(ctx, req)
		out.Encode(toResult(cr, err))
		if err != nil {
			waitStdin()
			return 0
		}
		switch mode {
		case "exit":
			return 0
		case "close":
			cr.Close()
			out.Encode(result{Event: "closed"})
		case "reflect":
			go reflectEcho(cr.Fds[0], false, nil)
		}
		waitStdin()
		return 0
	case "batch":
		var reqs []broker.Request
		if err := json.Unmarshal([]byte(os.Getenv("TUNDRA_BATCH")), &reqs); err != nil {
			fmt.Fprintln(os.Stderr, "TUNDRA_BATCH:", err)
			return 2
		}
		var held []broker.Created
		for _, r := range reqs {
			cr, err := c.Create(ctx, r)
			out.Encode(toResult(cr, err))
			if err == nil {
				held = append(held, cr)
			}
		}
		waitStdin()
		for i := range held {
			held[i].Close()
		}
		return 0
	case "raw":
		frame, err := hex.DecodeString(os.Getenv("TUNDRA_RAW"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "TUNDRA_RAW:", err)
			return 2
		}
		out.Encode(rawExchange(c.Path, frame, nil))
		waitStdin()
		return 0
	case "flood":
		return flood(c.Path, out)
	case "tamper":
		cr, err := c.Create(ctx, req)
		out.Encode(toResult(cr, err))
		if err != nil {
			waitStdin()
			return 0
		}
		what, arg, _ := strings.Cut(os.Getenv("TUNDRA_TAMPER"), "=")
		var n int
		fmt.Sscan(arg, &n)
		last := cr.Fds[len(cr.Fds)-1]
		if os.Getenv("TUNDRA_CLOSE_FIRST") != "" {
			for i, fd := range cr.Fds[:len(cr.Fds)-1] {
				unix.Close(fd)
				cr.Fds[i] = -1
			}
		}
		var terr error
		switch what {
		case "persist":
			terr = unix.IoctlSetInt(last, unix.TUNSETPERSIST, 1)
		case "owner":
			terr = unix.IoctlSetInt(last, unix.TUNSETOWNER, n)
		case "group":
			terr = unix.IoctlSetInt(last, unix.TUNSETGROUP, n)
		default:
			terr = fmt.Errorf("unknown tampering %q", what)
		}
		r := result{Event: "tampered"}
		if terr != nil {
			r.Err = terr.Error()
		}
		out.Encode(r)
		if os.Getenv("TUNDRA_CLOSE") != "" {
			cr.Close()
			out.Encode(result{Event: "closed"})
		}
		waitStdin()
		cr.Close()
		return 0
	case "stranger":
		out.Encode(attachAs(os.Getenv("TUNDRA_CLONE"), os.Getenv("TUNDRA_NAME"), os.Getenv("TUNDRA_MQ") != ""))
		waitStdin()
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// attachAs opens the clone device at clone and asks TUNSETIFF for the TUN
// device name, as any user may try: it attaches when the device has no
// owner or group (or they match), and creates it with CAP_NET_ADMIN.
func attachAs(clone, name string, multiQueue bool) result {
	fd, err := unix.Open(clone, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return result{Op: "open", Err: err.Error(), Errno: int(err.(unix.Errno))}
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return result{Op: "ifreq", Err: err.Error()}
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if multiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return result{Op: "TUNSETIFF", Err: err.Error(), Errno: int(err.(unix.Errno))}
	}
	return result{Op: "TUNSETIFF", Name: ifr.Name()}
}

func toResult(cr broker.Created, err error) result {
	if err != nil {
		r := result{Err: err.Error(), Perm: errors.Is(err, fs.ErrPermission)}
		var be *broker.Error
		if errors.As(err, &be) {
			r.Op, r.Message, r.Errno = be.Op, be.Message, int(be.Errno)
			if be.Err == nil {
				r.Status = be.Status.String()
			}
		}
		return r
	}
	return result{Name: cr.Name, Index: cr.Index, Fds: len(cr.Fds)}
}

// reflectEcho answers every ICMPv6 echo request read from a TUN fd with
// an echo reply, until the process exits. With pi each packet carries the
// 4-byte packet-information header (flags, then the EtherType), which
// must say IPv6 and goes back as it came: without the header the check
// fails and nothing is answered. first, if not nil, runs at the first
// request answered.
func reflectEcho(fd int, pi bool, first func()) {
	unix.SetNonblock(fd, false)
	buf := make([]byte, 65536)
	hdr := 0
	if pi {
		hdr = 4
	}
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			fmt.Fprintln(os.Stderr, "read:", err)
			return
		}
		if pi && (n < hdr+48 || binary.BigEndian.Uint16(buf[2:4]) != unix.ETH_P_IPV6) {
			continue
		}
		if !echoReply6(buf[hdr:n]) {
			continue // not an echo request without extension headers
		}
		if first != nil {
			first()
			first = nil
		}
		if _, err := unix.Write(fd, buf[:n]); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
		}
	}
}

// icmp6Checksum computes the ICMPv6 checksum of an IPv6 packet without
// extension headers (RFC 4443 section 2.3: pseudo-header plus message).
func icmp6Checksum(p []byte) uint16 {
	msg := p[40 : 40+int(binary.BigEndian.Uint16(p[4:6]))]
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(p[8:40]) // source and destination
	sum += uint32(len(msg))
	sum += 58
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// rawExchange sends frame (with rights attached when fds is not nil) and
// reads a response, reporting what came back.
func rawExchange(path string, frame []byte, rights []int) result {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return result{Err: err.Error()}
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(10 * time.Second))
	var oob []byte
	if rights != nil {
		oob = unix.UnixRights(rights...)
	}
	if _, _, err := uc.WriteMsgUnix(frame, oob, nil); err != nil {
		return readStatus(uc, "write: "+err.Error())
	}
	return readStatus(uc, "")
}

// readStatus reads one response frame from c by hand (the tests must not
// trust the package's decoder to judge the package's encoder).
func readStatus(c *net.UnixConn, prefix string) result {
	b, err := io.ReadAll(io.LimitReader(c, 2*broker.MaxFrameSize))
	r := parseResponse(b)
	if err != nil {
		r.Err = strings.TrimPrefix(prefix+"; read: "+err.Error(), "; ")
	}
	return r
}

// parseResponse extracts the status and message attributes of a response
// frame; Err says what was wrong with it.
func parseResponse(b []byte) result {
	if len(b) < 12 || string(b[:4]) != "TNDR" || b[5] != 2 {
		return result{Err: fmt.Sprintf("no response frame: % x", b)}
	}
	var r result
	body := b[12:]
	for len(body) >= 4 {
		typ, n := binary.BigEndian.Uint16(body), int(binary.BigEndian.Uint16(body[2:]))
		if 4+n > len(body) {
			return result{Err: fmt.Sprintf("truncated attribute in % x", b)}
		}
		v := body[4 : 4+n]
		switch typ {
		case 1:
			r.Status = broker.Status(binary.BigEndian.Uint16(v)).String()
		case 2:
			r.Message = string(v)
		}
		body = body[4+n:]
	}
	return r
}

// flood opens n connections at once without sending anything, reports
// that they are open, then reads every one's answer (or lack of one)
// and reports the statuses.
func flood(path string, out *json.Encoder) int {
	var n int
	fmt.Sscan(os.Getenv("TUNDRA_FLOOD"), &n)
	conns := make([]*net.UnixConn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("unix", path, 10*time.Second)
			if err != nil {
				mu.Lock()
				counts["dial error: "+err.Error()]++
				mu.Unlock()
				return
			}
			conns[i] = c.(*net.UnixConn)
		}()
	}
	wg.Wait()
	out.Encode(result{Event: "open", Counts: counts})
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			r := readStatus(c, "")
			key := r.Status
			if r.Err != "" {
				key = "no answer"
			} else if r.Status == "bad request" && strings.Contains(r.Message, "no complete request") {
				key = "dropped after the timeout"
			}
			mu.Lock()
			counts[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.Encode(result{Event: "answers", Counts: counts})
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return 0
}

// echoReply6 turns p, an ICMPv6 echo request without extension headers,
// into its reply in place (addresses swapped, type and checksum), and
// reports whether p was one.
func echoReply6(p []byte) bool {
	if len(p) < 48 || p[0]>>4 != 6 || p[6] != 58 || p[40] != 128 {
		return false
	}
	var src [16]byte
	copy(src[:], p[8:24])
	copy(p[8:24], p[24:40])
	copy(p[24:40], src[:])
	p[40] = 129 // echo reply
	binary.BigEndian.PutUint16(p[42:44], 0)
	binary.BigEndian.PutUint16(p[42:44], icmp6Checksum(p))
	return true
}

// addr returns the address local on link name, as iproute2 reports it in
// the test's namespace; the test ends if the link has none.
func (ts *testServer) addr(t testing.TB, name, local string) netnstest.AddrInfo {
	t.Helper()
	addrs, err := ts.ns.Addrs(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.Local == local {
			return a
		}
	}
	t.Fatalf("address %s missing on %s: %+v", local, name, addrs)
	return netnstest.AddrInfo{}
}

// needPing returns the path of ping, which the test needs: it fails
// without it, before anything is set up.
func needPing(t testing.TB) string {
	t.Helper()
	ping, err := exec.LookPath("ping")
	if err != nil {
		t.Fatalf("this test needs ping (apt-get install iputils-ping): %v", err)
	}
	return ping
}

// pingThrough pings dst three times with ping from the test's namespace
// and ends the test unless all three answers came.
func (ts *testServer) pingThrough(t testing.TB, ping, dst string) {
	t.Helper()
	out, err := ts.ns.Output(ping, "-6", "-n", "-c", "3", "-i", "0.2", "-W", "5", dst)
	t.Logf("ping:\n%s", out)
	if err != nil || !strings.Contains(string(out), "3 received") {
		t.Fatalf("ping through the device: %v", err)
	}
}
