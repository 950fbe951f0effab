package utun

import (
	"fmt"
	"strconv"
)

// AnyUnit asks Open to let the kernel choose the unit: it connects with
// sc_unit 0, and the kernel-control layer takes the lowest free unit
// (bsd/kern/kern_control.c, ctl_setup_kctl).
const AnyUnit = -1

// MaxUnit is the largest unit Open accepts. Open connects with sc_unit =
// unit+1 (utun_ctl_connect names the interface "utun%d" with sc_unit - 1,
// bsd/net/if_utun.c); the kernel-control layer hands out units below
// ctl_maxunit (65536) when it chooses, and Open keeps explicit requests in
// the same range.
const MaxUnit = 65534

// ParseName returns the unit of a utun interface name: 7 for "utun7". The
// name must be "utun" followed by a decimal number without sign or leading
// zeros (the kernel formats it with "utun%d"), at most MaxUnit; anything
// else gives an *OpError wrapping ErrInvalidName. Pure, safe from any
// goroutine.
func ParseName(name string) (int, error) {
	const prefix = "utun"
	bad := func(why string) (int, error) {
		return 0, &OpError{Op: "parse name", Name: name, Err: fmt.Errorf("%w: %s", ErrInvalidName, why)}
	}
	if len(name) > ifNameSize-1 {
		return bad(fmt.Sprintf("%d bytes, the limit is %d (IFNAMSIZ is 16 including the NUL)", len(name), ifNameSize-1))
	}
	if len(name) <= len(prefix) || name[:len(prefix)] != prefix {
		return bad(`not "utun" followed by a unit number`)
	}
	digits := name[len(prefix):]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return bad(`not "utun" followed by a unit number`)
		}
	}
	if len(digits) > 1 && digits[0] == '0' {
		return bad("unit number has a leading zero")
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > MaxUnit {
		return bad(fmt.Sprintf("unit number above %d", MaxUnit))
	}
	return n, nil
}

// checkIfname reports why the kernel could not find an interface called
// name, or nil: ifr_name is a C string in a 16-byte field (IFNAMSIZ,
// bsd/net/if.h).
func checkIfname(op, name string) error {
	var why string
	switch {
	case name == "":
		why = "empty interface name"
	case len(name) > ifNameSize-1:
		why = fmt.Sprintf("interface name is %d bytes, the limit is %d (IFNAMSIZ is 16 including the NUL)", len(name), ifNameSize-1)
	default:
		for i := 0; i < len(name); i++ {
			if name[i] == 0 {
				why = fmt.Sprintf("NUL byte at offset %d of the interface name", i)
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return &OpError{Op: op, Name: name, Err: fmt.Errorf("%w: %s", ErrInvalidName, why)}
}
