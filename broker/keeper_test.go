//go:build unix

package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKeeper is an Inventory and DeviceKeeper over an in-memory set of
// TUN devices, with events fed by the test.
type fakeKeeper struct {
	mu      sync.Mutex
	links   map[int]TunLink
	deleted []int
	events  chan []TunEvent
	lost    chan struct{}
}

func newFakeKeeper(links ...TunLink) *fakeKeeper {
	k := &fakeKeeper{links: map[int]TunLink{}, events: make(chan []TunEvent, 4), lost: make(chan struct{}, 1)}
	for _, l := range links {
		k.links[l.Index] = l
	}
	return k
}

func (k *fakeKeeper) HostAddrs() ([]HostAddr, error)   { return nil, nil }
func (k *fakeKeeper) HostRoutes() ([]HostRoute, error) { return nil, nil }
func (k *fakeKeeper) LinkExists(i int) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.links[i]
	return ok, nil
}
func (k *fakeKeeper) TunLinks() ([]TunLink, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []TunLink
	for _, l := range k.links {
		out = append(out, l)
	}
	return out, nil
}
func (k *fakeKeeper) SetLinkAlias(i int, a string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[i]
	l.Alias = a
	k.links[i] = l
	return nil
}
func (k *fakeKeeper) DeleteLink(i int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.links, i)
	k.deleted = append(k.deleted, i)
	return nil
}
func (k *fakeKeeper) NextTunEvents(timeout time.Duration) ([]TunEvent, error) {
	select {
	case evs := <-k.events:
		return evs, nil
	case <-k.lost:
		return nil, fmt.Errorf("overrun: %w", ErrEventsLost)
	case <-time.After(timeout):
		return nil, nil
	}
}
func (k *fakeKeeper) set(l TunLink) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.links[l.Index] = l
}
func (k *fakeKeeper) waitDeleted(t *testing.T, want ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		k.mu.Lock()
		got := slices.Clone(k.deleted)
		k.mu.Unlock()
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitFor waits up to 10 s for want to appear in the log: the keeper
// logs a reap after the deletion a test waits for.
func (s *syncBuf) waitFor(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.String(), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("log lacks %s:\n%s", want, s.String())
			return
		}
	}
}

// The keeper without a kernel: what a restarted server finds, an event
// reporting a tampered device, and lost events followed by a re-read.
func TestKeeper(t *testing.T) {
	live := TunLink{Index: 10, Name: "tun0", Alias: Mark(1000), Known: true, Owner: 1000, HasOwner: true}
	orphan := TunLink{Index: 11, Name: "tun1", Alias: Mark(1000), Known: true, Persist: true, Owner: 1000, HasOwner: true}
	foreign := TunLink{Index: 12, Name: "tap9", Alias: "mine", Known: true, Persist: true}
	given := TunLink{Index: 13, Name: "tun3", Alias: Mark(1001), Known: true, Owner: 5, HasOwner: true}
	k := newFakeKeeper(live, orphan, foreign, given)
	var logs syncBuf
	s, err := NewServer(Config{
		Create:    func(context.Context, Request) (Created, error) { return Created{}, fmt.Errorf("unused") },
		Group:     "4242",
		Inventory: k,
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k.waitDeleted(t, 11, 13)
	if _, err := s.devices.reserve(1000, 1, pfx("fd00::/64"), k); err == nil || !strings.Contains(err.Error(), "uid 1000 holds 1 devices (tun0)") {
		t.Errorf("quota after the restart: %v", err)
	}
	for _, want := range []string{`msg="found a brokered device" device=tun0 index=10 uid=1000`,
		`msg="reaped a brokered device" device=tun1 index=11 uid=1000 tampering="made persistent" when="found at start"`,
		`device=tun3 index=13 uid=1001 tampering="owner changed to 5"`} {
		logs.waitFor(t, want)
	}

	// An event: tun0's group was set.
	g := live
	g.Group, g.HasGroup = 7, true
	k.set(g)
	k.events <- []TunEvent{{Link: foreign}, {Link: g}}
	k.waitDeleted(t, 10, 11, 13)
	logs.waitFor(t, `device=tun0 index=10 uid=1000 tampering="group set to 7" when=changed`)

	// Lost events: the keeper re-reads every device.
	p := TunLink{Index: 14, Name: "tun4", Alias: Mark(1000), Known: true, Owner: 1000, HasOwner: true, Persist: true}
	k.set(p)
	k.set(TunLink{Index: 15, Name: "tun5", Alias: Mark(1000), Known: false}) // no TUN attributes: cannot judge
	k.lost <- struct{}{}
	k.waitDeleted(t, 10, 11, 13, 14)
	s.Close() // waits for the keeper: its re-read is over
	k.waitDeleted(t, 10, 11, 13, 14)
}

func TestMark(t *testing.T) {
	for _, tc := range []struct {
		alias string
		uid   uint32
		ok    bool
	}{
		{Mark(0), 0, true},
		{Mark(4294967294), 4294967294, true},
		{"tundra-broker uid=1000", 1000, true},
		{"tundra-broker uid=01000", 0, false},
		{"tundra-broker uid=1000 ", 0, false},
		{"tundra-broker uid=-1", 0, false},
		{"tundra-broker uid=4294967296", 0, false},
		{"tundra-broker uid=", 0, false},
		{"x tundra-broker uid=1", 0, false},
		{"", 0, false},
	} {
		uid, ok := parseMark(tc.alias)
		if uid != tc.uid || ok != tc.ok {
			t.Errorf("parseMark(%q) = %d, %v; want %d, %v", tc.alias, uid, ok, tc.uid, tc.ok)
		}
	}
	for _, tc := range []struct {
		l    TunLink
		want string
	}{
		{TunLink{Owner: 7, HasOwner: true}, ""},
		{TunLink{Owner: 7, HasOwner: true, Persist: true, HasGroup: true, Group: 3}, "made persistent, group set to 3"},
		{TunLink{Owner: 8, HasOwner: true}, "owner changed to 8"},
		{TunLink{}, "no owner"},
	} {
		if got := tampered(tc.l, 7); got != tc.want {
			t.Errorf("tampered(%+v) = %q, want %q", tc.l, got, tc.want)
		}
	}
}
