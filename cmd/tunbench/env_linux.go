//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tundra-go/tundra/internal/netns"
	"golang.org/x/sys/unix"
)

// env is what one run sets up: namespaces, devices, sockets, threads and
// processes. Everything is registered with onClose as it is made and torn
// down in reverse order by close, whatever happened in between: a failed
// step, a panic in the run, or Ctrl-C.
type env struct {
	closers []func()
}

func (e *env) onClose(f func()) { e.closers = append(e.closers, f) }

func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// newNS makes a private network namespace that lives until close. It is
// held only by a file descriptor (and by the devices and sockets inside
// it), so nothing of it can outlive the process.
func (e *env) newNS() (*netns.Namespace, error) {
	ns, err := netns.New()
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	e.onClose(func() { ns.Close() })
	return ns, nil
}

// udpSocket opens a UDP socket inside ns: sockets stay in the namespace
// they were created in, whichever thread uses them later. The caller
// registers the close.
func udpSocket(ns *netns.Namespace, family int, bind unix.Sockaddr, connect unix.Sockaddr) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		s, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if family == unix.AF_INET6 {
			// One socket for both families (IPv4 arrives v4-mapped).
			if err := unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
				unix.Close(s)
				return fmt.Errorf("IPV6_V6ONLY: %w", err)
			}
		}
		if bind != nil {
			if err := unix.Bind(s, bind); err != nil {
				unix.Close(s)
				return fmt.Errorf("bind %s: %w", sockaddrString(bind), err)
			}
		}
		if connect != nil {
			if err := unix.Connect(s, connect); err != nil {
				unix.Close(s)
				return fmt.Errorf("connect %s: %w", sockaddrString(connect), err)
			}
		}
		fd = s
		return nil
	})
	return fd, err
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return fmt.Sprint(sa)
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// setBuf sets a socket buffer size past net.core.[rw]mem_max (we are
// root), falling back to the capped option.
func setBuf(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}

// waker sends single packets out of one device, to wake an engine thread
// that sits in a blocking read(2) (closing the fd would not wake it).
type waker struct {
	fd int
}

// newWaker opens a socket in ns connected to dst, an address routed out of
// the device to wake.
func (e *env) newWaker(ns *netns.Namespace, dst netip.AddrPort) (*waker, error) {
	family := unix.AF_INET
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := udpSocket(ns, family, nil, sockaddr(dst))
	if err != nil {
		return nil, fmt.Errorf("waker: %w", err)
	}
	e.onClose(func() { unix.Close(fd) })
	return &waker{fd: fd}, nil
}

func (w *waker) wake() {
	var b [8]byte
	unix.SendmsgN(w.fd, b[:], nil, nil, unix.MSG_DONTWAIT)
}

// devStats are a device's drop counters, with when they were read.
type devStats struct {
	TxDropped  uint64 // the device could not take a packet the kernel sent (TUN: its queue to the reader was full)
	RxDropped  uint64 // a packet written into the device was dropped on its way in
	QdiscDrops uint64 // the queueing discipline in front of the device dropped
	// The moments the counters were read: the middle of each tool's run.
	linkAt, qdiscAt time.Time
}

// dropRates are the drops per second between two readings. The tools run
// outside the measured window (they are processes, whose start-up would
// disturb it), so their counts cover a little more than the window: rates
// over their own interval, times the window's length, give the window's.
func dropRates(a, b devStats) (tx, rx, qdisc float64) {
	per := func(n uint64, from, to time.Time) float64 {
		if d := to.Sub(from).Seconds(); d > 0 {
			return float64(n) / d
		}
		return 0
	}
	return per(b.TxDropped-a.TxDropped, a.linkAt, b.linkAt),
		per(b.RxDropped-a.RxDropped, a.linkAt, b.linkAt),
		per(b.QdiscDrops-a.QdiscDrops, a.qdiscAt, b.qdiscAt)
}

