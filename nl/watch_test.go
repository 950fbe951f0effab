package nl

import (
	"errors"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeEvents is an in-process eventSource: datagrams are queued on a
// channel, and wake closes another, as the eventfd stays readable.
type fakeEvents struct {
	ch       chan datagram
	woken    chan struct{}
	wakeOnce sync.Once
	mu       sync.Mutex
	closes   int
	inRecv   bool
}

var _ eventSource = (*fakeEvents)(nil)

func newFakeEvents() *fakeEvents {
	return &fakeEvents{ch: make(chan datagram, 64), woken: make(chan struct{})}
}

func (f *fakeEvents) recv(timeout time.Duration) ([]byte, uint32, error) {
	f.mu.Lock()
	if f.inRecv || f.closes > 0 {
		f.mu.Unlock()
		panic("fakeEvents: recv while another runs or after close")
	}
	f.inRecv = true
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inRecv = false; f.mu.Unlock() }()
	var after <-chan time.Time
	if timeout >= 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		after = tm.C
	}
	select {
	case <-f.woken:
		return nil, 0, nil
	default:
	}
	select {
	case d := <-f.ch:
		return d.b, d.from, d.err
	case <-f.woken:
		return nil, 0, nil
	case <-after:
		return nil, 0, nil
	}
}

func (f *fakeEvents) wake() error { f.wakeOnce.Do(func() { close(f.woken) }); return nil }

func (f *fakeEvents) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inRecv {
		panic("fakeEvents: close during recv")
	}
	f.closes++
	return nil
}

// event builds a notification message as the kernel multicasts it: nlmsg_pid
// is the port of whoever made the change, nlmsg_seq its request's.
func event(typ uint16, l Link) []byte {
	return marshalMessage(header{Type: typ, Seq: 7, Pid: 4242}, linkPayload(l))
}

func TestLinkWatcherEvents(t *testing.T) {
	src := newFakeEvents()
	w := &LinkWatcher{src: src}
	tunLink := Link{Index: 5, Name: "tun5", MTU: 1500, Type: 65534, Kind: "tun", Tun: &TunInfo{Type: 1, Persist: true}}
	bridgePort := event(rtmDelLink, Link{Index: 6, Name: "eth1"})
	bridgePort[nlmsgHdrLen] = 7 // AF_BRIDGE: a port left a bridge, the link stays
	addr := marshalMessage(header{Type: rtmNewAddr}, addrPayload(Addr{Index: 5, Prefix: mustPrefix("10.0.0.1/24")}))

	// Skipped whole: a datagram from another process.
	src.ch <- datagram{from: 999, b: event(rtmDelLink, tunLink)}
	// Skipped within a datagram: the bridge port and the address.
	src.ch <- datagram{b: joinBytes(event(rtmNewLink, tunLink), bridgePort, addr, event(rtmDelLink, tunLink))}
	evs, err := w.Next(time.Second)
	want := []LinkEvent{{Link: tunLink}, {Deleted: true, Link: tunLink}}
	if err != nil || !reflect.DeepEqual(evs, want) {
		t.Fatalf("Next = %+v, %v\nwant %+v", evs, err, want)
	}

	// A datagram with nothing for the watcher does not end the wait.
	src.ch <- datagram{b: addr}
	if evs, err := w.Next(20 * time.Millisecond); evs != nil || err != nil {
		t.Errorf("Next with only an address message: %+v, %v; want nil, nil", evs, err)
	}
	if evs, err := w.Next(0); evs != nil || err != nil {
		t.Errorf("Next(0) with nothing queued: %+v, %v", evs, err)
	}

	// ENOBUFS from the socket is an overrun; the watcher goes on.
	src.ch <- datagram{err: unix.ENOBUFS}
	_, err = w.Next(time.Second)
	ne := asError(t, err)
	if !errors.Is(err, ErrOverrun) || !errors.Is(err, unix.ENOBUFS) || ne.Op != "linkwatcher: recv" {
		t.Errorf("overrun: %v, want linkwatcher: recv ErrOverrun/ENOBUFS", err)
	}
	src.ch <- datagram{err: unix.EBADF}
	if _, err = w.Next(time.Second); !errors.Is(err, unix.EBADF) || errors.Is(err, ErrOverrun) {
		t.Errorf("other recv error: %v, want EBADF", err)
	}
	src.ch <- datagram{b: []byte{1, 2, 3}}
	if _, err = w.Next(time.Second); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed datagram: %v, want ErrMalformed", err)
	}
	src.ch <- datagram{b: event(rtmNewLink, tunLink)}
	if evs, err := w.Next(time.Second); err != nil || len(evs) != 1 {
		t.Errorf("after the errors: %+v, %v; want one event", evs, err)
	}
	if err := w.Close(); err != nil || src.closes != 1 {
		t.Errorf("Close: %v, %d closes", err, src.closes)
	}
}

