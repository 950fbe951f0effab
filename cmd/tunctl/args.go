package main

import (
	"fmt"
	"net/netip"
	"os/user"
	"strconv"
	"strings"
)

// usage is the original's text, word for word, then what this tunctl adds.
const usage = `Create: tunctl [-b] [-u owner] [-g group] [-t device-name] [-f tun-clone-device]
Delete: tunctl -d device-name [-f tun-clone-device]

The default tun clone device is /dev/net/tun - some systems use
/dev/misc/net/tun instead

-b will result in brief output (just the device name)

Beyond the original (over netlink; see docs/tunctl.md):
  -n              make a TUN device (IP packets) instead of TAP
  -p              make a TAP device (Ethernet frames; the default)
  -q              set multi_queue: whoever opens it may attach several queues
  -vnet-hdr       set vnet_hdr: packets carry a virtio-net header
  -m MTU          set the MTU (68..65535)
  -a ADDR[/LEN]   add an address (IPv4 also gets its broadcast address)
  -peer ADDR      the point-to-point peer of -a's address
  -up             set the link up (NO-CARRIER until a program opens it)
  -h              print this help and exit 0
List:   tunctl show [-j] [device-name]
`

// request is a parsed command line.
type request struct {
	help   bool
	show   bool // tunctl show
	json   bool // show -j
	delete bool
	brief  bool
	name   string // -t, -d, or show's operand
	clone  string // -f
	owner  int    // -1: not given
	group  int    // -1: not given
	tun    bool   // -n (TUN) rather than -p (TAP)
	mq     bool   // -q
	vnet   bool   // -vnet-hdr
	mtu    int    // 0: not given
	addr   netip.Prefix
	peer   netip.Addr
	up     bool
}

// usageError is a command line the original would answer with its usage:
// the message (if any), then the usage text, on standard error, exit 1.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// maxID is the largest uid or gid a device can be given: the kernel
// reserves 4294967295 ((uid_t)-1) for "none".
const maxID = 4294967294

// longOpts are the options of more than one letter. They are matched as
// whole words before any letters are split, so "-up" is always -up: a user
// named "p" is written "-u p".
var longOpts = map[string]bool{"-up": false, "-peer": true, "-vnet-hdr": false, "-help": false}

// parse reads the command line as the original's getopt("bd:f:t:u:g:")
// does (letters may be grouped, "-tname" and "-t name" are the same, GNU
// getopt moves operands behind the options, "--" ends them), plus this
// tunctl's options and the show subcommand.
func parse(args []string, lookupUser func(string) (int, bool), lookupGroup func(string) (int, bool)) (request, error) {
	r := request{owner: -1, group: -1}
	if len(args) > 0 && args[0] == "show" {
		r.show = true
		args = args[1:]
	}
	var operands []string
	var addr, peer string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			operands = append(operands, a)
			continue
		}
		word := strings.TrimPrefix(a, "-") // accept --up as well as -up
		word = "-" + strings.TrimPrefix(word, "-")
		if takesArg, ok := longOpts[word]; ok && !r.show {
			val := ""
			if takesArg {
				if i+1 >= len(args) {
					return r, usageError{fmt.Sprintf("tunctl: option requires an argument -- '%s'", word[1:])}
				}
				i++
				val = args[i]
			}
			switch word {
			case "-up":
				r.up = true
			case "-peer":
				peer = val
			case "-vnet-hdr":
				r.vnet = true
			case "-help":
				r.help = true
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			argOpt := strings.IndexByte("dftugam", c) >= 0
			if r.show {
				argOpt = false
			}
			val := ""
			if argOpt {
				switch {
				case j+1 < len(a):
					val = a[j+1:]
				case i+1 < len(args):
					i++
					val = args[i]
				default:
					return r, usageError{fmt.Sprintf("tunctl: option requires an argument -- '%c'", c)}
				}
			}
			if r.show {
				switch c {
				case 'j':
					r.json = true
				case 'h':
					r.help = true
				default:
					return r, usageError{fmt.Sprintf("tunctl: invalid option -- '%c'", c)}
				}
				continue
			}
			switch c {
			case 'b':
				r.brief = true
			case 'd':
				r.delete, r.name = true, val
			case 'f':
				r.clone = val
			case 't':
				r.name = val
			case 'u':
				id, err := parseID(val, "uid", "username", lookupUser)
				if err != nil {
					return r, err
				}
				r.owner = id
			case 'g':
				id, err := parseID(val, "group", "groupname", lookupGroup)
				if err != nil {
					return r, err
				}
				r.group = id
			case 'n':
				r.tun = true
			case 'p':
				r.tun = false
			case 'q':
				r.mq = true
			case 'm':
				n, err := strconv.Atoi(val)
				if err != nil || n < 68 || n > 65535 {
					return r, usageError{fmt.Sprintf("tunctl: -m %q: the MTU is a number in 68..65535", val)}
				}
				r.mtu = n
			case 'a':
				addr = val
			case 'h':
				r.help = true
			default:
				return r, usageError{fmt.Sprintf("tunctl: invalid option -- '%c'", c)}
			}
			if argOpt {
				break
			}
		}
	}
	if r.help {
		return r, nil
	}
	if r.show {
		if len(operands) > 1 {
			return r, usageError{fmt.Sprintf("tunctl: show takes at most one device name, not %q", operands)}
		}
		if len(operands) == 1 {
			r.name = operands[0]
		}
		return r, nil
	}
	if len(operands) > 0 {
		return r, usageError{}
	}
	if addr != "" {
		p, err := parsePrefix(addr)
		if err != nil {
			return r, usageError{"tunctl: -a " + err.Error()}
		}
		r.addr = p
	}
	if peer != "" {
		if !r.addr.IsValid() {
			return r, usageError{"tunctl: -peer needs -a: it is the other end of that address"}
		}
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return r, usageError{fmt.Sprintf("tunctl: -peer %q is not an IPv4 or IPv6 address", peer)}
		}
		r.peer = p
	}
	if r.delete && (r.mtu != 0 || r.addr.IsValid() || r.up) {
		return r, usageError{"tunctl: -m, -a and -up configure a device; -d deletes one"}
	}
	return r, nil
}

