package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/tun"
)

// CaptureOptions configures Capture.
type CaptureOptions struct {
	// Device is the TUN device to capture from. Capture reads its first
	// queue, so nothing else may read that queue meanwhile. Capture does
	// not close it.
	Device *tun.Device
	// Loop does the reading; nil makes Capture start its own.
	Loop *loop.Loop
	// Output receives the pcap file (link type RAW, nanosecond
	// timestamps).
	Output io.Writer
	// Snaplen bounds each record (0: DefaultSnaplen).
	Snaplen int
	// Count stops the capture after that many packets were recorded; 0
	// means no limit.
	Count int
	// Filter, if set, is called on the loop's thread with each packet the
	// device read; only packets for which it returns true are recorded.
	// It must not keep the slice.
	Filter func(packet []byte) bool
	// Ready, if set, is closed once the device is being read, so a caller
	// can start the traffic it wants captured.
	Ready chan<- struct{}
}

// CaptureStats counts what Capture saw.
type CaptureStats struct {
	Read     int           // packets the device read
	Filtered int           // of them, rejected by the filter
	Recorder RecorderStats // written to the file, or dropped because the writer fell behind
	ReadErr  error         // the error that stopped reading, if any
}

// Capture writes what the device reads into a pcap file until ctx is done,
// Count packets were recorded, or reading the device fails. The reading is
// done on the event loop's thread; the file is written by a goroutine of
// its own. It returns nil when stopped by ctx or Count: a capture that
// ran until cancelled ended normally. Capture blocks its caller and is safe
// to call from any goroutine.
func Capture(ctx context.Context, opts CaptureOptions) (CaptureStats, error) {
	var st CaptureStats
	if opts.Device == nil || opts.Device.Fd() < 0 {
		return st, errors.New("replay: CaptureOptions.Device must be an open TUN device")
	}
	if opts.Output == nil {
		return st, errors.New("replay: CaptureOptions.Output is required")
	}
	rec, err := newRecorder(opts.Output, opts.Snaplen)
	if err != nil {
		return st, err
	}
	l := opts.Loop
	if l == nil {
		if l, err = loop.New(); err != nil {
			rec.Close()
			return st, fmt.Errorf("replay: starting a loop: %w", err)
		}
		defer l.Close()
	}
	c := &capturer{rec: rec, filter: opts.Filter, count: opts.Count, buf: make([]byte, 65536), done: make(chan struct{})}
	cfg := loop.PacketConfig{OnReady: c.onReady, Close: func() error { return nil }}
	if on, _ := opts.Device.PacketInfo(); on {
		cfg.Framer = piFramer{}
	}
	p, err := l.AttachPacketFD(opts.Device.Fd(), cfg)
	if err != nil {
		rec.Close()
		return st, fmt.Errorf("replay: attaching %s to the loop: %w", opts.Device.Name(), err)
	}
	if opts.Ready != nil {
		close(opts.Ready)
	}
	select {
	case <-ctx.Done():
	case <-c.done:
	case <-l.Done():
	}
	var derr error
	if err := l.Do(func() {
		st.Read, st.Filtered, st.ReadErr = c.read, c.filtered, c.err
		c.stopped = true
	}); err != nil {
		derr = fmt.Errorf("replay: %w", err)
	}
	if err := p.Close(); err != nil && derr == nil {
		derr = fmt.Errorf("replay: detaching from the loop: %w", err)
	}
	if err := rec.Close(); err != nil && derr == nil {
		derr = err
	}
	st.Recorder = rec.Stats()
	if derr == nil && st.ReadErr != nil {
		derr = fmt.Errorf("replay: reading %s: %w", opts.Device.Name(), st.ReadErr)
	}
	return st, derr
}

// capturer is Capture's state on the loop; loop-only but for done.
type capturer struct {
	rec      *recorder
	filter   func([]byte) bool
	count    int
	buf      []byte
	read     int
	filtered int
	recorded int
	err      error
	stopped  bool
	done     chan struct{} // closed when Count is reached or reading fails
}

func (c *capturer) onReady(p *loop.PacketFD, ev loop.Events) {
	for !c.stopped {
		n, err := p.Recv(c.buf)
		if err != nil {
			if !errors.Is(err, loop.ErrWouldBlock) {
				c.err = err
				c.finish()
			}
			return
		}
		now := time.Now()
		c.read++
		pkt := c.buf[:n]
		if c.filter != nil && !c.filter(pkt) {
			c.filtered++
			continue
		}
		c.rec.Record(now, pkt)
		c.recorded++
		if c.count > 0 && c.recorded >= c.count {
			c.finish()
			return
		}
	}
}

func (c *capturer) finish() {
	if !c.stopped {
		c.stopped = true
		close(c.done)
	}
}
