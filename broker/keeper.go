package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TunLink is a TUN or TAP device as the kernel reports it, with the
// attributes the Server watches on the devices it made. A plain value.
type TunLink struct {
	Index int
	Name  string
	// Alias is the interface alias (IFLA_IFALIAS), where the Server keeps
	// its ownership mark (see Mark).
	Alias string
	// Known is false when the kernel did not report the TUN attributes
	// (kernels before 4.15); the fields below are then meaningless.
	Known    bool
	Persist  bool
	Owner    uint32
	HasOwner bool
	Group    uint32
	HasGroup bool
	Queues   uint32
}

// TunEvent is a change to a TUN or TAP device: created or changed, or
// Deleted (then only Index and Name are meaningful).
type TunEvent struct {
	Deleted bool
	Link    TunLink
}

// ErrEventsLost is returned (wrapped) by DeviceKeeper.NextTunEvents when
// the kernel dropped events; the caller then re-reads every device with
// TunLinks.
var ErrEventsLost = errors.New("link events were lost")

// DeviceKeeper lets the Server follow the devices it made after handing
// them out: mark them, notice when one is made persistent or given to
// another owner or group, and delete it. On Linux the Server requires its
// Inventory to implement it; NetlinkInventory does. TunLinks, SetLinkAlias
// and DeleteLink may be called from any goroutine; NextTunEvents is called
// from one goroutine at a time.
type DeviceKeeper interface {
	// TunLinks returns every TUN and TAP device.
	TunLinks() ([]TunLink, error)
	// SetLinkAlias sets the interface alias of the device with this
	// index.
	SetLinkAlias(index int, alias string) error
	// DeleteLink deletes the interface with this index.
	DeleteLink(index int) error
	// NextTunEvents waits up to timeout for changes to TUN and TAP
	// devices and returns them; nil, nil on timeout. An error wrapping
	// ErrEventsLost means some were lost.
	NextTunEvents(timeout time.Duration) ([]TunEvent, error)
}

// markPrefix starts the interface alias of every device the Server made.
const markPrefix = "tundra-broker uid="

// Mark returns the interface alias the Server gives a device it made for
// uid: "tundra-broker uid=1000". Only CAP_NET_ADMIN can change an alias,
// so a member cannot forge or remove it; a restarted Server reads it to
// find its devices again.
func Mark(uid uint32) string { return markPrefix + strconv.FormatUint(uint64(uid), 10) }

// parseMark returns the uid of a Mark, ok=false for any other alias.
func parseMark(alias string) (uid uint32, ok bool) {
	s, found := strings.CutPrefix(alias, markPrefix)
	if !found {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return uint32(n), true
}

// tampered says how a device made for uid has been changed so that it
// could outlive its client's descriptors or be attached by someone else,
// or "" when it has not: the broker never makes a device persistent and
// gives it no group, and its owner is uid.
func tampered(l TunLink, uid uint32) string {
	var why []string
	if l.Persist {
		why = append(why, "made persistent")
	}
	if l.HasOwner && l.Owner != uid {
		why = append(why, fmt.Sprintf("owner changed to %d", l.Owner))
	}
	if !l.HasOwner {
		why = append(why, "no owner")
	}
	if l.HasGroup {
		why = append(why, fmt.Sprintf("group set to %d", l.Group))
	}
	return strings.Join(why, ", ")
}
