package tundra

import (
	"errors"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/utun"
)

func TestUtunUnit(t *testing.T) {
	for _, tc := range []struct {
		addr string
		opts []Option
		unit int
		arg  string // refused argument, "" if accepted
	}{
		{"fd11:b7b7:4360::2", []Option{Peer("fd11:b7b7:4360::1")}, utun.AnyUnit, ""},
		{"10.0.0.1/24", []Option{Name("utun7")}, 7, ""},
		{"10.0.0.1/24", []Option{Name("utun%d")}, utun.AnyUnit, ""},
		{"10.0.0.1/24", []Option{Name("tun0")}, 0, "name"},
		{"10.0.0.1/24", []Option{Name("utun%dx")}, 0, "name"},
		{"10.0.0.1/24", []Option{Name("utun07")}, 0, "name"},
		{"10.0.0.1/24", []Option{TAP()}, 0, "tap"},
		{"10.0.0.1/24", []Option{PacketInfo()}, 0, "packet info"},
		{"10.0.0.1/24", []Option{Persist()}, 0, "persist"},
		{"10.0.0.1/24", []Option{Owner(1)}, 0, "persist"},
		{"10.0.0.1/24", []Option{Queues(2)}, 0, "queues"},
		{"fd00::1/64", []Option{Peer("fd00::2")}, 0, "prefix length"},
		{"fd00::1/64", nil, utun.AnyUnit, ""},
	} {
		s, err := resolve(tc.addr, tc.opts)
		if err != nil {
			t.Fatalf("%s: resolve: %v", tc.addr, err)
		}
		unit, err := utunUnit(s)
		if tc.arg == "" {
			if err != nil || unit != tc.unit {
				t.Errorf("%s %+v: %d, %v; want unit %d", tc.addr, s.tun, unit, err, tc.unit)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Arg != tc.arg || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s %+v: %v, want a refusal of %q", tc.addr, s.tun, err, tc.arg)
		} else if !strings.Contains(err.Error(), "macOS") {
			t.Errorf("%v does not say it is a macOS limit", err)
		}
	}
}
