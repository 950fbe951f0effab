package netns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func privileged(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("TUNDRA_REQUIRE_PRIV") == "1" {
			t.Fatal("TUNDRA_REQUIRE_PRIV=1 but not root")
		}
		t.Skip("skipped: needs CAP_NET_ADMIN (run as root)")
	}
}

// newNamespace is New for a privileged test, closed when the test ends.
func newNamespace(t *testing.T) *Namespace {
	t.Helper()
	privileged(t)
	ns, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// A spawned child lives in the namespace, and survives the thread that
// asked for it (the parent-death signal follows the spawner thread).
func TestSpawnInNamespace(t *testing.T) {
	ns := newNamespace(t)
	if out, err := ns.Output("ip", "tuntap", "add", "dev", "spawn0", "mode", "tun"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cmd := exec.Command("sh", "-c", "sleep 0.3; ip -o link show")
	var out strings.Builder
	cmd.Stdout = &out
	if err := ns.Spawn(cmd); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // Do's threads come and go meanwhile
	ns.Do(func() error { return nil })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v (killed early?)", err)
	}
	if !strings.Contains(out.String(), "spawn0") {
		t.Errorf("child not in the namespace: %s", out.String())
	}
	host, _ := exec.Command("ip", "-o", "link", "show").Output()
	if strings.Contains(string(host), "spawn0") {
		t.Error("device visible on the host")
	}
	// The spawner went back home: a child spawned in a second namespace
	// does not see the first one's device.
	ns2 := newNamespace(t)
	cmd = exec.Command("ip", "-o", "link", "show")
	out.Reset()
	cmd.Stdout = &out
	if err := ns2.Spawn(cmd); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if strings.Contains(out.String(), "spawn0") {
		t.Error("second namespace sees the first one's device")
	}
}

func TestWriteSysctl(t *testing.T) {
	ns := newNamespace(t)
	if err := ns.WriteSysctl("net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	out, err := ns.Output("cat", "/proc/sys/net/ipv4/ip_forward")
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("inside: %q, %v", out, err)
	}
	if host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(host)) == "1" {
		t.Log("host forwards too (set before this test)")
	}
	if err := ns.WriteSysctl("net/ipv4/no_such", "1"); err == nil {
		t.Error("unknown sysctl accepted")
	}
}

func TestTCPListening(t *testing.T) {
	ns := newNamespace(t)
	// The host's own listeners must not count: the same port is taken
	// on the host's loopback for the whole test.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	port := host.Addr().(*net.TCPAddr).Port
	if up, err := ns.TCPListening(port); err != nil || up {
		t.Fatalf("before listening inside: %v, %v; want false (the host's listener is not inside)", up, err)
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		var ln net.Listener
		if err := ns.Do(func() (err error) {
			ln, err = net.Listen(network, fmt.Sprintf(":%d", port))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		up, err := ns.TCPListening(port)
		if err != nil || !up {
			t.Errorf("%s listener inside: %v, %v; want true", network, up, err)
		}
		if up, _ := ns.TCPListening(port + 1); up {
			t.Errorf("%s: port %d reported listening", network, port+1)
		}
		ln.Close()
		if up, err := ns.TCPListening(port); err != nil || up {
			t.Errorf("%s listener closed: %v, %v; want false", network, up, err)
		}
	}
}
