package broker_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/internal/netnstest"
)

// asStranger is a uid in no group of the broker's: it cannot use the
// broker and has no business with a member's device.
var asStranger = cred{65534, 65534, nil}

// tunDetail is what `ip -j -d link show` says about a TUN device.
type tunDetail struct {
	Name     string `json:"ifname"`
	Alias    string `json:"ifalias"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			Persist bool `json:"persist"`
			User    any  `json:"user"`
			Group   any  `json:"group"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

// tunDetails returns the namespace's links, by name, as ip -d sees them.
func tunDetails(t testing.TB, ns *netnstest.Namespace) map[string]tunDetail {
	t.Helper()
	var ls []tunDetail
	if err := ns.IPJSON(&ls, "-d", "link", "show"); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]tunDetail, len(ls))
	for _, l := range ls {
		m[l.Name] = l
	}
	return m
}

// cloneNode makes a character device node for /dev/net/tun (10, 200) with
// mode 0666 in a directory every uid can search, as a host whose clone
// device anybody may open.
func cloneNode(t *testing.T) string {
	t.Helper()
	p := filepath.Join(testDir(t), "tun")
	if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
		t.Fatalf("mknod %s: %v", p, err)
	}
	if err := os.Chmod(p, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// waitGone waits up to within for the link to disappear, as ip -j link
// sees it, and returns how long it took.
func waitGone(t testing.TB, ns *netnstest.Namespace, name string, within time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	for {
		if _, err := ns.LinkByName(name); err != nil {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A brokered device belongs to its member from birth (TUNSETOWNER) and
// carries the server's mark: a stranger who can open the clone device
// cannot attach to it, single- or multi-queue, although nobody tampered
// with anything.
func TestOwnedAtBirth(t *testing.T) {
	ts := startServer(t, nil)
	clone := cloneNode(t)
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d queues", queues), func(t *testing.T) {
			req := broker.Request{Addr: pfx(fmt.Sprintf("fd00:b%d::1/64", queues)), Queues: queues}
			m := ts.startChild(t, asMember, "create", jsonEnv(t, "TUNDRA_REQUEST", req))
			r := m.next(t)
			if r.Err != "" {
				t.Fatalf("member refused: %+v", r)
			}
			d := tunDetails(t, ts.ns)[r.Name]
			if fmt.Sprint(d.LinkInfo.Data.User) != fmt.Sprint(memberUID) || d.LinkInfo.Data.Group != nil || d.LinkInfo.Data.Persist {
				t.Errorf("ip -d link: %s has user %v, group %v, persist %v; want user %d, no group, not persistent",
					r.Name, d.LinkInfo.Data.User, d.LinkInfo.Data.Group, d.LinkInfo.Data.Persist, memberUID)
			}
			if want := fmt.Sprintf("tundra-broker uid=%d", memberUID); d.Alias != want {
				t.Errorf("ip -d link: %s has alias %q, want %q", r.Name, d.Alias, want)
			}
			s := ts.startChild(t, asStranger, "stranger", "TUNDRA_CLONE="+clone, "TUNDRA_NAME="+r.Name, fmt.Sprintf("TUNDRA_MQ=%s", map[bool]string{true: "1"}[queues > 1]))
			if sr := s.next(t); sr.Errno != int(unix.EPERM) {
				t.Errorf("stranger's TUNSETIFF on %s: %+v, want EPERM", r.Name, sr)
			}
			s.stop(10 * time.Second)
			m.stop(10 * time.Second)
			ts.waitLinks(t)
		})
	}
}

// A member that makes its device persistent or gives it another owner or
// group finds the device deleted (in milliseconds: the keeper acts on the
// link event; the test allows 10 s, for a loaded machine), whether it tampers and
// keeps its descriptor, tampers and closes it right after, or (with two
// queues) closes one descriptor and tampers through the other; the log
// names the uid. Afterwards a stranger cannot attach to (nor create) the
// name.
func TestReapTampered(t *testing.T) {
	ts := startServer(t, nil)
	clone := cloneNode(t)
	tampers := []struct{ env, log string }{
		{"persist", "made persistent"},
		{fmt.Sprintf("owner=%d", asStranger.uid), fmt.Sprintf("owner changed to %d", asStranger.uid)},
		{fmt.Sprintf("group=%d", asStranger.gid), fmt.Sprintf("group set to %d", asStranger.gid)},
	}
	n := 0
	for _, tp := range tampers {
		for _, when := range []string{"fd kept", "fd closed after", "other queue closed before"} {
			n++
			name := tp.env + ", " + when
			closeFD := when == "fd closed after"
			t.Run(name, func(t *testing.T) {
				req := broker.Request{Addr: pfx(fmt.Sprintf("fd00:c%d::1/64", n)), Name: fmt.Sprintf("tunr%d", n)}
				env := []string{jsonEnv(t, "TUNDRA_REQUEST", req), "TUNDRA_TAMPER=" + tp.env}
				if closeFD {
					env = append(env, "TUNDRA_CLOSE=1")
				}
				if when == "other queue closed before" {
					req.Queues = 2
					env = []string{jsonEnv(t, "TUNDRA_REQUEST", req), "TUNDRA_TAMPER=" + tp.env, "TUNDRA_CLOSE_FIRST=1"}
				}
				m := ts.startChild(t, asMember, "tamper", env...)
				if r := m.next(t); r.Err != "" {
					t.Fatalf("member refused: %+v", r)
				}
				if r := m.next(t); r.Event != "tampered" || r.Err != "" {
					t.Fatalf("tampering: %+v", r)
				}
				took, gone := waitGone(t, ts.ns, req.Name, 10*time.Second)
				t.Logf("%s: device gone after %v", name, took.Round(time.Millisecond))
				if !gone {
					t.Errorf("%s still exists %v after the tampering: %+v", req.Name, took.Round(time.Millisecond), tunDetails(t, ts.ns)[req.Name])
				}
				if !closeFD || tp.env == "persist" {
					// The kernel would not have removed it: the keeper did.
					ts.log.waitRecord(t, func(m map[string]string) bool {
						return m["msg"] == "reaped a brokered device" && m["device"] == req.Name &&
							m["uid"] == fmt.Sprint(memberUID) && strings.Contains(m["tampering"], tp.log)
					})
				}
				s := ts.startChild(t, asStranger, "stranger", "TUNDRA_CLONE="+clone, "TUNDRA_NAME="+req.Name)
				if sr := s.next(t); sr.Errno != int(unix.EPERM) {
					t.Errorf("stranger's TUNSETIFF on %s after the reap: %+v, want EPERM", req.Name, sr)
				}
				s.stop(10 * time.Second)
				m.stop(10 * time.Second)
				ts.waitLinks(t)
			})
		}
	}
}

// A restarted server finds the devices the first one made: those still
// held count against the member's quota, a marked one left persistent is
// deleted, and a persistent device it did not mark is left alone.
func TestRestartKeepsOwnership(t *testing.T) {
	ns := netnstest.New(t)
	quota := func(c *broker.Config) { c.Policy.MaxDevicesPerUID = 2 }
	ts := startServerIn(t, ns, quota)
	reqs := []broker.Request{{Addr: pfx("fd00:d1::1/64")}, {Addr: pfx("fd00:d2::1/64")}}
	m := ts.startChild(t, asMember, "batch", jsonEnv(t, "TUNDRA_BATCH", reqs))
	var held []string
	for range reqs {
		r := m.next(t)
		if r.Err != "" {
			t.Fatalf("member refused: %+v", r)
		}
		held = append(held, r.Name)
	}
	ts.stop()

	// What a server killed during a tampering leaves, and a device of
	// someone else's.
	t.Cleanup(func() {
		ns.Output("ip", "link", "del", "tunorphan")
		ns.Output("ip", "link", "del", "tunmine")
	})
	for _, args := range [][]string{
		{"tuntap", "add", "dev", "tunorphan", "mode", "tun", "user", fmt.Sprint(memberUID)},
		{"link", "set", "tunorphan", "alias", broker.Mark(memberUID)},
		{"tuntap", "add", "dev", "tunmine", "mode", "tun"},
		{"link", "set", "tunmine", "alias", "tundra-broker uid=x"},
	} {
		if out, err := ns.Output("ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}

	ts2 := startServerIn(t, ns, quota)
	ts2.waitLinks(t, append(held, "tunmine")...)
	ts2.log.waitRecord(t, func(m map[string]string) bool {
		return m["msg"] == "reaped a brokered device" && m["device"] == "tunorphan" && m["uid"] == fmt.Sprint(memberUID) && m["when"] == "found at start"
	})
	c := ts2.startChild(t, asMember, "create", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:d3::1/64")}))
	want := fmt.Sprintf("devices: uid %d holds 2 devices (%s), the limit is 2", memberUID, strings.Join(held, ", "))
	if r := c.next(t); r.Status != "denied by policy" || r.Message != want {
		t.Errorf("third device after the restart: %+v, want %q", r, want)
	}
	c.stop(10 * time.Second)

	m.stop(10 * time.Second)
	ts2.waitLinks(t, "tunmine")
	c = ts2.startChild(t, asMember, "exit", jsonEnv(t, "TUNDRA_REQUEST", broker.Request{Addr: pfx("fd00:d4::1/64")}))
	if r := c.next(t); r.Err != "" {
		t.Errorf("once the devices are gone: %+v", r)
	}
	c.stop(10 * time.Second)
	ts2.waitLinks(t, "tunmine")
}

// Credentials a client attaches (SCM_CREDENTIALS) are ignored, as
// PROTOCOL.md says: the request is served as without them, and the
// audit's identity is SO_PEERCRED's.
func TestCredentialsIgnored(t *testing.T) {
	ts := startServer(t, nil)
	conn, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(10 * time.Second))
	oob := unix.UnixCredentials(&unix.Ucred{Pid: int32(os.Getpid()), Uid: 0, Gid: 0})
	req := frame(1, 1, attr(1, append(pfx("fd00:f::1/128").Addr().AsSlice(), 64)))
	if _, _, err := uc.WriteMsgUnix(req, oob, nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, broker.MaxFrameSize)
	rights := make([]byte, unix.CmsgSpace(4*broker.MaxQueues))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, rights)
	if err != nil {
		t.Fatal(err)
	}
	r := parseResponse(buf[:n])
	if r.Status != "ok" {
		t.Fatalf("request with credentials attached: %+v, want ok", r)
	}
	msgs, err := unix.ParseSocketControlMessage(rights[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v, %v", fds, err)
	}
	unix.Close(fds[0])
	a := ts.log.waitAudits(t, 1)[0]
	if a["result"] != "created" || a["uid"] != "0" || a["pid"] != fmt.Sprint(os.Getpid()) {
		t.Errorf("audit %v", a)
	}
	ts.waitLinks(t)
}

// inventoryOnly is an Inventory that cannot keep devices.
type inventoryOnly struct{}

func (inventoryOnly) HostAddrs() ([]broker.HostAddr, error)   { return nil, nil }
func (inventoryOnly) HostRoutes() ([]broker.HostRoute, error) { return nil, nil }
func (inventoryOnly) LinkExists(int) (bool, error)            { return false, nil }

// On Linux a server that could not watch its devices is refused at once.
func TestNewServerNeedsKeeper(t *testing.T) {
	_, err := broker.NewServer(broker.Config{
		Create:    func(context.Context, broker.Request) (broker.Created, error) { return broker.Created{}, nil },
		Group:     "4242",
		Inventory: inventoryOnly{},
	})
	if err == nil || !strings.Contains(err.Error(), "is not a DeviceKeeper") {
		t.Errorf("NewServer = %v, want the DeviceKeeper error", err)
	}
}
