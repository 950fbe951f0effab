package utun

import (
	"errors"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	good := map[string]int{"utun0": 0, "utun7": 7, "utun10": 10, "utun65534": MaxUnit}
	for name, want := range good {
		got, err := ParseName(name)
		if err != nil || got != want {
			t.Errorf("ParseName(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, name := range []string{
		"", "utun", "tun0", "utun-1", "utun+1", "utun01", "utun00", "utun1a", "utun 1",
		"Utun1", "utun65535", "utun99999999999", "utun1\x00", strings.Repeat("utun1", 4), "ipsec0",
	} {
		if _, err := ParseName(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestCheckIfname(t *testing.T) {
	for _, ok := range []string{"u", "utun0", "en0", strings.Repeat("x", 15)} {
		if err := checkIfname("op", ok); err != nil {
			t.Errorf("checkIfname(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 16), "a\x00b"} {
		err := checkIfname("op", bad)
		var oe *OpError
		if !errors.Is(err, ErrInvalidName) || !errors.As(err, &oe) || oe.Op != "op" || oe.Name != bad {
			t.Errorf("checkIfname(%q) = %#v", bad, err)
		}
	}
}