func joinBytes(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Close interrupts a Next waiting without limit, frees the source only
// once it has returned, and every later call reports the close.
func TestLinkWatcherClose(t *testing.T) {
	src := newFakeEvents()
	w := &LinkWatcher{src: src}
	done := make(chan error, 1)
	go func() {
		_, err := w.Next(-1)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it wait; Close must work either way
	err := closeInterrupts(t, w, done)
	if ne := asError(t, err); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) || ne.Op != "linkwatcher" {
		t.Errorf("interrupted Next: %v, want linkwatcher: ErrClosed", err)
	}
	if _, err := w.Next(time.Second); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if err := w.Close(); err != nil || src.closes != 1 {
		t.Errorf("second Close: %v, %d closes, want 1", err, src.closes)
	}
}

// Concurrent Next calls are served one at a time (the fake panics on
// overlapping recvs) and each event goes to exactly one of them.
func TestLinkWatcherConcurrentNext(t *testing.T) {
	src := newFakeEvents()
	w := &LinkWatcher{src: src}
	const n = 40
	for i := range n {
		src.ch <- datagram{b: event(rtmNewLink, Link{Index: i + 1, Name: "x"})}
	}
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				evs, err := w.Next(20 * time.Millisecond)
				if err != nil || evs == nil {
					return
				}
				mu.Lock()
				for _, ev := range evs {
					seen[ev.Link.Index]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d distinct events seen, want %d", len(seen), n)
	}
	for i, c := range seen {
		if c != 1 {
			t.Errorf("event %d seen %d times", i, c)
		}
	}
	w.Close()
}

func TestParseLinkEvents(t *testing.T) {
	l := Link{Index: 3, Name: "t0", MTU: 1400, Type: 65534}
	if evs, err := parseLinkEvents(nil); err != nil || evs != nil {
		t.Errorf("empty datagram: %+v, %v", evs, err)
	}
	bad := event(rtmNewLink, l)
	bad = bad[:nlmsgHdrLen+8] // ifinfomsg cut short
	nativeEndian.PutUint32(bad, uint32(len(bad)))
	if _, err := parseLinkEvents(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("short ifinfomsg: %v, want ErrMalformed", err)
	}
	if _, err := parseLinkEvents(event(rtmNewLink, l)[:20]); !errors.Is(err, ErrMalformed) {
		t.Errorf("cut datagram: %v, want ErrMalformed", err)
	}
}

// closeInterrupts closes w from another goroutine while a Next is waiting
// (its result comes on done) and returns what that Next returned; it fails
// the test if Close or the Next are still waiting after 5s.
func closeInterrupts(t *testing.T, w *LinkWatcher, done <-chan error) error {
	t.Helper()
	closeDone := make(chan error, 1)
	go func() { closeDone <- w.Close() }()
	select {
	case err := <-closeDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close still waiting after 5s for the Next it should have interrupted")
	}
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waiting 5s after Close")
	}
	return nil
}
