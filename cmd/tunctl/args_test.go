package main

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func fakeUsers(name string) (int, bool) {
	ids := map[string]int{"nobody": 65534, "alice": 1000, "p": 4242}
	id, ok := ids[name]
	return id, ok
}

func fakeGroups(name string) (int, bool) {
	ids := map[string]int{"nogroup": 65534, "users": 100}
	id, ok := ids[name]
	return id, ok
}

// The original's getopt("bd:f:t:u:g:") grammar, its name-then-strtol ids,
// and this tunctl's options.
func TestParse(t *testing.T) {
	def := request{owner: -1, group: -1}
	for _, tc := range []struct {
		args []string
		want func(r *request)
	}{
		{nil, func(r *request) {}},
		{[]string{"-b"}, func(r *request) { r.brief = true }},
		{[]string{"-bt", "foo"}, func(r *request) { r.brief, r.name = true, "foo" }},
		{[]string{"-tfoo"}, func(r *request) { r.name = "foo" }},
		{[]string{"-t", "a", "-t", "b"}, func(r *request) { r.name = "b" }},
		{[]string{"-u", "nobody", "-g", "100"}, func(r *request) { r.owner, r.group = 65534, 100 }},
		{[]string{"-u", "0x10"}, func(r *request) { r.owner = 16 }},
		{[]string{"-u", "010"}, func(r *request) { r.owner = 8 }},
		{[]string{"-u", " 5"}, func(r *request) { r.owner = 5 }},
		{[]string{"-u", "4294967294"}, func(r *request) { r.owner = 4294967294 }},
		{[]string{"-gusers"}, func(r *request) { r.group = 100 }},
		{[]string{"-u", "p"}, func(r *request) { r.owner = 4242 }},
		{[]string{"-d", "tap0", "-f", "/dev/misc/net/tun"}, func(r *request) { r.delete, r.name, r.clone = true, "tap0", "/dev/misc/net/tun" }},
		{[]string{"-n", "-q", "-vnet-hdr", "-m", "1400", "-a", "10.0.0.1/24", "-up"}, func(r *request) {
			r.tun, r.mq, r.vnet, r.mtu, r.addr, r.up = true, true, true, 1400, netip.MustParsePrefix("10.0.0.1/24"), true
		}},
		{[]string{"-n", "-p"}, func(r *request) {}},
		{[]string{"-a", "fd00::1", "--peer", "fd00::2"}, func(r *request) {
			r.addr, r.peer = netip.MustParsePrefix("fd00::1/128"), netip.MustParseAddr("fd00::2")
		}},
		{[]string{"-h"}, func(r *request) { r.help = true }},
		{[]string{"--help"}, func(r *request) { r.help = true }},
		{[]string{"show"}, func(r *request) { r.show = true }},
		{[]string{"show", "-j", "tap3"}, func(r *request) { r.show, r.json, r.name = true, true, "tap3" }},
	} {
		want := def
		tc.want(&want)
		got, err := parse(tc.args, fakeUsers, fakeGroups)
		if err != nil || got != want {
			t.Errorf("parse(%q) = %+v, %v; want %+v", tc.args, got, err, want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-x"}, "tunctl: invalid option -- 'x'"},
		{[]string{"-t"}, "tunctl: option requires an argument -- 't'"},
		{[]string{"-d"}, "tunctl: option requires an argument -- 'd'"},
		{[]string{"extra"}, ""},
		{[]string{"--", "-b"}, ""},
		{[]string{"-u", "nosuchuser"}, "'nosuchuser' is neither a username nor a numeric uid."},
		{[]string{"-g", "nosuchgroup"}, "'nosuchgroup' is neither a groupname nor a numeric group."},
		{[]string{"-u", "5x"}, "'5x' is neither a username nor a numeric uid."},
		{[]string{"-u", "08"}, "'08' is neither"},
		{[]string{"-u", "0x"}, "'0x' is neither"},
		{[]string{"-u", ""}, "'' is neither"},
		{[]string{"-u", "-1"}, "'-1' is outside 0..4294967294"},
		{[]string{"-u", "4294967295"}, "outside"},
		{[]string{"-g", "4294967296"}, "outside"},
		{[]string{"-g", "99999999999999999999999"}, "outside"},
		{[]string{"-m", "67"}, "68..65535"},
		{[]string{"-m", "big"}, "68..65535"},
		{[]string{"-a", "10.0.0.1/33"}, "-a"},
		{[]string{"-a", "nope"}, "-a"},
		{[]string{"-peer", "10.0.0.2"}, "-peer needs -a"},
		{[]string{"-a", "10.0.0.1", "-peer", "x"}, "-peer"},
		{[]string{"-d", "tap0", "-up"}, "-d deletes one"},
		{[]string{"-peer"}, "requires an argument -- 'peer'"},
		{[]string{"show", "-x"}, "invalid option -- 'x'"},
		{[]string{"show", "a", "b"}, "at most one"},
	} {
		_, err := parse(tc.args, fakeUsers, fakeGroups)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(ue.msg, tc.msg) || (tc.msg == "" && ue.msg != "") {
			t.Errorf("parse(%q): %v; want a usage error with %q", tc.args, err, tc.msg)
		}
	}
}

// -h prints the usage on standard output and exits 0 (the original exits
// 1); a bad command line prints it on standard error and exits 1.
func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "Create: tunctl [-b]") || errb.Len() != 0 {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"-x"}, &out, &errb); code != 1 || out.Len() != 0 || !strings.HasPrefix(errb.String(), "tunctl: invalid option -- 'x'\nCreate: tunctl [-b]") {
		t.Errorf("-x: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