// readDevStats asks ip and tc (tools nobody here wrote) inside ns. It forks
// two processes: call it outside the measured window.
func readDevStats(ns *netns.Namespace, dev string) (devStats, error) {
	var st devStats
	t0 := time.Now()
	out, err := ns.Output("ip", "-j", "-s", "link", "show", "dev", dev)
	if err != nil {
		return st, fmt.Errorf("ip -s link show %s: %v: %s", dev, err, bytes.TrimSpace(out))
	}
	st.linkAt = t0.Add(time.Since(t0) / 2)
	var links []struct {
		Stats64 struct {
			Rx struct{ Dropped uint64 } `json:"rx"`
			Tx struct{ Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return st, fmt.Errorf("ip -s link show %s: unexpected output %q", dev, out)
	}
	st.TxDropped, st.RxDropped = links[0].Stats64.Tx.Dropped, links[0].Stats64.Rx.Dropped
	t0 = time.Now()
	out, err = ns.Output("tc", "-j", "-s", "qdisc", "show", "dev", dev)
	if err != nil {
		return st, fmt.Errorf("tc -s qdisc show %s: %v: %s", dev, err, bytes.TrimSpace(out))
	}
	st.qdiscAt = t0.Add(time.Since(t0) / 2)
	var qdiscs []struct {
		Drops uint64 `json:"drops"`
	}
	if err := json.Unmarshal(out, &qdiscs); err != nil {
		return st, fmt.Errorf("tc -s qdisc show %s: unexpected output %q", dev, out)
	}
	for _, q := range qdiscs {
		st.QdiscDrops += q.Drops
	}
	return st, nil
}

// udpStats are the UDP counters of a namespace, IPv4 and IPv6 added up.
type udpStats struct {
	InDatagrams  uint64 // datagrams read by sockets (counted when read, not when queued)
	RcvbufErrors uint64 // dropped because a socket's receive buffer was full
	InErrors     uint64 // every receive error, RcvbufErrors included
	InCsumErrors uint64
	NoPorts      uint64
}

func (a udpStats) sub(b udpStats) udpStats {
	return udpStats{a.InDatagrams - b.InDatagrams, a.RcvbufErrors - b.RcvbufErrors, a.InErrors - b.InErrors,
		a.InCsumErrors - b.InCsumErrors, a.NoPorts - b.NoPorts}
}

// readUDPStats reads /proc/thread-self/net/snmp and snmp6 from a thread
// inside ns. /proc/net (= /proc/self/net) would show the namespace of the
// process's main thread, not of the reading thread; thread-self follows
// the thread.
func readUDPStats(ns *netns.Namespace) (udpStats, error) {
	var st udpStats
	err := ns.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		v4, err := parseSNMP(b)
		if err != nil {
			return err
		}
		b, err = os.ReadFile("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		v6 := parseSNMP6(b)
		st = udpStats{
			InDatagrams:  v4["InDatagrams"] + v6["Udp6InDatagrams"],
			RcvbufErrors: v4["RcvbufErrors"] + v6["Udp6RcvbufErrors"],
			InErrors:     v4["InErrors"] + v6["Udp6InErrors"],
			InCsumErrors: v4["InCsumErrors"] + v6["Udp6InCsumErrors"],
			NoPorts:      v4["NoPorts"] + v6["Udp6NoPorts"],
		}
		return nil
	})
	return st, err
}

// parseSNMP reads the "Udp:" header and value lines of /proc/net/snmp.
func parseSNMP(b []byte) (map[string]uint64, error) {
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if names == nil {
			names = fields
			continue
		}
		if len(fields) != len(names) {
			return nil, errors.New("snmp: Udp lines disagree")
		}
		m := make(map[string]uint64, len(names))
		for i, f := range fields {
			v, _ := strconv.ParseUint(f, 10, 64)
			m[names[i]] = v
		}
		return m, nil
	}
	return nil, errors.New("snmp: no Udp lines")
}

// parseSNMP6 reads the "name value" lines of /proc/net/snmp6.
func parseSNMP6(b []byte) map[string]uint64 {
	m := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			m[f[0]] = v
		}
	}
	return m
}
