package tundra

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestResolveAccepts(t *testing.T) {
	for _, tc := range []struct {
		what   string
		plan   func() (plan, error)
		prefix string
		peer   string
		mtu    int
		nodad  bool
		queues int
	}{
		{"IPv6 string, host prefix", func() (plan, error) { return resolve("fd11:b7b7:4360::2", nil) },
			"fd11:b7b7:4360::2/128", "", 0, true, 1},
		{"IPv4 prefix string", func() (plan, error) { return resolve("10.9.0.1/24", nil) },
			"10.9.0.1/24", "", 0, false, 1},
		{"netip.Addr with peer", func() (plan, error) {
			return resolve(netip.MustParseAddr("10.9.0.1"), []Option{Peer("10.9.0.2")})
		}, "10.9.0.1/32", "10.9.0.2", 0, false, 1},
		{"netip.Prefix with netip.Addr peer", func() (plan, error) {
			return resolve(netip.MustParsePrefix("fd00::1/64"), []Option{Peer(netip.MustParseAddr("fd00::2"))})
		}, "fd00::1/64", "fd00::2", 0, true, 1},
		{"netmask", func() (plan, error) { return resolve("10.9.0.1", []Option{Netmask("255.255.252.0")}) },
			"10.9.0.1/22", "", 0, false, 1},
		{"netip.Addr netmask agreeing with the prefix", func() (plan, error) {
			return resolve("10.9.0.1/16", []Option{Netmask(netip.MustParseAddr("255.255.0.0"))})
		}, "10.9.0.1/16", "", 0, false, 1},
		{"IPv6 netmask", func() (plan, error) { return resolve("fd00::1", []Option{Netmask("ffff:ffff:ffff:ffff::")}) },
			"fd00::1/64", "", 0, true, 1},
		{"prefix length", func() (plan, error) { return resolve("fd00::1", []Option{PrefixLen(48)}) },
			"fd00::1/48", "", 0, true, 1},
		{"MTU at the IPv6 minimum", func() (plan, error) { return resolve("fd00::1", []Option{MTU(1280)}) },
			"fd00::1/128", "", 1280, true, 1},
		{"MTU 68 on IPv4", func() (plan, error) { return resolve("10.0.0.1", []Option{MTU(68)}) },
			"10.0.0.1/32", "", 68, false, 1},
		{"MTU 65535", func() (plan, error) { return resolve("10.0.0.1", []Option{MTU(65535)}) },
			"10.0.0.1/32", "", 65535, false, 1},
		{"KeepDAD", func() (plan, error) { return resolve("fd00::1", []Option{KeepDAD()}) },
			"fd00::1/128", "", 0, false, 1},
		{"queues", func() (plan, error) { return resolve("fd00::1", []Option{Queues(4)}) },
			"fd00::1/128", "", 0, true, 4},
		{"link-local", func() (plan, error) { return resolve("fe80::1/64", nil) },
			"fe80::1/64", "", 0, true, 1},
	} {
		t.Run(tc.what, func(t *testing.T) {
			s, err := tc.plan()
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got := s.prefix().String(); got != tc.prefix {
				t.Errorf("prefix %s, want %s", got, tc.prefix)
			}
			gotPeer := ""
			if s.peer.IsValid() {
				gotPeer = s.peer.String()
			}
			if gotPeer != tc.peer {
				t.Errorf("peer %q, want %q", gotPeer, tc.peer)
			}
			if s.mtu != tc.mtu || s.nodad != tc.nodad || s.queues != tc.queues {
				t.Errorf("mtu %d nodad %v queues %d, want %d %v %d", s.mtu, s.nodad, s.queues, tc.mtu, tc.nodad, tc.queues)
			}
			if s.tun.MultiQueue != (tc.queues > 1) {
				t.Errorf("MultiQueue %v for %d queues", s.tun.MultiQueue, tc.queues)
			}
		})
	}
}

