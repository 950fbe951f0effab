package replay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// DefaultSnaplen is the snapshot length of a capture (Options.Snaplen,
// CaptureOptions.Snaplen) unless told otherwise: every packet a TUN device carries fits whole.
const DefaultSnaplen = 65535

// recorderQueue is how many packets may wait for the writer goroutine.
const recorderQueue = 4096

// RecorderStats counts what happened to the packets given to a capture
// file (Summary.Capture, CaptureStats.Recorder).
type RecorderStats struct {
	Packets uint64 // written to the file
	Dropped uint64 // not written: the writer was behind (queue full) or closed
}

// recorder writes IP packets to a classic pcap file of link type RAW (101),
// with nanosecond timestamps, which tcpdump -r, tshark -r and Wireshark
// open. Record copies the packet and hands it to a goroutine that does the
// file I/O, so it never blocks: an event loop thread can call it for every
// packet it reads. When the writer falls more than 4096 packets behind,
// Record drops the packet and counts it, as a capture buffer would.
//
// Record, Stats and Close are safe from any goroutine.
type recorder struct {
	snaplen int
	mu      sync.Mutex // orders Record against Close
	closed  bool
	ch      chan recorded
	done    chan struct{}
	err     error // set by the writer goroutine before done closes
	packets atomic.Uint64
	dropped atomic.Uint64
	pool    sync.Pool
}

type recorded struct {
	ts   time.Time
	orig int
	data *[]byte
}

// newRecorder writes the pcap file header to w and starts the writer
// goroutine. snaplen bounds the bytes kept of each packet (0 means
// DefaultSnaplen); longer packets are cut and their original length kept in
// the record, as libpcap does. The caller must Close the recorder; w is
// not closed.
func newRecorder(w io.Writer, snaplen int) (*recorder, error) {
	if snaplen <= 0 {
		snaplen = DefaultSnaplen
	}
	if snaplen > MaxRecordLen {
		return nil, fmt.Errorf("replay: snaplen %d exceeds %d", snaplen, MaxRecordLen)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(uint32(snaplen), layers.LinkTypeRaw); err != nil {
		return nil, fmt.Errorf("replay: writing the pcap header: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("replay: writing the pcap header: %w", err)
	}
	r := &recorder{snaplen: snaplen, ch: make(chan recorded, recorderQueue), done: make(chan struct{})}
	r.pool.New = func() any { b := make([]byte, 0, 2048); return &b }
	go r.write(bw, pw)
	return r, nil
}

func (r *recorder) write(bw *bufio.Writer, pw *pcapgo.Writer) {
	defer close(r.done)
	var err error
	for rec := range r.ch {
		if err == nil {
			data := *rec.data
			err = pw.WritePacket(gopacket.CaptureInfo{Timestamp: rec.ts, CaptureLength: len(data), Length: rec.orig}, data)
			if err == nil {
				r.packets.Add(1)
				if len(r.ch) == 0 {
					err = bw.Flush() // idle: let readers of a live file see it
				}
			}
		} else {
			r.dropped.Add(1)
		}
		r.pool.Put(rec.data)
	}
	if err == nil {
		err = bw.Flush()
	}
	r.err = err
}

// Record queues a copy of packet, captured at ts, for writing. It reports
// false when the packet was dropped (queue full or recorder closed). It
// keeps no reference to packet.
func (r *recorder) Record(ts time.Time, packet []byte) bool {
	n := min(len(packet), r.snaplen)
	bp := r.pool.Get().(*[]byte)
	*bp = append((*bp)[:0], packet[:n]...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.dropped.Add(1)
		return false
	}
	select {
	case r.ch <- recorded{ts: ts, orig: len(packet), data: bp}:
		return true
	default:
		r.dropped.Add(1)
		r.pool.Put(bp)
		return false
	}
}

// Stats returns the counts so far.
func (r *recorder) Stats() RecorderStats {
	return RecorderStats{Packets: r.packets.Load(), Dropped: r.dropped.Load()}
}

// errRecorderClosed is returned by Close after the first call.
var errRecorderClosed = errors.New("replay: recorder already closed")

// Close writes out every queued packet, flushes, and stops the writer
// goroutine. It returns the first write error, if any. Later calls return
// errRecorderClosed.
func (r *recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errRecorderClosed
	}
	r.closed = true
	close(r.ch)
	r.mu.Unlock()
	<-r.done
	if r.err != nil {
		return fmt.Errorf("replay: writing the capture: %w", r.err)
	}
	return nil
}
