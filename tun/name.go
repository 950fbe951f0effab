package tun

import (
	"fmt"
	"strings"
)

// maxNameLen is IFNAMSIZ (16) less the terminating NUL the kernel needs.
const maxNameLen = 15

// ValidateName reports whether the kernel would accept name for a new
// interface, with an error (an *OpError wrapping ErrInvalidName) that says
// what is wrong. It applies the rules of the kernel's dev_valid_name and of
// its "%d" pattern expansion:
//
//   - the name must not be empty (ValidateName("") is an error; leave
//     Config.Name empty instead to let the kernel choose);
//   - at most 15 bytes: IFNAMSIZ is 16 and includes the terminating NUL;
//   - not "." or "..";
//   - no '/', no ':', and no byte the kernel's isspace accepts: '\t', '\n',
//     '\v', '\f', '\r', ' ' and 0xA0 (the kernel's ctype table is Latin-1,
//     so a UTF-8 name whose encoding contains byte 0xA0, such as U+00A0 or
//     U+0920, is refused too);
//   - no NUL byte, which C would silently treat as the end of the name;
//   - at most one '%', and only as "%d", which the kernel replaces with the
//     lowest free number ("tun%d" becomes "tun0", "tun1", ...).
//
// The checks work on bytes, as the kernel does; any other byte, including
// control characters (an escape sequence, which `ip link` prints raw to a
// terminal) and non-ASCII UTF-8, is allowed. These are the kernel's rules
// and deliberately no more; a caller that takes names from others should
// be stricter (the broker allows only [A-Za-z0-9._-] and one "%d").
// ValidateName is pure and safe to call from any goroutine.
func ValidateName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return &OpError{Op: "validate name", Name: name, Err: fmt.Errorf("%w: %s", ErrInvalidName, reason)}
	}
	return nil
}

func nameProblem(name string) string {
	switch {
	case name == "":
		return "name is empty (leave Config.Name empty to let the kernel choose one)"
	case len(name) > maxNameLen:
		return fmt.Sprintf("name is %d bytes, the limit is %d (IFNAMSIZ is 16 including the NUL)", len(name), maxNameLen)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is reserved", name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == 0:
			return fmt.Sprintf("NUL byte at offset %d", i)
		case c == '/' || c == ':':
			return fmt.Sprintf("%q at offset %d is not allowed", c, i)
		case kernelIsSpace(c):
			return fmt.Sprintf("whitespace byte 0x%02x at offset %d is not allowed", c, i)
		}
	}
	if p := strings.IndexByte(name, '%'); p >= 0 {
		if p+1 >= len(name) || name[p+1] != 'd' || strings.IndexByte(name[p+2:], '%') >= 0 {
			return "'%' is only allowed once, as \"%d\" (the kernel fills in a number)"
		}
	}
	return ""
}

// kernelIsSpace is isspace() from the kernel's lib/ctype.c: the C locale's
// six whitespace characters plus 0xA0, no-break space in Latin-1.
func kernelIsSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0
}