func TestResolveOptionsReachTheTunConfig(t *testing.T) {
	s, err := resolve("10.1.2.3/24", []Option{Name("tundra%d"), TAP(), PacketInfo(), Exclusive(), Persist(), Owner(1000), Group(2000)})
	if err != nil {
		t.Fatal(err)
	}
	if s.tun.Name != "tundra%d" || !s.tun.TAP || !s.tun.PacketInfo || !s.tun.Exclusive || s.tun.MultiQueue {
		t.Errorf("tun config %+v", s.tun)
	}
	if !s.persist || s.owner != 1000 || s.group != 2000 {
		t.Errorf("persist %v owner %d group %d", s.persist, s.owner, s.group)
	}
	s, err = resolve("10.1.2.3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.owner != -1 || s.group != -1 || s.persist {
		t.Errorf("defaults: owner %d group %d persist %v, want -1 -1 false", s.owner, s.group, s.persist)
	}
}

func TestResolveRefuses(t *testing.T) {
	for _, tc := range []struct {
		what string
		err  func() error
		arg  string
		says string // a fragment the message must contain
	}{
		{"garbage address", func() error { _, err := resolve("10.9.0.300", nil); return err }, "address", "10.9.0.300"},
		{"empty address", func() error { _, err := resolve("", nil); return err }, "address", "not an IPv4 or IPv6 address"},
		{"whitespace", func() error { _, err := resolve(" 10.0.0.1", nil); return err }, "address", "whitespace"},
		{"bad prefix", func() error { _, err := resolve("10.0.0.1/33", nil); return err }, "address", "prefix length"},
		{"zero netip.Addr", func() error { _, err := resolve(netip.Addr{}, nil); return err }, "address", "zero"},
		{"zero netip.Prefix", func() error { _, err := resolve(netip.Prefix{}, nil); return err }, "address", "zero"},
		{"zone", func() error { _, err := resolve("fe80::1%eth0", nil); return err }, "address", "zone"},
		{"4in6", func() error { _, err := resolve("::ffff:10.0.0.1", nil); return err }, "address", "give the IPv4 address 10.0.0.1"},
		{"unspecified", func() error { _, err := resolve("::", nil); return err }, "address", "unspecified"},
		{"multicast", func() error { _, err := resolve("224.0.0.1", nil); return err }, "address", "multicast"},
		{"broadcast", func() error { _, err := resolve("255.255.255.255", nil); return err }, "address", "broadcast"},
		{"mixed-family peer", func() error { _, err := resolve("fd00::1", []Option{Peer("10.0.0.2")}); return err }, "peer", "different families"},
		{"unparsable peer", func() error { _, err := resolve("fd00::1", []Option{Peer("fd00::zz")}); return err }, "peer", "fd00::zz"},
		{"peer is self", func() error { _, err := resolve("10.0.0.1", []Option{Peer("10.0.0.1")}); return err }, "peer", "own address"},
		{"multicast peer", func() error { _, err := resolve("fd00::1", []Option{Peer("ff02::1")}); return err }, "peer", "multicast"},
		{"non-contiguous netmask", func() error { _, err := resolve("10.0.0.1", []Option{Netmask("255.0.255.0")}); return err }, "netmask", "not contiguous"},
		{"IPv6 netmask for IPv4", func() error { _, err := resolve("10.0.0.1", []Option{Netmask("ffff::")}); return err }, "netmask", "not an IPv4 netmask"},
		{"IPv4 netmask for IPv6", func() error { _, err := resolve("fd00::1", []Option{Netmask("255.255.255.0")}); return err }, "netmask", "not an IPv6 netmask"},
		{"garbage netmask", func() error { _, err := resolve("10.0.0.1", []Option{Netmask("/24")}); return err }, "netmask", "not a netmask"},
		{"netmask contradicting the prefix", func() error {
			_, err := resolve("10.0.0.1/24", []Option{Netmask("255.255.0.0")})
			return err
		}, "netmask", "contradicts"},
		{"prefix length contradicting", func() error { _, err := resolve("10.0.0.1/24", []Option{PrefixLen(16)}); return err }, "prefix length", "contradicts"},
		{"prefix length too long", func() error { _, err := resolve("10.0.0.1", []Option{PrefixLen(33)}); return err }, "prefix length", "1..32"},
		{"negative prefix length", func() error { _, err := resolve("fd00::1", []Option{PrefixLen(-1)}); return err }, "prefix length", "1..128"},
		{"zero prefix length", func() error { _, err := resolve("10.0.0.1/0", nil); return err }, "prefix length", "every IPv4 address"},
		{"zero netmask", func() error { _, err := resolve("10.0.0.1", []Option{Netmask("0.0.0.0")}); return err }, "prefix length", "/0"},
		{"MTU too small", func() error { _, err := resolve("10.0.0.1", []Option{MTU(67)}); return err }, "mtu", "68..65535"},
		{"MTU too big", func() error { _, err := resolve("10.0.0.1", []Option{MTU(65536)}); return err }, "mtu", "68..65535"},
		{"IPv6 below 1280", func() error { _, err := resolve("fd00::1", []Option{MTU(1279)}); return err }, "mtu", "1280"},
		{"name of 16 bytes", func() error { _, err := resolve("fd00::1", []Option{Name("abcdefghijklmnop")}); return err }, "name", "16"},
		{"name with slash", func() error { _, err := resolve("fd00::1", []Option{Name("a/b")}); return err }, "name", "/"},
		{"name with space", func() error { _, err := resolve("fd00::1", []Option{Name("a b")}); return err }, "name", "whitespace"},
		{"queues 0", func() error { _, err := resolve("fd00::1", []Option{Queues(0)}); return err }, "queues", "1..256"},
		{"queues 257", func() error { _, err := resolve("fd00::1", []Option{Queues(257)}); return err }, "queues", "1..256"},
		{"negative owner", func() error { _, err := resolve("fd00::1", []Option{Owner(-1)}); return err }, "owner", "uid -1"},
		{"owner too big", func() error { _, err := resolve("fd00::1", []Option{Owner(1 << 32)}); return err }, "owner", "outside"},
		{"negative group", func() error { _, err := resolve("fd00::1", []Option{Group(-5)}); return err }, "group", "gid -5"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			err := tc.err()
			if err == nil {
				t.Fatal("accepted")
			}
			var e *Error
			if !errors.As(err, &e) || e.Arg != tc.arg || e.Op != "create" {
				t.Fatalf("%v: want an *Error for argument %q", err, tc.arg)
			}
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%v does not match ErrInvalidArgument", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.says) || !strings.HasPrefix(msg, "tundra: create: "+tc.arg+": ") {
				t.Errorf("message %q: want the prefix %q and %q in it", msg, "tundra: create: "+tc.arg+": ", tc.says)
			}
		})
	}
}

func TestMaskBits(t *testing.T) {
	for mask, want := range map[string]int{
		"255.255.255.255": 32, "255.255.255.0": 24, "255.128.0.0": 9, "0.0.0.0": 0,
		"ffff:ffff:ffff:ffff::": 64, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": 128, "fe00::": 7,
	} {
		got, err := maskBits(netip.MustParseAddr(mask))
		if err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", mask, got, err, want)
		}
	}
	for _, bad := range []string{"255.0.255.0", "0.0.0.1", "ffff::1", "127.0.0.0"} {
		if _, err := maskBits(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// Options are applied in order; the zero Option is ignored.
func TestResolveZeroOptionAndOrder(t *testing.T) {
	s, err := resolve("10.0.0.1", []Option{{}, MTU(1000), MTU(1400)})
	if err != nil || s.mtu != 1400 {
		t.Fatalf("mtu %d, %v: want the last MTU", s.mtu, err)
	}
}
