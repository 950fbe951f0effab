package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"text/tabwriter"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/nl"
	"github.com/tundra-go/tundra/tun"
	"golang.org/x/sys/unix"
)

// IFLA_TUN_TYPE's values.
const (
	tunTypeTUN = 1
	tunTypeTAP = 2
)

// create makes (or, as the original does, attaches to) the device, applies
// this tunctl's link settings over netlink, then the owner, the group and
// persistence, and prints the original's message. The settings come
// before persistence so that a failure leaves no half-made device behind:
// a device this run created goes with its descriptor.
func create(r request, stdout, stderr io.Writer) error {
	runtime.LockOSThread() // one network namespace throughout
	defer runtime.UnlockOSThread()
	t, err := tun.Open(tun.Config{Name: r.name, TAP: !r.tun, MultiQueue: r.mq, VnetHdr: r.vnet, CloneDevice: r.clone})
	if err != nil {
		return err
	}
	// The Device methods of the front door do the rest; they take a
	// duplicate of the descriptor (tundra.Adopt closes what it is given).
	dup, err := unix.FcntlInt(uintptr(t.Fd()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Close()
		return fmt.Errorf("dup: %w", err)
	}
	dev, err := tundra.Adopt(dup)
	t.Close()
	if err != nil {
		unix.Close(dup)
		return err
	}
	defer dev.Close()
	name := dev.Name()

	// The original's default: with neither -u nor -g, the caller owns it.
	owner, group := r.owner, r.group
	if owner < 0 && group < 0 {
		owner = os.Geteuid()
	}
	steps := []func() error{}
	if r.mtu != 0 {
		steps = append(steps, func() error { return dev.SetMTU(r.mtu) })
	}
	if r.addr.IsValid() {
		steps = append(steps, func() error { return dev.AddAddr(r.addr, r.peer) })
	}
	if r.up {
		steps = append(steps, dev.Up)
	}
	if owner >= 0 {
		steps = append(steps, func() error { return dev.SetOwner(owner) })
	}
	if group >= 0 {
		steps = append(steps, func() error { return dev.SetGroup(group) })
	}
	steps = append(steps, func() error { return dev.SetPersist(true) })
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	if err := dev.Close(); err != nil {
		return err
	}

	if r.brief {
		fmt.Fprintln(stdout, name)
	} else {
		msg := fmt.Sprintf("Set '%s' persistent and owned by", name)
		if owner >= 0 {
			msg += fmt.Sprintf(" uid %d", owner)
		}
		if group >= 0 {
			msg += fmt.Sprintf(" gid %d", group)
		}
		fmt.Fprintln(stdout, msg)
	}
	if r.up {
		// Up with nobody attached: the kernel reports no carrier until a
		// program opens the device. Say so rather than let it look broken.
		if c, err := nl.Dial(); err == nil {
			l, err := c.LinkByName(name)
			c.Close()
			if err == nil && l.Flags&unix.IFF_UP != 0 && l.Flags&unix.IFF_RUNNING == 0 {
				w := stdout
				if r.brief {
					w = stderr // -b prints only the name on standard output
				}
				fmt.Fprintf(w, "'%s' is up but shows NO-CARRIER until a program opens it\n", name)
			}
		}
	}
	return nil
}

// remove clears persistence, as the original's -d does, after checking
// that the name is a TUN or TAP device: it attaches with the device's own
// type and queue mode, so TUN devices go as TAP ones do, and the device
// disappears once no program holds it.
func remove(r request, stdout io.Writer) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := tun.ValidateName(r.name); err != nil {
		return err
	}
	c, err := nl.Dial()
	if err != nil {
		return err
	}
	l, err := tunLink(c, r.name)
	c.Close()
	if err != nil {
		return err
	}
	cfg := tun.Config{Name: r.name, TAP: l.Tun.Type == tunTypeTAP, PacketInfo: l.Tun.PI,
		VnetHdr: l.Tun.VnetHdr, MultiQueue: l.Tun.MultiQueue, CloneDevice: r.clone}
	t, err := tun.Open(cfg)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("'%s' is in use: a program holds its only queue (%w); close it first", r.name, err)
	}
	if err != nil {
		return err
	}
	defer t.Close()
	if err := t.SetPersist(false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Set '%s' nonpersistent\n", r.name)
	return nil
}

// describeKind names what a link is, for -d on something that is not a
// TUN/TAP device.
func describeKind(l nl.Link) string {
	switch {
	case l.Kind != "":
		return "it is a " + l.Kind + " device"
	case l.Type == unix.ARPHRD_LOOPBACK:
		return "it is the loopback device"
	case l.Type == unix.ARPHRD_ETHER:
		return "it is an Ethernet device of a driver without a link kind"
	}
	return fmt.Sprintf("it is a device of ARPHRD type %d with no link kind", l.Type)
}

