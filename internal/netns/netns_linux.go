// Package netns gives programs and tests private network namespaces that
// disappear on their own when the process lets go of them: a namespace is
// held only by a file descriptor and by the devices and sockets inside it,
// never by a name in /var/run/netns, so even a killed process leaves
// nothing behind.
//
// Namespaces are per thread on Linux. A Namespace never changes the calling
// goroutine: Do runs a function on a fresh OS thread that has joined the
// namespace, and that thread is thrown away afterwards (the goroutine exits
// while locked, so the Go runtime terminates the thread instead of reusing
// it). Sockets and TUN devices opened inside Do stay in the namespace for
// their whole life, whichever thread later uses them.
package netns

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Namespace is a private network namespace. Its methods are safe from any
// goroutine.
type Namespace struct {
	mu sync.Mutex
	fd int // an open ns/net file of the namespace; -1 once closed
}

// New creates a network namespace with loopback up.
func New() (*Namespace, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: this thread leaves the host namespace and must die
		// with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, fmt.Errorf("unshare(CLONE_NEWNET): %w", err)}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{-1, fmt.Errorf("open ns/net: %w", err)}
			return
		}
		ch <- result{fd, nil}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	ns := &Namespace{fd: r.fd}
	if out, err := ns.Output("ip", "link", "set", "lo", "up"); err != nil {
		ns.Close()
		return nil, fmt.Errorf("lo up: %v: %s", err, out)
	}
	return ns, nil
}

// Close drops this reference to the namespace. The kernel frees it once
// the last device, socket and process inside it are gone too. Idempotent.
func (ns *Namespace) Close() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// Path names the namespace for tools that take a file (ip link set DEV
// netns PATH, nsenter --net=PATH): this process's descriptor for it, valid
// while the Namespace is open.
func (ns *Namespace) Path() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), ns.fd)
}

// Do runs fn on a thread inside the namespace and returns its error. Files
// and sockets that fn opens stay in the namespace; a process that fn starts
// is born in it (but see Spawn for processes that must die with this one).
func (ns *Namespace) Do(fn func() error) error {
	ns.mu.Lock()
	fd := ns.fd
	ns.mu.Unlock()
	if fd < 0 {
		return fmt.Errorf("netns: namespace closed")
	}
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see the package doc
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("setns: %w", err)
			return
		}
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic in namespace: %v", r)
				}
			}()
			err = fn()
		}()
		ch <- err
	}()
	return <-ch
}

// Start starts cmd inside the namespace.
func (ns *Namespace) Start(cmd *exec.Cmd) error { return ns.Do(cmd.Start) }

// Output runs a command inside the namespace and returns its combined
// output.
func (ns *Namespace) Output(name string, args ...string) ([]byte, error) {
	var buf bytes.Buffer
	err := ns.Do(func() error {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = &buf, &buf
		return cmd.Run()
	})
	return buf.Bytes(), err
}

// WriteSysctl sets a sysctl of the namespace, e.g. "net/ipv4/ip_forward".
func (ns *Namespace) WriteSysctl(name, value string) error {
	return ns.Do(func() error {
		fd, err := unix.Open("/proc/sys/"+name, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", name, err)
		}
		defer unix.Close(fd)
		if _, err := unix.Write(fd, []byte(value)); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
		}
		return nil
	})
}

// TCPListening reports whether a socket inside the namespace listens on
// TCP port (IPv4 or IPv6), read from the namespace's
// /proc/thread-self/net/tcp and tcp6. It tells that a server is ready
// without connecting to it: a one-off server such as `iperf3 -s -1` would
// take a probe connection for its one client.
func (ns *Namespace) TCPListening(port int) (bool, error) {
	want := fmt.Sprintf(":%04X", port)
	found := false
	err := ns.Do(func() error {
		for _, table := range []string{"tcp", "tcp6"} {
			b, err := os.ReadFile("/proc/thread-self/net/" + table)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n")[1:] {
				f := strings.Fields(line)
				// f[1] is local address:port, f[3] the state (0A is LISTEN).
				if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
					found = true
				}
			}
		}
		return nil
	})
	return found, err
}
