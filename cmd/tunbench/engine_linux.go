//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/internal/netns"
	"github.com/tundra-go/tundra/internal/packet"
	"github.com/tundra-go/tundra/nl"
)

// An engine is one way of moving packets between a program and TUN
// devices. Every engine is measured doing the same jobs on devices it
// creates itself, with the same addressing, in namespaces the scenario
// made for that run alone.
type engine interface {
	// name is how flags, tables and JSON call it.
	name() string
	// open creates a device as s says and brings it up.
	open(s devSpec) (device, error)
	// start begins the job on the engine's devices, pinned to cpu where
	// the engine can be (cpu < 0: not pinned).
	start(j job, cpu int) (runner, error)
}

// multiQueue is an engine that can serve a multi-queue device
// (tundra.Queues), one loop per queue.
type multiQueue interface {
	// withQueues is the same engine on devices with n queues.
	withQueues(n int) engine
}

// devSpec describes a device a scenario needs.
type devSpec struct {
	ns    *netns.Namespace
	name  string
	addrs []netip.Prefix // the first is the device's address, the others are added
	mtu   int
}

// device is an engine's handle on a device it created.
type device interface {
	ifname() string
	close()
}

type jobKind int

const (
	jobDrain   jobKind = iota // read from a as fast as possible and discard
	jobBlast                  // write pkts into a, round and round, as fast as possible
	jobForward                // copy what a gives into b and what b gives into a
	jobReflect                // read from a, turn each packet around, write it back into a
)

// job is the work a scenario gives an engine.
type job struct {
	kind jobKind
	a, b device
	pkts [][]byte // jobBlast: the packets to write, in order, again and again
	// flows is how many flows pkts holds: packet i belongs to flow
	// i%flows (see txPackets). A multi-queue engine writes each flow
	// through one queue.
	flows int
	// wake sends a packet out of every device of the job, so that a thread
	// blocked in read(2) returns and sees that it must stop.
	wake func()
}

// engineCounters are what an engine has done since it started. syscalls
// is known when the engine counts its own system calls (tundra's loop
// statistics; blocking's one call per packet); otherwise the scenario
// measures the read/write-family calls of the process instead.
type engineCounters struct {
	pktsIn, pktsOut, bytesIn, bytesOut uint64
	syscalls                           uint64
	syscallsKnown                      bool
	errors                             uint64
	// perQueue is packets read plus written by each queue's loop, for
	// engines with more than one.
	perQueue []uint64
}

// runner is a job in progress.
type runner interface {
	counters() engineCounters
	// stop ends the job and returns the first I/O error the engine met,
	// if any. It is idempotent.
	stop() error
}

// ioStats are one worker's counters (one writer each).
type ioStats struct {
	pktsIn, pktsOut, bytesIn, bytesOut, calls, errs counter
}

// failures keeps the first error of a job's workers.
type failures struct {
	mu    sync.Mutex
	first error
}

func (f *failures) record(err error) {
	f.mu.Lock()
	if f.first == nil {
		f.first = err
	}
	f.mu.Unlock()
}

func (f *failures) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

func sumStats(known bool, sts ...*ioStats) engineCounters {
	c := engineCounters{syscallsKnown: known}
	for _, s := range sts {
		c.pktsIn += s.pktsIn.load()
		c.pktsOut += s.pktsOut.load()
		c.bytesIn += s.bytesIn.load()
		c.bytesOut += s.bytesOut.load()
		c.syscalls += s.calls.load()
		c.errors += s.errs.load()
	}
	return c
}

// engines are every engine, in the order tables list them.
var engines = []engine{tundraEngine{}, tundraEngine{gso: true}, blockingEngine{}, epollEngine{}, netpollEngine{}, wgEngine{}}

// ceilingEngine is not an engine: its devices have no reader, so the
// kernel drops what it sends them. Runs with it measure the generator
// alone, its ceiling.
type ceilingEngine struct {
	queues int // device queues; 0 means 1
}

const ceilingName = "generator alone"

func (ceilingEngine) name() string                     { return ceilingName }
func (e ceilingEngine) open(s devSpec) (device, error) { return openTundraDev(s, false, e.queues) }
func (ceilingEngine) start(job, int) (runner, error)   { return idleRunner{}, nil }
func (ceilingEngine) withQueues(n int) engine          { return ceilingEngine{queues: n} }

type idleRunner struct{}

