// Package tuntest is an in-memory stand-in for a TUN device queue, as
// wireguard-go's tuntest is for its tun.Device: code that moves packets
// through the batch methods of *tundra.Queue (RecvBatch, SendBatch) can be
// unit-tested against a Queue of this package without CAP_NET_ADMIN and
// without a kernel device. The test plays the kernel: Inject hands packets
// to the code under test as if the kernel had routed them into the device,
// and Sent returns what the code wrote to it.
//
// The code under test takes the queue through an interface of its own
// with the two methods (see BatchQueue); *tundra.Queue and *Queue both
// satisfy it. Readiness is the test's business: with no descriptor there
// is nothing for a loop to poll, so a test calls the code's read handler
// itself (on the loop's thread, with loop.Loop.Do, when the handler does
// loop-only I/O on other descriptors).
package tuntest

import (
	"fmt"
	"sync"

	"github.com/tundra-go/tundra"
)

// BatchQueue is the packet I/O a forwarder needs of a device queue, with
// *tundra.Queue's contract: RecvBatch fills bufs[i][offset:] and sizes[i]
// and returns how many packets it read, or tundra.ErrWouldBlock when none
// is waiting; SendBatch writes bufs[i][offset:] and returns how many it
// wrote. offset is headroom the queue may use for its framing header.
type BatchQueue interface {
	RecvBatch(bufs [][]byte, sizes []int, offset int) (int, error)
	SendBatch(bufs [][]byte, offset int) (int, error)
}

var (
	_ BatchQueue = (*tundra.Queue)(nil)
	_ BatchQueue = (*Queue)(nil)
)

// Queue is a fake device queue. Its methods are safe from any goroutine;
// packets are copied in and out, so the caller keeps its buffers.
type Queue struct {
	mu   sync.Mutex
	in   [][]byte // injected, not yet read
	sent [][]byte // written, not yet collected
	// Refuse, when set, is SendBatch's verdict on each packet: a non-nil
	// error refuses it (as the kernel refuses a packet that is not IP),
	// and SendBatch returns it with the count of packets written before.
	Refuse func(pkt []byte) error
}

// NewQueue returns an empty fake queue.
func NewQueue() *Queue { return &Queue{} }

// Inject queues packets for RecvBatch, as the kernel would queue packets
// routed into the device.
func (q *Queue) Inject(pkts ...[]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range pkts {
		q.in = append(q.in, append([]byte(nil), p...))
	}
}

// Pending is how many injected packets are not yet read.
func (q *Queue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.in)
}

// Sent returns the packets written since the last call, in order, and
// forgets them.
func (q *Queue) Sent() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sent
	q.sent = nil
	return s
}

// RecvBatch reads injected packets into bufs[i][offset:], at most
// len(bufs), setting sizes[i]; with none waiting it returns
// tundra.ErrWouldBlock. A packet too large for its buffer fails the call
// with an error naming it, as a short buffer would on a device.
func (q *Queue) RecvBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.in) == 0 {
		return 0, tundra.ErrWouldBlock
	}
	n := 0
	for n < len(bufs) && n < len(sizes) && len(q.in) > 0 {
		p := q.in[0]
		if offset < 0 || offset+len(p) > len(bufs[n]) {
			if n > 0 {
				break
			}
			return 0, fmt.Errorf("tuntest: a %d-byte packet does not fit buffer 0 (%d bytes, offset %d)", len(p), len(bufs[n]), offset)
		}
		sizes[n] = copy(bufs[n][offset:], p)
		q.in = q.in[1:]
		n++
	}
	return n, nil
}

// SendBatch records bufs[i][offset:] as written, in order.
func (q *Queue) SendBatch(bufs [][]byte, offset int) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, b := range bufs {
		if offset < 0 || offset >= len(b) {
			return i, fmt.Errorf("tuntest: buffer %d holds no packet after offset %d", i, offset)
		}
		p := b[offset:]
		if q.Refuse != nil {
			if err := q.Refuse(p); err != nil {
				return i, err
			}
		}
		q.sent = append(q.sent, append([]byte(nil), p...))
	}
	return len(bufs), nil
}
