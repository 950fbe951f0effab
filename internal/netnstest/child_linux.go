package netnstest

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HelperBinary copies the running test binary into a fresh directory that
// other users can read and execute (go test builds it under a 0700
// directory), so a child process with another uid can run it. The copy is
// removed when the test ends.
func HelperBinary(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tundra-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, filepath.Base(os.Args[0]))
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Child describes a test helper to run as another user: the test binary
// bin re-executed to run only the test function Run, with Env added.
type Child struct {
	Bin    string   // from HelperBinary
	Run    string   // the helper test's name, e.g. "TestHelperCreate"
	Env    []string // KEY=VALUE pairs the helper reads
	Uid    uint32
	Gid    uint32
	Groups []uint32 // supplementary groups; nil means none
	// Caps are ambient capabilities to keep (for example CAP_DAC_OVERRIDE
	// to open a 0600 /dev/net/tun without gaining CAP_NET_ADMIN).
	Caps []uintptr
}

// RunIn starts the child inside ns (so it is born in the namespace), waits
// for it (at most a minute), and returns the line it printed that starts
// with "RESULT ". The test fails if the child fails or prints none.
func (c Child) RunIn(t testing.TB, ns *Namespace) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, "-test.run=^"+c.Run+"$", "-test.count=1")
	cmd.Dir = filepath.Dir(c.Bin)
	cmd.Env = append(os.Environ(), c.Env...)
	groups := c.Groups
	if groups == nil {
		groups = []uint32{}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: c.Uid, Gid: c.Gid, Groups: groups},
		AmbientCaps: c.Caps,
		// No Pdeathsig: it fires when the parent *thread* exits, and the
		// thread that starts the child inside the namespace exits at once.
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := ns.Start(cmd); err != nil {
		t.Fatalf("start %s as %d:%d: %v", c.Run, c.Uid, c.Gid, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s as %d:%d: %v\n%s", c.Run, c.Uid, c.Gid, err, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "RESULT ") {
			t.Logf("%s as uid %d gid %d: %s", c.Run, c.Uid, c.Gid, line)
			return line
		}
	}
	t.Fatalf("%s as %d:%d printed no RESULT line:\n%s", c.Run, c.Uid, c.Gid, out.String())
	return ""
}
