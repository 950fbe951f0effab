package broker

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Inventory is the server's view of the host's interfaces. Its methods are
// called from many goroutines at once and must be safe for that.
type Inventory interface {
	// HostAddrs returns every address configured on the host's
	// interfaces.
	HostAddrs() ([]HostAddr, error)
	// HostRoutes returns every route of every routing table, IPv4 and
	// IPv6.
	HostRoutes() ([]HostRoute, error)
	// LinkExists reports whether an interface with this index exists.
	LinkExists(index int) (bool, error)
}

// errReserve is wrapped by reserve's error when it refuses: the uid holds
// its limit, or the prefix is being claimed by another request.
var errReserve = errors.New("refused")

// refusal is a reserve error wrapping errReserve whose text is only the
// reason.
type refusal struct{ msg string }

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == errReserve }

// tracker counts, per uid, the devices the server created that still
// exist, and the requests in progress, so that the per-uid quota and the
// prefix overlap check cannot be raced by concurrent requests. The server
// keeps no descriptor: existence is asked of the Inventory by index, and
// devices that vanished are pruned when counted.
type tracker struct {
	mu      sync.Mutex
	live    map[int]trackedDevice // by interface index
	pending map[*reservation]struct{}
}

type trackedDevice struct {
	uid  uint32
	name string
}

// reservation is a request in progress: it counts against its uid's quota
// and claims its prefix until commit or release.
type reservation struct {
	uid    uint32
	prefix netip.Prefix
	done   bool
}

func (t *tracker) init() {
	t.live = make(map[int]trackedDevice)
	t.pending = make(map[*reservation]struct{})
}

// reserve counts uid's devices and pending requests and, when they are
// below limit (a negative limit is no limit), records a reservation for
// prefix. A prefix overlapping that of another request in progress is
// refused too, since neither request's address is on the host yet for the
// policy to see (IPv6 link-local prefixes excepted: each link has its own).
func (t *tracker) reserve(uid uint32, limit int, prefix netip.Prefix, inv Inventory) (*reservation, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pm := prefix.Masked()
	for r := range t.pending {
		if r.prefix.Overlaps(pm) && !(pm.Addr().Is6() && pm.Addr().IsLinkLocalUnicast()) {
			return nil, &refusal{fmt.Sprintf("address: %v overlaps %v, claimed by a request in progress", prefix, r.prefix)}
		}
	}
	if limit >= 0 {
		var names []string
		for idx, d := range t.live {
			if d.uid != uid {
				continue
			}
			ok, err := inv.LinkExists(idx)
			if err != nil {
				return nil, fmt.Errorf("cannot count the devices of uid %d: %w", uid, err)
			}
			if !ok {
				delete(t.live, idx)
				continue
			}
			names = append(names, d.name)
		}
		n := len(names)
		for r := range t.pending {
			if r.uid == uid {
				n++
			}
		}
		if n >= limit {
			slices.Sort(names)
			return nil, &refusal{fmt.Sprintf("devices: uid %d holds %d devices (%s), the limit is %d", uid, n, describeNames(names, n), limit)}
		}
	}
	r := &reservation{uid: uid, prefix: pm}
	t.pending[r] = struct{}{}
	return r, nil
}

func describeNames(names []string, n int) string {
	s := strings.Join(names, ", ")
	if p := n - len(names); p > 0 {
		if s != "" {
			s += " and "
		}
		s += fmt.Sprintf("%d being created", p)
	}
	if s == "" {
		return "none"
	}
	return s
}

// commit turns a reservation into a tracked device.
func (t *tracker) commit(r *reservation, index int, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	delete(t.pending, r)
	t.live[index] = trackedDevice{uid: r.uid, name: name}
}

// adopt tracks a device made for uid that the server found on the host
// rather than made itself (a device marked by an earlier run).
func (t *tracker) adopt(index int, uid uint32, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.live[index] = trackedDevice{uid: uid, name: name}
}

// forget stops tracking a device that is gone.
func (t *tracker) forget(index int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.live, index)
}

// release drops a reservation that was not committed; after commit it does
// nothing.
func (t *tracker) release(r *reservation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	delete(t.pending, r)
}