func (idleRunner) counters() engineCounters { return engineCounters{} }
func (idleRunner) stop() error              { return nil }

// tundraDev is a device made with tundra.Create; the tundra, netpoll,
// blocking and ceiling engines all use one.
type tundraDev struct {
	d *tundra.Device
}

func (d *tundraDev) ifname() string { return d.d.Name() }
func (d *tundraDev) close()         { d.d.Close() }

// openTundraDev creates the device in s.ns with queues queues (0 means 1)
// and, with gso, every offload.
func openTundraDev(s devSpec, gso bool, queues int) (*tundraDev, error) {
	var d *tundra.Device
	opts := []tundra.Option{tundra.Name(s.name), tundra.MTU(s.mtu)}
	if queues > 1 {
		opts = append(opts, tundra.Queues(queues))
	}
	if gso {
		opts = append(opts, tundra.Offloads(tundra.AllOffloads))
	}
	err := s.ns.Do(func() error {
		var err error
		d, err = tundra.Create(s.addrs[0].String(), opts...)
		if err != nil {
			return err
		}
		if err := addAddrs(d.Index(), s.addrs[1:]); err != nil {
			d.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &tundraDev{d}, nil
}

// addAddrs gives link index the extra addresses, with the netlink socket
// of the calling thread's namespace. IPv6 addresses skip duplicate address
// detection: a TUN device has no neighbours, and a tentative address could
// not be used yet.
func addAddrs(index int, addrs []netip.Prefix) error {
	if len(addrs) == 0 {
		return nil
	}
	c, err := nl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, p := range addrs {
		a := nl.Addr{Index: index, Prefix: p}
		if p.Addr().Is6() {
			a.Flags |= nl.IFA_F_NODAD
		}
		if err := c.AddAddr(a); err != nil {
			return fmt.Errorf("add %s: %w", p, err)
		}
	}
	return nil
}

// turnAround swaps the source and destination addresses and ports of an
// IPv4 or IPv6 UDP or TCP packet in place. Checksums stay valid: a one's
// complement sum does not depend on the order of its terms.
func turnAround(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	var l4 int
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0xf) * 4
		if len(p) < ihl+4 || (p[9] != packet.ProtoUDP && p[9] != packet.ProtoTCP) {
			return false
		}
		for i := 12; i < 16; i++ {
			p[i], p[i+4] = p[i+4], p[i]
		}
		l4 = ihl
	case 6:
		if len(p) < 44 || (p[6] != packet.ProtoUDP && p[6] != packet.ProtoTCP) {
			return false
		}
		for i := 8; i < 24; i++ {
			p[i], p[i+16] = p[i+16], p[i]
		}
		l4 = 40
	default:
		return false
	}
	p[l4], p[l4+1], p[l4+2], p[l4+3] = p[l4+2], p[l4+3], p[l4], p[l4+1]
	return true
}

// errStopTimeout says an engine thread did not come back from a blocking
// call although it was woken.
var errStopTimeout = errors.New("an engine thread did not stop within 2s of being woken")

// goRunner is what the netpoll and wireguard-go runners share: goroutines
// doing the work, each with its counters, and the devices whose Close
// wakes the goroutines parked in Read. Their system calls happen in the
// runtime's netpoller and in os.File, where they cannot be counted; the
// scenario measures the process's read/write calls instead.
type goRunner struct {
	stopped atomic.Bool
	closers []io.Closer
	stats   []*ioStats
	done    []chan struct{}
	errs    failures
	ended   atomic.Bool
	stopErr error
}

// spawn runs work on a goroutine of its own, with its own counters.
func (r *goRunner) spawn(work func(*ioStats) error) {
	st := &ioStats{}
	done := make(chan struct{})
	r.stats = append(r.stats, st)
	r.done = append(r.done, done)
	go func() {
		defer close(done)
		if err := work(st); err != nil {
			r.errs.record(err)
		}
	}()
}

func (r *goRunner) counters() engineCounters { return sumStats(false, r.stats...) }

// stop closes the devices, which wakes goroutines parked in Read, and
// waits for every goroutine.
func (r *goRunner) stop() error {
	if r.ended.Swap(true) {
		return r.stopErr
	}
	r.stopped.Store(true)
	for _, c := range r.closers {
		c.Close()
	}
	for _, d := range r.done {
		<-d
	}
	r.stopErr = r.errs.err()
	return r.stopErr
}
