//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tundra-go/tundra/internal/netns"
	"golang.org/x/sys/unix"
)

// One-stream TCP through the forwarder, the method of the public tun-rs
// benchmark: iperf3 (Debian's) when it is there or can be installed, else
// a built-in sender and receiver that do the same thing.

const tcpPort = 5201

// findIperf3 returns iperf3's path, installing it from Debian if it is
// missing and apt-get is there (the process is root by now). "" means
// there is no iperf3 to be had; the reason goes to log.
func findIperf3(log io.Writer) string {
	if p, err := exec.LookPath("iperf3"); err == nil {
		return p
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		fmt.Fprintln(log, "tunbench: iperf3 is not installed and there is no apt-get: using the built-in TCP sender and receiver")
		return ""
	}
	fmt.Fprintln(log, "tunbench: iperf3 is not installed; installing it with apt-get (Debian's package)")
	cmd := exec.Command("apt-get", "install", "-y", "-qq", "--no-install-recommends", "iperf3")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(log, "tunbench: apt-get install iperf3 failed (%v): using the built-in TCP sender and receiver\n%s", err, lastLines(out, 3))
		return ""
	}
	if p, err := exec.LookPath("iperf3"); err == nil {
		return p
	}
	return ""
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// iperf3Result is what we read from iperf3 -J.
type iperf3Result struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Retransmits uint64  `json:"retransmits"`
			Bytes       uint64  `json:"bytes"`
			Seconds     float64 `json:"seconds"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         uint64  `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		CPU struct {
			HostTotal   float64 `json:"host_total"`
			RemoteTotal float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
}

// startIperf3Server spawns a one-test iperf3 server in ns bound to addr
// and waits until it listens. The process dies with tunbench whatever
// happens (netns.Spawn); close kills and reaps it.
func (e *env) startIperf3Server(ctx context.Context, path string, ns *netns.Namespace, addr netip.Addr, cpu int) error {
	args := []string{"-s", "-1", "-B", addr.String(), "-p", strconv.Itoa(tcpPort)}
	if cpu >= 0 {
		args = append(args, "-A", strconv.Itoa(cpu))
	}
	cmd := exec.Command(path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Spawn(cmd); err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.onClose(func() {
		select {
		case <-exited:
		case <-time.After(500 * time.Millisecond):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if up, err := ns.TCPListening(tcpPort); err != nil || up {
			return err
		}
		select {
		case <-exited:
			return fmt.Errorf("iperf3 server exited: %s", bytes.TrimSpace(out.Bytes()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("iperf3 server did not listen within 5s")
		}
	}
}

// runIperf3Client runs iperf3 -c in ns for whole seconds (iperf3 reads -t
// as an integer: 0.5 would mean forever) and returns its report.
func runIperf3Client(ctx context.Context, path string, ns *netns.Namespace, server netip.Addr, secs int, cpu int) (iperf3Result, error) {
	var res iperf3Result
	args := []string{"-c", server.String(), "-p", strconv.Itoa(tcpPort), "-t", strconv.Itoa(secs), "-J"}
	if cpu >= 0 {
		args = append(args, "-A", strconv.Itoa(cpu))
	}
	// A hard limit, in case the path through the engine dies mid-test.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := ns.Spawn(cmd); err != nil {
		return res, fmt.Errorf("iperf3 client: %w", err)
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return res, fmt.Errorf("iperf3 client: %v: %s%s", werr, bytes.TrimSpace(stderr.Bytes()), lastLines(stdout.Bytes(), 2))
	}
	if res.Error != "" {
		return res, fmt.Errorf("iperf3 client: %s", res.Error)
	}
	if werr != nil {
		return res, fmt.Errorf("iperf3 client: %w", werr)
	}
	return res, nil
}

// tcpStream is the built-in sender and receiver: one connection, the
// sender writing 128 KiB at a time as fast as it can, the receiver reading
// and counting, each on a pinned helper thread.
type tcpStream struct {
	lfd, rfd, sfd int
	recvd         counter
	sender        helperThread
	receiver      helperThread
	stopped       atomic.Bool
	started       bool
	sdone, rdone  chan struct{}
	errs          failures
}

// newTCPStream listens in nsB, connects from nsA (through the engine,
// which must be running) and starts both threads.
func (e *env) newTCPStream(nsA, nsB *netns.Namespace, server netip.AddrPort, cpu int) (*tcpStream, error) {
	t := &tcpStream{lfd: -1, rfd: -1, sfd: -1, sdone: make(chan struct{}), rdone: make(chan struct{})}
	e.onClose(t.close)
	err := nsB.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		t.lfd = fd
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, sockaddr(server)); err != nil {
			return err
		}
		// accept gives up after 5s if no connection comes.
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
		return unix.Listen(fd, 1)
	})
	if err != nil {
		return nil, fmt.Errorf("tcp receiver: %w", err)
	}
	err = nsA.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		t.sfd = fd
		// Bounds connect, and each write afterwards.
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Sec: 5})
		return unix.Connect(fd, sockaddr(server))
	})
	if err != nil {
		return nil, fmt.Errorf("tcp sender: connect %s through the engine: %w", server, err)
	}
	ready := make(chan error, 2)
	t.started = true
	go func() {
		defer close(t.rdone)
		tid, err := lockThread(cpu)
		if err == nil {
			t.receiver.tid.Store(int64(tid))
			var nfd int
			nfd, _, err = unix.Accept4(t.lfd, unix.SOCK_CLOEXEC)
			t.rfd = nfd
		}
		ready <- err
		if err != nil {
			return
		}
		unix.SetsockoptTimeval(t.rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
		buf := make([]byte, 256<<10)
		for !t.stopped.Load() {
			n, err := unix.Read(t.rfd, buf)
			if n > 0 {
				t.recvd.add(uint64(n))
			}
			if n == 0 && err == nil {
				return // the sender closed
			}
		}
	}()
	go func() {
		defer close(t.sdone)
		tid, err := lockThread(cpu)
		ready <- err
		if err != nil {
			return
		}
		t.sender.tid.Store(int64(tid))
		buf := make([]byte, 128<<10)
		for !t.stopped.Load() {
			if _, err := unix.Write(t.sfd, buf); err != nil && err != unix.EINTR && err != unix.EAGAIN {
				// stop shuts the socket down to end a write still
				// blocked, which then fails with EPIPE: that is the stop,
				// not an error of the path (the smoke test failed so
				// under load, where writes block longer).
				if !t.stopped.Load() {
					t.errs.record(fmt.Errorf("tcp sender: %w", err))
				}
				return
			}
		}
	}()
	for range 2 {
		if err := <-ready; err != nil {
			return nil, fmt.Errorf("tcp: %w", err)
		}
	}
	return t, nil
}

func (t *tcpStream) helpers() []*helperThread { return []*helperThread{&t.sender, &t.receiver} }

func (t *tcpStream) stop() {
	if t.stopped.Swap(true) || !t.started {
		return
	}
	// Shutting the sockets down ends a write stuck on a path that stopped
	// moving (the receiver then reads the end of the stream), and an
	// accept still waiting for a connection.
	unix.Shutdown(t.sfd, unix.SHUT_RDWR)
	<-t.sdone
	unix.Shutdown(t.lfd, unix.SHUT_RDWR)
	<-t.rdone
}

func (t *tcpStream) close() {
	t.stop()
	for _, fd := range []int{t.sfd, t.rfd, t.lfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
