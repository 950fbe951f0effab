package tuntest_test

import (
	"errors"
	"testing"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/tuntest"
)

// The fake keeps *tundra.Queue's batch contract: ErrWouldBlock when empty,
// packets after the headroom, at most len(bufs) per call, and what was
// sent in order, without the headroom.
func TestQueueBatchContract(t *testing.T) {
	q := tuntest.NewQueue()
	bufs := [][]byte{make([]byte, 16), make([]byte, 16)}
	sizes := make([]int, 2)
	if _, err := q.RecvBatch(bufs, sizes, 4); !errors.Is(err, tundra.ErrWouldBlock) {
		t.Errorf("empty queue: %v, want ErrWouldBlock", err)
	}
	q.Inject([]byte("a"), []byte("bb"), []byte("ccc"))
	n, err := q.RecvBatch(bufs, sizes, 4)
	if err != nil || n != 2 || string(bufs[0][4:4+sizes[0]]) != "a" || string(bufs[1][4:4+sizes[1]]) != "bb" || q.Pending() != 1 {
		t.Errorf("RecvBatch = %d, %v, sizes %v, %d pending", n, err, sizes, q.Pending())
	}
	if n, err := q.SendBatch([][]byte{[]byte("hdrX"), []byte("hdrYZ")}, 3); n != 2 || err != nil {
		t.Errorf("SendBatch = %d, %v", n, err)
	}
	if s := q.Sent(); len(s) != 2 || string(s[0]) != "X" || string(s[1]) != "YZ" {
		t.Errorf("Sent = %q", s)
	}
	if s := q.Sent(); len(s) != 0 {
		t.Errorf("Sent twice: %q", s)
	}
	if _, err := q.SendBatch([][]byte{[]byte("hdr")}, 3); err == nil {
		t.Error("an empty packet was accepted")
	}
}
