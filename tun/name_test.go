package tun_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tundra-go/tundra/tun"
)

// nameCases is shared with the privileged test that asks the kernel about
// the same names, so the two cannot drift apart. why is a fragment the
// error message must contain; "" means the name is valid.
var nameCases = []struct {
	name string
	why  string
}{
	{"", "empty"},
	{"a", ""},
	{"tun0", ""},
	{"wg-home_1.2", ""},
	{"abcdefghijklmno", ""}, // 15 bytes: the longest allowed
	{"abcdefghijklmnop", "16 bytes, the limit is 15"},
	{strings.Repeat("x", 40), "40 bytes"},
	{"tünnel", ""},                       // non-ASCII is fine to the kernel
	{"ab\u00e9cdefghijklm", ""},          // 15 bytes, 14 runes
	{"ab\u00e9cdefghijklmn", "16 bytes"}, // the limit counts bytes, not runes
	{".", "reserved"},
	{"..", "reserved"},
	{"...", ""},
	{".hidden", ""},
	{"a/b", "'/'"},
	{"/", "'/'"},
	{"a:b", "':'"},
	{"eth0:1", "':'"}, // alias syntax is not a name
	{"a b", "whitespace byte 0x20"},
	{" a", "whitespace byte 0x20 at offset 0"},
	{"a\tb", "0x09"},
	{"a\nb", "0x0a"},
	{"a\vb", "0x0b"},
	{"a\fb", "0x0c"},
	{"a\rb", "0x0d"},
	{"a\xa0b", "0xa0"},     // Latin-1 no-break space: the kernel's isspace says yes
	{"nb\u00a0sp", "0xa0"}, // its UTF-8 encoding, C2 A0, contains that byte
	{"tun\u0920", "0xa0"},  // DEVANAGARI LETTER TTHA is E0 A4 A0
	{"a\x85b", ""},         // NEL: unicode.IsSpace says yes, the kernel says no
	{"a\x1cb", ""},         // a control byte, but not a space to the kernel
	{"a\x00b", "NUL byte at offset 1"},
	{"tun%d", ""},
	{"%d", ""},
	{"a%db", ""},
	{"abcdefghijklm%d", ""}, // 15 bytes before expansion
	{"a%d%d", "'%' is only allowed once"},
	{"a%s", "'%' is only allowed once"},
	{"a%", "'%' is only allowed once"},
	{"%%d", "'%' is only allowed once"},
}

func TestValidateName(t *testing.T) {
	for _, tc := range nameCases {
		err := tun.ValidateName(tc.name)
		if tc.why == "" {
			if err != nil {
				t.Errorf("ValidateName(%q) = %v, want nil", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error about %q", tc.name, tc.why)
			continue
		}
		if !errors.Is(err, tun.ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, does not wrap ErrInvalidName", tc.name, err)
		}
		var oe *tun.OpError
		if !errors.As(err, &oe) || oe.Op != "validate name" || oe.Name != tc.name {
			t.Errorf("ValidateName(%q) = %#v, want *OpError{Op: \"validate name\", Name: %q}", tc.name, err, tc.name)
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ValidateName(%q) = %q, want it to mention %q", tc.name, err, tc.why)
		}
	}
}

func TestOpErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    *tun.OpError
		want string
	}{
		{&tun.OpError{Op: "TUNSETIFF", Name: "tun7", Err: errors.New("device or resource busy")}, "tun: TUNSETIFF tun7: device or resource busy"},
		{&tun.OpError{Op: "TUNGETFEATURES", Err: errors.New("x")}, "tun: TUNGETFEATURES: x"},
		{&tun.OpError{Op: "validate name", Name: "a b", Err: errors.New("x")}, `tun: validate name "a b": x`},
		{&tun.OpError{Op: "close"}, "tun: close"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	cause := errors.New("cause")
	if err := error(&tun.OpError{Op: "x", Err: cause}); !errors.Is(err, cause) {
		t.Errorf("errors.Is does not see through OpError")
	}
}