// parsePrefix reads ADDR or ADDR/LEN; without LEN the prefix is the
// host's (/32, /128), as tundra.Create has it.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not ADDR/LEN: %v", s, err)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 or IPv6 address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseID reads -u or -g as the original does: a name first, then a
// number as C's strtol(s, &end, 0) reads it (leading white space, a sign,
// 0x for hex, 0 for octal). Unlike the original it refuses the empty
// string (which it reads as 0), and numbers outside 0..4294967294, which
// it truncates to 32 bits, so that -1 and 4294967295 (the kernel's "no
// owner") became root and 4294967296 became 0.
func parseID(s, what, nameWord string, lookup func(string) (int, bool)) (int, error) {
	if id, ok := lookup(s); ok && s != "" {
		return id, nil
	}
	n, ok := strtol(s)
	if !ok {
		// The original's words, "uid" for -u and "group" for -g.
		num := "numeric " + what
		return 0, usageError{fmt.Sprintf("'%s' is neither a %s nor a %s.", s, nameWord, num)}
	}
	if n < 0 || n > maxID {
		return 0, usageError{fmt.Sprintf("'%s' is outside 0..%d: 4294967295 is the kernel's \"none\", and the original tunctl silently truncated such numbers", s, maxID)}
	}
	return int(n), nil
}

// strtol is C's strtol(s, &end, 0) with *end == '\0' required: true only
// if all of s is one number. Overflow saturates, as strtol does; the
// caller's range check refuses it.
func strtol(s string) (int64, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return 0, false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF"[:digits(base)], c) {
			return 0, false
		}
	}
	u, err := strconv.ParseUint(s, base, 63)
	if err != nil {
		u = 1 << 62 // out of range either way
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// digits is how many characters of "0123456789abcdefABCDEF" are digits in
// base.
func digits(base int) int {
	if base == 16 {
		return 22
	}
	return base
}

// lookupUser and lookupGroup resolve names through the system's user
// database (os/user: /etc/passwd and /etc/group, or NSS with cgo).
func lookupUser(name string) (int, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	id, err := strconv.Atoi(u.Uid)
	return id, err == nil
}

func lookupGroup(name string) (int, bool) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	id, err := strconv.Atoi(g.Gid)
	return id, err == nil
}
