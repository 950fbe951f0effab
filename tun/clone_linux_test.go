package tun_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// Config.CloneDevice is the node Open and AddQueue open: a copy of the
// clone device (char 10,200) at another path works, and a missing path is
// named in the error instead of /dev/net/tun.
func TestCloneDevice(t *testing.T) {
	ns := netnstest.New(t)
	node := filepath.Join(t.TempDir(), "tun")
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(10, 200))); err != nil {
		t.Fatalf("mknod %s: %v", node, err)
	}
	dev := open(t, ns, tun.Config{Name: "clone0", MultiQueue: true, CloneDevice: node})
	addQueue(t, ns, dev)
	if d := showLink(t, ns, "clone0"); d.LinkInfo.Data.NumQueues == nil || *d.LinkInfo.Data.NumQueues != 2 {
		t.Errorf("ip -d link: numqueues %v, want 2 (both opened through %s)", d.LinkInfo.Data.NumQueues, node)
	}

	missing := filepath.Join(t.TempDir(), "nosuch")
	_, err := openErr(ns, tun.Config{Name: "clone1", CloneDevice: missing})
	var oe *tun.OpError
	if !errors.As(err, &oe) || !errors.Is(err, unix.ENOENT) || !strings.Contains(oe.Op, missing) {
		t.Errorf("Open through %s: %v; want an *OpError naming the path, wrapping ENOENT", missing, err)
	}
	requireGone(t, ns, "clone1")

	// A path that is not the clone device: TUNSETIFF fails, nothing made.
	notTun := filepath.Join(t.TempDir(), "null")
	if err := unix.Mknod(notTun, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if _, err := openErr(ns, tun.Config{Name: "clone2", CloneDevice: notTun}); err == nil {
		t.Errorf("Open through /dev/null's twin succeeded")
	}
	requireGone(t, ns, "clone2")
}
