//go:build linux

package main

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// blockingEngine is the per-thread reference: plain blocking read(2) and
// write(2), one packet per system call, on an OS thread of its own (locked,
// pinned), the way C programs and the simplest Go ones do it. Forwarding
// uses one such thread per direction.
type blockingEngine struct{}

func (blockingEngine) name() string { return "blocking" }

// blockingDev is a tundra.Create device whose descriptor is switched to
// blocking mode (the flag belongs to the open file, which nothing else
// uses).
type blockingDev struct {
	*tundraDev
	fd int
}

func (blockingEngine) open(s devSpec) (device, error) {
	d, err := openTundraDev(s, false, 1)
	if err != nil {
		return nil, err
	}
	fd := d.d.Queues()[0].Fd()
	if err := unix.SetNonblock(fd, false); err != nil {
		d.close()
		return nil, fmt.Errorf("clear O_NONBLOCK: %w", err)
	}
	return &blockingDev{d, fd}, nil
}

type blockingRunner struct {
	stopped atomic.Bool
	wake    func()
	stats   []*ioStats
	done    []chan struct{}
	errs    failures
	ended   atomic.Bool
	stopErr error
}

func (blockingEngine) start(j job, cpu int) (runner, error) {
	r := &blockingRunner{wake: j.wake}
	a := j.a.(*blockingDev).fd
	switch j.kind {
	case jobDrain:
		r.spawn(cpu, func(st *ioStats) error { return r.copy(st, a, -1, false) })
	case jobReflect:
		r.spawn(cpu, func(st *ioStats) error { return r.copy(st, a, a, true) })
	case jobForward:
		b := j.b.(*blockingDev).fd
		r.spawn(cpu, func(st *ioStats) error { return r.copy(st, a, b, false) })
		r.spawn(cpu, func(st *ioStats) error { return r.copy(st, b, a, false) })
	case jobBlast:
		pkts := j.pkts
		r.spawn(cpu, func(st *ioStats) error {
			for i := 0; !r.stopped.Load(); i++ {
				pk := pkts[i%len(pkts)]
				_, err := unix.Write(a, pk)
				st.calls.inc()
				if err != nil {
					if err == unix.EINTR {
						continue
					}
					st.errs.inc()
					r.errs.record(fmt.Errorf("write: %w", err))
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

// spawn runs work on a new locked thread pinned to cpu.
func (r *blockingRunner) spawn(cpu int, work func(*ioStats) error) {
	st := &ioStats{}
	done := make(chan struct{})
	r.stats = append(r.stats, st)
	r.done = append(r.done, done)
	go func() {
		defer close(done)
		if _, err := lockThread(cpu); err != nil {
			r.errs.record(err)
			return
		}
		if err := work(st); err != nil {
			r.errs.record(err)
		}
	}()
}

// copy reads packets from in, one read(2) each, and writes each to out
// with one write(2) (out < 0: discard), turning it around first if swap.
func (r *blockingRunner) copy(st *ioStats, in, out int, swap bool) error {
	buf := make([]byte, readBufSize)
	for {
		n, err := unix.Read(in, buf)
		st.calls.inc()
		if r.stopped.Load() {
			return nil
		}
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("read: %w", err)
		}
		st.pktsIn.inc()
		st.bytesIn.add(uint64(n))
		if out < 0 {
			continue
		}
		pk := buf[:n]
		if swap {
			turnAround(pk)
		}
		_, err = unix.Write(out, pk)
		st.calls.inc()
		if err != nil {
			st.errs.inc()
			r.errs.record(fmt.Errorf("write: %w", err))
			continue
		}
		st.pktsOut.inc()
		st.bytesOut.add(uint64(n))
	}
}

func (r *blockingRunner) counters() engineCounters { return sumStats(true, r.stats...) }

// stop raises the flag, then wakes the threads (a blocked read(2) on a TUN
// descriptor ignores close) by sending packets out of the devices until
// every thread has returned.
func (r *blockingRunner) stop() error {
	if r.ended.Swap(true) {
		return r.stopErr
	}
	r.stopped.Store(true)
	if r.wake != nil {
		r.wake()
	}
	deadline := time.After(2 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, done := range r.done {
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-tick.C:
				if r.wake != nil {
					r.wake()
				}
			case <-deadline:
				r.errs.record(errStopTimeout)
				break wait
			}
		}
	}
	r.stopErr = r.errs.err()
	return r.stopErr
}