// ipInfoData is linkinfo.info_data as `ip -d -j link` prints it for a tun
// device (iproute2's iptuntap.c): numqueues and numdisabled only for a
// multi-queue device, user and group only when set, as a name when the
// user database knows the id and as a number otherwise.
type ipInfoData struct {
	Type        string  `json:"type"`
	PI          bool    `json:"pi"`
	VnetHdr     bool    `json:"vnet_hdr"`
	MultiQueue  bool    `json:"multi_queue"`
	NumQueues   *uint32 `json:"numqueues,omitempty"`
	NumDisabled *uint32 `json:"numdisabled,omitempty"`
	Persist     bool    `json:"persist"`
	User        any     `json:"user,omitempty"`
	Group       any     `json:"group,omitempty"`
}

type ipLink struct {
	Index    int    `json:"ifindex"`
	Name     string `json:"ifname"`
	LinkInfo struct {
		Kind string     `json:"info_kind"`
		Data ipInfoData `json:"info_data"`
	} `json:"linkinfo"`
}

func tunTypeName(t uint8) string {
	switch t {
	case tunTypeTUN:
		return "tun"
	case tunTypeTAP:
		return "tap"
	}
	return "UNKNOWN:" + strconv.Itoa(int(t))
}

func infoData(ti *nl.TunInfo) ipInfoData {
	d := ipInfoData{Type: tunTypeName(ti.Type), PI: ti.PI, VnetHdr: ti.VnetHdr, MultiQueue: ti.MultiQueue, Persist: ti.Persist}
	if ti.MultiQueue {
		q, dis := ti.NumQueues, ti.NumDisabledQueues
		d.NumQueues, d.NumDisabled = &q, &dis
	}
	if ti.HasOwner {
		d.User = ti.Owner
		if u, err := user.LookupId(strconv.FormatUint(uint64(ti.Owner), 10)); err == nil {
			d.User = u.Username
		}
	}
	if ti.HasGroup {
		d.Group = ti.Group
		if g, err := user.LookupGroupId(strconv.FormatUint(uint64(ti.Group), 10)); err == nil {
			d.Group = g.Name
		}
	}
	return d
}

// show lists the TUN/TAP devices of this network namespace (or the one
// named) from rtnetlink's IFLA_LINKINFO.
func show(r request, stdout io.Writer) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := nl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	var links []nl.Link
	if r.name != "" {
		l, err := tunLink(c, r.name)
		if err != nil {
			return err
		}
		links = []nl.Link{l}
	} else {
		all, err := c.Links()
		if err != nil {
			return err
		}
		for _, l := range all {
			if l.Kind == "tun" && l.Tun != nil {
				links = append(links, l)
			}
		}
	}
	if r.json {
		out := make([]ipLink, 0, len(links))
		for _, l := range links {
			il := ipLink{Index: l.Index, Name: l.Name}
			il.LinkInfo.Kind = l.Kind
			il.LinkInfo.Data = infoData(l.Tun)
			out = append(out, il)
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tOWNER\tGROUP\tPERSIST\tPI\tVNET_HDR\tMULTI_QUEUE\tQUEUES")
	for _, l := range links {
		ti := l.Tun
		owner, group := "-", "-"
		if ti.HasOwner {
			owner = strconv.FormatUint(uint64(ti.Owner), 10)
		}
		if ti.HasGroup {
			group = strconv.FormatUint(uint64(ti.Group), 10)
		}
		// The kernel counts queues for multi-queue devices only; for the
		// others, carrier says whether the one queue is attached.
		queues := strconv.FormatUint(uint64(ti.NumQueues), 10)
		switch {
		case ti.MultiQueue && ti.NumDisabledQueues > 0:
			queues += fmt.Sprintf(" (+%d detached)", ti.NumDisabledQueues)
		case !ti.MultiQueue && l.Flags&unix.IFF_UP != 0:
			queues = "0"
			if l.Flags&unix.IFF_RUNNING != 0 {
				queues = "1"
			}
		case !ti.MultiQueue:
			queues = "-" // down: the kernel does not say
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Name, tunTypeName(ti.Type), owner, group,
			yesNo(ti.Persist), yesNo(ti.PI), yesNo(ti.VnetHdr), yesNo(ti.MultiQueue), queues)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// tunLink is the TUN/TAP link named name, or an error that says there is
// no such link or what kind of link it is instead.
func tunLink(c *nl.Conn, name string) (nl.Link, error) {
	l, err := c.LinkByName(name)
	if errors.Is(err, unix.ENODEV) {
		return nl.Link{}, fmt.Errorf("no device named '%s' in this network namespace", name)
	}
	if err != nil {
		return nl.Link{}, err
	}
	if l.Kind != "tun" || l.Tun == nil {
		return nl.Link{}, fmt.Errorf("'%s' is not a TUN/TAP device: %s", name, describeKind(l))
	}
	return l, nil
}
