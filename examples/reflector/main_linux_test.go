package main

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/internal/leakcheck"
	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/loop"
)

// startIn starts a reflector in ns that the test's cleanup closes, and
// checks then that it left no descriptor and no goroutine behind.
func startIn(t *testing.T, ns *netnstest.Namespace, name string) *reflector {
	t.Helper()
	leakcheck.Check(t)
	var r *reflector
	if err := ns.Do(func() error {
		var err error
		r, err = startReflector("fd11:b7b7:4360::2/64", "fd11:b7b7:4360::1", tundra.Name(name))
		return err
	}); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var received = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func pingCounts(t *testing.T, out []byte) (sent, got int) {
	t.Helper()
	m := received.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in ping output:\n%s", out)
	}
	sent, _ = strconv.Atoi(string(m[1]))
	got, _ = strconv.Atoi(string(m[2]))
	return sent, got
}

// Every one of 20 pings of the peer gets its reply through the reflector.
func TestPingThroughReflector(t *testing.T) {
	ns := netnstest.New(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatal("ping is not installed (Debian: iputils-ping); scripts/test installs it")
	}
	r := startIn(t, ns, "refl0")
	out, err := ns.Output("ping", "-6", "-n", "-c", "20", "-i", "0.05", "-W", "2", "fd11:b7b7:4360::1")
	t.Logf("ping:\n%s", out)
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	if sent, got := pingCounts(t, out); sent != 20 || got != 20 {
		t.Fatalf("%d sent, %d received: want 20 of 20", sent, got)
	}
	// Read on the loop, between callbacks: a write is counted after the
	// kernel has it, so ping can have its last reply before the count.
	var s loop.Stats
	if err := r.loop.Do(func() { s = r.loop.Stats() }); err != nil {
		t.Fatal(err)
	}
	if s.PacketsIn < 40 || s.PacketsOut < 40 {
		t.Errorf("loop read %d and wrote %d packets; 20 echoes take at least 40 each way", s.PacketsIn, s.PacketsOut)
	}
}

// Closing the owning loop mid-stream closes the device: ip no longer lists
// it, and ping stops getting replies.
func TestClosingTheLoopRemovesTheDevice(t *testing.T) {
	ns := netnstest.New(t)
	r := startIn(t, ns, "refl1")
	var out bytes.Buffer
	ping := exec.Command("ping", "-6", "-n", "-c", "400", "-i", "0.01", "-W", "1", "fd11:b7b7:4360::1")
	ping.Stdout, ping.Stderr = &out, &out
	if err := ns.Start(ping); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ping.Process.Kill(); ping.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for r.loop.Stats().PacketsOut < 20 {
		if time.Now().After(deadline) {
			t.Fatal("no traffic through the reflector")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := ns.LinkByName("refl1"); err != nil {
		t.Fatalf("device missing mid-stream: %v", err)
	}
	if err := r.loop.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err := ns.LinkByName("refl1"); !errors.Is(err, netnstest.ErrNoLink) {
		t.Fatalf("device still there after its loop closed: %+v, %v", l, err)
	}
	ping.Wait()
	sent, got := pingCounts(t, out.Bytes())
	t.Logf("ping: %d sent, %d received before and after the loop closed", sent, got)
	if got == 0 || got >= sent {
		t.Errorf("%d of %d received: want some replies, then none", got, sent)
	}
}
