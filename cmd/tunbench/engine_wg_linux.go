//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tundra-go/tundra/nl"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// wgEngine is wireguard-go's tun package, the fastest Go TUN code in wide
// use: devices with IFF_VNET_HDR and the kernel's offloads on (TSO, USO,
// checksum), read and written through its batch API on the Go netpoller.
// Its reads split super-packets into packets; its writes merge packets of
// one flow into super-packets (GRO), so one write(2) can carry dozens of
// packets. Its goroutines are not pinned.
type wgEngine struct{}

func (wgEngine) name() string { return "wireguard-go" }

// wgOffset is the headroom wireguard-go's Read and Write need in front of
// each packet: at least its virtio-net header (10 bytes).
const wgOffset = 16

// wgBufSize is what its contract asks of each buffer: room for the largest
// (super-)packet, 64 KiB, after the offset.
const wgBufSize = wgOffset + 65535

type wgDev struct {
	t    wgtun.Device
	name string
}

func (d *wgDev) ifname() string { return d.name }
func (d *wgDev) close()         { d.t.Close() }

// open creates the device with CreateTUN inside the namespace (it also
// opens its netlink listener there), then addresses it and brings it up
// with the nl package.
func (wgEngine) open(s devSpec) (device, error) {
	var t wgtun.Device
	err := s.ns.Do(func() error {
		var err error
		t, err = wgtun.CreateTUN(s.name, s.mtu)
		if err != nil {
			return fmt.Errorf("wireguard-go CreateTUN: %w", err)
		}
		c, err := nl.Dial()
		if err != nil {
			t.Close()
			return err
		}
		defer c.Close()
		link, err := c.LinkByName(s.name)
		if err == nil {
			err = addAddrs(link.Index, s.addrs)
		}
		if err == nil {
			err = c.SetLinkUp(link.Index)
		}
		if err != nil {
			t.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &wgDev{t: t, name: s.name}, nil
}

type wgRunner struct{ goRunner }

// wgBuffers makes n buffers as its contract asks, and slice headers to
// hand to Write.
func wgBuffers(n int) (bufs, outs [][]byte, sizes []int) {
	bufs, outs, sizes = make([][]byte, n), make([][]byte, n), make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, wgBufSize)
	}
	return
}

func (wgEngine) start(j job, _ int) (runner, error) {
	a := j.a.(*wgDev).t
	r := &wgRunner{goRunner{closers: []io.Closer{a}}}
	switch j.kind {
	case jobDrain:
		r.spawn(func(st *ioStats) error { return r.copy(st, a, nil, false) })
	case jobReflect:
		r.spawn(func(st *ioStats) error { return r.copy(st, a, a, true) })
	case jobForward:
		b := j.b.(*wgDev).t
		r.closers = append(r.closers, b)
		r.spawn(func(st *ioStats) error { return r.copy(st, a, b, false) })
		r.spawn(func(st *ioStats) error { return r.copy(st, b, a, false) })
	case jobBlast:
		pkts := j.pkts
		r.spawn(func(st *ioStats) error { return r.blast(st, a, pkts) })
	}
	return r, nil
}

// copy reads batches from in and writes them to out (nil: discard).
func (r *wgRunner) copy(st *ioStats, in, out wgtun.Device, swap bool) error {
	bufs, outs, sizes := wgBuffers(in.BatchSize())
	for {
		n, err := in.Read(bufs, sizes, wgOffset)
		if r.stopped.Load() {
			return nil
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			// ErrTooManySegments comes with the packets that fit; any
			// other error with none. Either way, go on.
			st.errs.inc()
			r.errs.record(fmt.Errorf("read: %w", err))
			if n == 0 {
				continue
			}
		}
		var bytes uint64
		for i := range n {
			bytes += uint64(sizes[i])
			if out != nil {
				// Write takes bufs[i][offset:] as the packet, and may grow
				// the buffer (up to its capacity) to merge packets into it.
				outs[i] = bufs[i][:wgOffset+sizes[i]]
				if swap {
					turnAround(outs[i][wgOffset:])
				}
			}
		}
		st.pktsIn.add(uint64(n))
		st.bytesIn.add(bytes)
		if out == nil {
			continue
		}
		// Write returns bytes (its super-packets' lengths with their
		// virtio headers), not packets: count the packets handed over.
		if _, err := out.Write(outs[:n], wgOffset); err != nil {
			if r.stopped.Load() || errors.Is(err, os.ErrClosed) {
				return nil
			}
			st.errs.inc()
			r.errs.record(fmt.Errorf("write: %w", err))
			continue
		}
		st.pktsOut.add(uint64(n))
		st.bytesOut.add(bytes)
	}
}

// blast writes pkts round and round in batches of the device's batch size.
// Write merges and rewrites the buffers it is given, so every batch is
// copied in afresh, as a real sender would fill its buffers.
func (r *wgRunner) blast(st *ioStats, d wgtun.Device, pkts [][]byte) error {
	bufs, outs, _ := wgBuffers(d.BatchSize())
	next := 0
	for !r.stopped.Load() {
		var bytes uint64
		for i := range outs {
			pk := pkts[next]
			next = (next + 1) % len(pkts)
			outs[i] = bufs[i][:wgOffset+len(pk)]
			copy(outs[i][wgOffset:], pk)
			bytes += uint64(len(pk))
		}
		if _, err := d.Write(outs, wgOffset); err != nil {
			if r.stopped.Load() || errors.Is(err, os.ErrClosed) {
				return nil
			}
			// Write does not say which packets failed: count none of the
			// batch as accepted.
			st.errs.inc()
			r.errs.record(fmt.Errorf("write: %w", err))
			continue
		}
		st.pktsOut.add(uint64(len(outs)))
		st.bytesOut.add(bytes)
	}
	return nil
}
