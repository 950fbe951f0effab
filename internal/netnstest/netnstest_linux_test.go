package netnstest

import (
	"os/exec"
	"strings"
	"testing"
)

// The namespace must be private: a link made inside it is seen by ip
// inside, never on the host, and a child process started inside is born in it.
func TestNamespaceIsPrivate(t *testing.T) {
	ns := New(t)
	if out, err := ns.Output("ip", "tuntap", "add", "dev", "nstest0", "mode", "tun"); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	if _, err := ns.LinkByName("nstest0"); err != nil {
		t.Fatalf("link not visible inside the namespace: %v", err)
	}
	host, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip on host: %v", err)
	}
	if strings.Contains(string(host), "nstest0") {
		t.Fatalf("link leaked onto the host: %s", host)
	}
	links, err := ns.Links()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 { // lo and nstest0
		t.Fatalf("namespace has %d links, want 2 (lo, nstest0): %+v", len(links), links)
	}
	lo, err := ns.LinkByName("lo")
	if err != nil || !lo.HasFlag("UP") {
		t.Fatalf("lo not up in namespace: %+v, %v", lo, err)
	}
}
