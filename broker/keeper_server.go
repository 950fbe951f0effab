//go:build unix

package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// keepPoll bounds how long the keeper waits for events before it checks
// whether the server is shutting down.
const keepPoll = 250 * time.Millisecond

// requesterKey is the context key of WithRequesterUID.
type requesterKey struct{}

// WithRequesterUID returns a context carrying the uid a device is being
// created for. The Server passes one to its CreateFunc, so that the
// creator can make the device the member's from its first moment
// (tundra.BrokerCreate sets it as the owner, TUNSETOWNER). Safe from any
// goroutine.
func WithRequesterUID(ctx context.Context, uid uint32) context.Context {
	return context.WithValue(ctx, requesterKey{}, uid)
}

// RequesterUID returns the uid WithRequesterUID stored in ctx, ok=false
// when there is none. Safe from any goroutine.
func RequesterUID(ctx context.Context) (uid uint32, ok bool) {
	uid, ok = ctx.Value(requesterKey{}).(uint32)
	return uid, ok
}

// claim makes a new device the member's before it is handed out: its
// owner is uid (the creator set it at birth; it is set again here on the
// descriptor, in case a CreateFunc did not), so that nobody else without
// CAP_NET_ADMIN can attach to it even where the clone device is
// world-writable; and its alias is the server's Mark, so that the keeper
// watches it and a restarted server finds it.
func (s *Server) claim(c Created, uid uint32) error {
	if err := setOwner(c.Fds[0], uid); err != nil {
		return fmt.Errorf("setting the owner of %s to uid %d: %w", quoteName(c.Name), uid, err)
	}
	if s.keeper == nil {
		return nil
	}
	if err := s.keeper.SetLinkAlias(c.Index, Mark(uid)); err != nil {
		return fmt.Errorf("marking %s as made for uid %d: %w", quoteName(c.Name), uid, err)
	}
	return nil
}

// recoverDevices runs once in NewServer: the devices an earlier run of
// the server made (marked with Mark) count against their uid's quota
// again if they are alive as made; those that persist or were given away
// are deleted, since their client's descriptors no longer keep them.
func (s *Server) recoverDevices() error {
	links, err := s.keeper.TunLinks()
	if err != nil {
		return fmt.Errorf("listing TUN/TAP devices: %w", err)
	}
	for _, l := range links {
		uid, ok := parseMark(l.Alias)
		if !ok {
			continue
		}
		if why := tampered(l, uid); l.Known && why != "" {
			s.reap(l, uid, why, "found at start")
			continue
		}
		s.devices.adopt(l.Index, uid, l.Name)
		s.log.Info("found a brokered device", "device", l.Name, "index", l.Index, "uid", uid)
	}
	return nil
}

// keep follows link events until the server shuts down, reaping every
// marked device that is made persistent or given another owner or group.
func (s *Server) keep() {
	defer close(s.keepDone)
	for s.ctx.Err() == nil {
		evs, err := s.keeper.NextTunEvents(keepPoll)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			if !errors.Is(err, ErrEventsLost) {
				s.log.Error("watching devices failed; re-reading them", "err", err)
				select { // do not spin on a persistent error
				case <-time.After(keepPoll):
				case <-s.ctx.Done():
					return
				}
			}
			s.resync()
			continue
		}
		for _, ev := range evs {
			if ev.Deleted {
				s.devices.forget(ev.Link.Index)
				continue
			}
			s.inspect(ev.Link)
		}
	}
}

// resync looks at every device after events were lost.
func (s *Server) resync() {
	links, err := s.keeper.TunLinks()
	if err != nil {
		s.log.Error("re-reading devices failed", "err", err)
		return
	}
	for _, l := range links {
		s.inspect(l)
	}
}

// inspect reaps l if it is a marked device that has been tampered with.
func (s *Server) inspect(l TunLink) {
	uid, ok := parseMark(l.Alias)
	if !ok {
		return
	}
	if !l.Known {
		s.unknownOnce.Do(func() {
			s.log.Error("the kernel does not report TUN attributes (IFLA_TUN_*, Linux 4.15 and later): brokered devices made persistent or given away cannot be noticed", "device", l.Name, "uid", uid)
		})
		return
	}
	if why := tampered(l, uid); why != "" {
		s.reap(l, uid, why, "changed")
	}
}

// reap deletes a brokered device and logs why, with its uid.
func (s *Server) reap(l TunLink, uid uint32, why, when string) {
	err := s.keeper.DeleteLink(l.Index)
	if errors.Is(err, unix.ENODEV) {
		err = nil // gone already
	}
	s.devices.forget(l.Index)
	if err != nil {
		s.log.Error("cannot delete a tampered brokered device", "device", l.Name, "index", l.Index, "uid", uid, "tampering", why, "err", err)
		return
	}
	s.log.Warn("reaped a brokered device", "device", l.Name, "index", l.Index, "uid", uid, "tampering", why, "when", when)
}
