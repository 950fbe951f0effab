//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// netpollEngine is what most Go TUN code does (songgao/water and its
// kind): an *os.File on the non-blocking TUN descriptor, so that Read and
// Write park the goroutine on Go's netpoller, one packet per call. Its
// goroutines run wherever the Go scheduler puts them: not pinned.
type netpollEngine struct{}

func (netpollEngine) name() string { return "netpoll" }

type netpollDev struct {
	*tundraDev
	f *os.File
}

func (netpollEngine) open(s devSpec) (device, error) {
	d, err := openTundraDev(s, false, 1)
	if err != nil {
		return nil, err
	}
	// A duplicate, so that the File and the Device each close their own.
	fd, err := unix.FcntlInt(uintptr(d.d.Queues()[0].Fd()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("dup: %w", err)
	}
	// The descriptor is non-blocking, so os.NewFile registers it with the
	// netpoller.
	return &netpollDev{d, os.NewFile(uintptr(fd), d.ifname())}, nil
}

func (d *netpollDev) close() {
	d.f.Close()
	d.tundraDev.close()
}

type netpollRunner struct{ goRunner }

func (netpollEngine) start(j job, _ int) (runner, error) {
	a := j.a.(*netpollDev).f
	r := &netpollRunner{goRunner{closers: []io.Closer{a}}}
	switch j.kind {
	case jobDrain:
		r.spawn(func(st *ioStats) error { return r.copy(st, a, nil, false) })
	case jobReflect:
		r.spawn(func(st *ioStats) error { return r.copy(st, a, a, true) })
	case jobForward:
		b := j.b.(*netpollDev).f
		r.closers = append(r.closers, b)
		r.spawn(func(st *ioStats) error { return r.copy(st, a, b, false) })
		r.spawn(func(st *ioStats) error { return r.copy(st, b, a, false) })
	case jobBlast:
		pkts := j.pkts
		r.spawn(func(st *ioStats) error {
			for i := 0; !r.stopped.Load(); i++ {
				pk := pkts[i%len(pkts)]
				if _, err := a.Write(pk); err != nil {
					if r.stopped.Load() {
						return nil
					}
					st.errs.inc()
					r.errs.record(err)
					if errors.Is(err, os.ErrClosed) {
						return nil
					}
					continue
				}
				st.pktsOut.inc()
				st.bytesOut.add(uint64(len(pk)))
			}
			return nil
		})
	}
	return r, nil
}

func (r *netpollRunner) copy(st *ioStats, in, out *os.File, swap bool) error {
	buf := make([]byte, readBufSize)
	for {
		n, err := in.Read(buf)
		if err != nil {
			if r.stopped.Load() {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		st.pktsIn.inc()
		st.bytesIn.add(uint64(n))
		if out == nil {
			continue
		}
		pk := buf[:n]
		if swap {
			turnAround(pk)
		}
		if _, err := out.Write(pk); err != nil {
			if r.stopped.Load() {
				return nil
			}
			st.errs.inc()
			r.errs.record(fmt.Errorf("write: %w", err))
			continue
		}
		st.pktsOut.inc()
		st.bytesOut.add(uint64(n))
	}
}
