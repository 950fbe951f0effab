package replay

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// tunGetDevNetns is TUNGETDEVNETNS, _IO('T', 227): it returns a new
// descriptor for the network namespace the TUN device lives in (Linux 5.2).
const tunGetDevNetns = 0x54e3

// kernelCounters reads the counters of the device's network namespace. The
// files are opened once, from a thread inside that namespace, and re-read
// with pread: a /proc/<tid>/net file keeps the namespace it was opened in,
// whichever thread reads it later.
type kernelCounters struct {
	dev                string
	snmp, snmp6, netdv int
	buf                []byte
}

// openCounters opens the counter files of the namespace of the TUN device
// whose queue is fd. Safe from any goroutine; the result is then used by
// one goroutine at a time.
func openCounters(fd int, dev string) (*kernelCounters, error) {
	nsfd, err := unix.IoctlRetInt(fd, tunGetDevNetns)
	if err != nil {
		return nil, fmt.Errorf("TUNGETDEVNETNS: %w", err)
	}
	defer unix.Close(nsfd)
	type result struct {
		kc  *kernelCounters
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread may leave its namespace and must not
		// go back to the scheduler's pool; it ends with the goroutine.
		runtime.LockOSThread()
		var here unix.Stat_t
		var there unix.Stat_t
		if err := unix.Fstat(nsfd, &there); err != nil {
			ch <- result{nil, fmt.Errorf("fstat netns: %w", err)}
			return
		}
		if err := unix.Stat("/proc/thread-self/ns/net", &here); err != nil || here.Ino != there.Ino || here.Dev != there.Dev {
			if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("setns into the device's namespace: %w", err)}
				return
			}
		}
		kc := &kernelCounters{dev: dev, snmp: -1, snmp6: -1, netdv: -1, buf: make([]byte, 64<<10)}
		for _, f := range []struct {
			path string
			fd   *int
		}{{"/proc/thread-self/net/snmp", &kc.snmp}, {"/proc/thread-self/net/snmp6", &kc.snmp6}, {"/proc/thread-self/net/dev", &kc.netdv}} {
			fd, err := unix.Open(f.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				kc.close()
				ch <- result{nil, fmt.Errorf("open %s: %w", f.path, err)}
				return
			}
			*f.fd = fd
		}
		ch <- result{kc, nil}
	}()
	r := <-ch
	return r.kc, r.err
}

func (kc *kernelCounters) readFile(fd int) ([]byte, error) {
	n := 0
	for {
		if n == len(kc.buf) {
			kc.buf = append(kc.buf, make([]byte, len(kc.buf))...)
		}
		m, err := unix.Pread(fd, kc.buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return kc.buf[:n], nil
		}
		n += m
	}
}

// read takes one reading of every counter.
func (kc *kernelCounters) read() (counterSet, error) {
	cs := counterSet{}
	b, err := kc.readFile(kc.snmp)
	if err != nil {
		return nil, fmt.Errorf("reading snmp: %w", err)
	}
	parseSnmp(b, cs)
	if b, err = kc.readFile(kc.snmp6); err != nil {
		return nil, fmt.Errorf("reading snmp6: %w", err)
	}
	parseSnmp6(b, cs)
	if b, err = kc.readFile(kc.netdv); err != nil {
		return nil, fmt.Errorf("reading net/dev: %w", err)
	}
	parseNetDev(b, kc.dev, cs)
	return cs, nil
}

func (kc *kernelCounters) close() {
	for _, fd := range []int{kc.snmp, kc.snmp6, kc.netdv} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	kc.snmp, kc.snmp6, kc.netdv = -1, -1, -1
}
