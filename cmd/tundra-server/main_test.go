//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/internal/netnstest"
)

// The test binary doubles as the server: with this variable set it runs
// main, so the tests exercise the command exactly as installed.
const serverEnv = "TUNDRA_TEST_RUN_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(serverEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The command serves in its namespace, with the socket's final mode and
// group, enforces the policy file, and on SIGTERM or SIGINT removes its
// socket and exits 0.
func TestServeAndShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ns := netnstest.New(t)
			dir := t.TempDir()
			sock := filepath.Join(dir, "tundra.sock")
			policy := filepath.Join(dir, "policy.json")
			if err := os.WriteFile(policy, []byte(`{"allowed_prefixes": ["fd00:7::/48"], "max_devices_per_uid": 1}`), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-socket", sock, "-group", "4242", "-policy", policy, "-log", "json", "-timeout", "2s")
			cmd.Env = append(os.Environ(), serverEnv+"=1")
			var stderr netnstest.SyncBuffer
			cmd.Stderr = &stderr
			if err := ns.Start(cmd); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					cmd.Process.Kill()
					<-exited
				}
			})

			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, err := os.Lstat(sock); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("socket never appeared; stderr: %s", stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			fi, _ := os.Lstat(sock)
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode() != os.ModeSocket|0o660 || st.Gid != 4242 || st.Uid != 0 {
				t.Errorf("socket is %v %d:%d, want srw-rw---- 0:4242", fi.Mode(), st.Uid, st.Gid)
			}

			c := broker.Client{Path: sock}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cr, err := c.Create(ctx, broker.Request{Addr: netip.MustParsePrefix("10.9.0.1/24"), Name: "srv0"})
			if err != nil {
				t.Fatalf("Create: %v; stderr: %s", err, stderr.String())
			}
			if l, err := ns.LinkByName("srv0"); err != nil || !l.HasFlag("UP") {
				t.Errorf("srv0 in the server's namespace: %+v, %v", l, err)
			}
			if host, err := exec.Command("ip", "-o", "link", "show", "srv0").CombinedOutput(); err == nil {
				t.Errorf("srv0 appeared on the host: %s", host)
			}
			cr.Close()

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				stopped = true
				if err != nil {
					t.Errorf("server exited with %v after %v; stderr: %s", err, sig, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("server did not exit after %v", sig)
			}
			if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket left behind: %v", err)
			}
			var sawAudit, sawStopped bool
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Errorf("log line is not JSON: %q", line)
					continue
				}
				switch rec["msg"] {
				case "audit":
					sawAudit = rec["result"] == "created" && rec["device"] == "srv0" && rec["uid"] == float64(0)
				case "stopped":
					sawStopped = true
				}
			}
			if !sawAudit || !sawStopped {
				t.Errorf("log lacks the audit record or the stop: %s", stderr.String())
			}
			deadline = time.Now().Add(5 * time.Second)
			for {
				if _, err := ns.LinkByName("srv0"); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("srv0 still exists")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// The server knows its creator only as a broker.CreateFunc: run serves
// with the one it is given, here a fake that refuses, so that no device
// and no privilege is needed (the caller's own group may ask).
func TestRunServesItsCreator(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fake.sock")
	asked := make(chan broker.Request, 1)
	fake := func(_ context.Context, r broker.Request) (broker.Created, error) {
		asked <- r
		return broker.Created{}, fmt.Errorf("fake creator: %w", syscall.ENOSPC)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, fake, []string{"-socket", sock, "-group", fmt.Sprint(os.Getgid())}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := broker.Client{Path: sock, Timeout: 10 * time.Second}
	_, err := c.Create(context.Background(), broker.Request{Addr: netip.MustParsePrefix("fd00:77::1/64"), Name: "tunfake%d"})
	var be *broker.Error
	if !errors.As(err, &be) || be.Status != broker.StatusFailed || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(be.Message, "fake creator") {
		t.Errorf("Create: %v; want the fake creator's refusal, ENOSPC", err)
	}
	select {
	case r := <-asked:
		if r.Name != "tunfake%d" || r.Addr != netip.MustParsePrefix("fd00:77::1/64") {
			t.Errorf("the creator was asked for %+v", r)
		}
	default:
		t.Error("the creator was never asked")
	}
}

// Bad configuration is reported before anything is created.
func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badPolicy, []byte(`{"allowed_prefixs": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "never.sock")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "999"}, `-mode "999": want an octal permission`},
		{[]string{"-mode", "01777"}, `-mode "01777"`},
		{[]string{"-policy", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"-policy", badPolicy}, `unknown field "allowed_prefixs"`},
		{[]string{"-group", "no-such-group-tundra-test"}, "groupadd --system no-such-group-tundra-test"},
		{[]string{"-log", "xml"}, `-log "xml"`},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		err := run(context.Background(), tundra.BrokerCreate, append([]string{"-socket", sock}, tc.args...), &bytes.Buffer{}, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Error("a failed start left a socket")
	}
}

// -h and -help print the usage and exit 0, as every command's -h does.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		cmd := exec.Command(os.Args[0], arg)
		cmd.Env = append(os.Environ(), serverEnv+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			t.Errorf("tundra-server %s: %v (want exit 0); stderr: %s", arg, err, stderr.String())
		}
		out := stdout.String() + stderr.String()
		if !strings.Contains(out, "Usage of tundra-server") || !strings.Contains(out, "-socket path") || strings.Contains(out, "flag: help requested") {
			t.Errorf("tundra-server %s printed %q, want the usage alone", arg, out)
		}
	}
}

func TestPrintPolicy(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), tundra.BrokerCreate, []string{"-print-policy"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var got broker.Policy
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if fmt.Sprint(got) != fmt.Sprint(broker.DefaultPolicy()) {
		t.Errorf("printed %+v, want the default %+v", got, broker.DefaultPolicy())
	}
	f := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(f, []byte(`{"max_queues": 2}`), 0o600)
	out.Reset()
	if err := run(context.Background(), tundra.BrokerCreate, []string{"-print-policy", "-policy", f}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"max_queues": 2`) || !strings.Contains(out.String(), `"fc00::/7"`) {
		t.Errorf("merged policy: %s", out.String())
	}
}
