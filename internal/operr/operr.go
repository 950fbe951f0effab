// Package operr holds the one error shape that the device packages (tun
// and utun) share: an operation, the interface it concerned and the cause.
// Each package exports it under its own name, OpError, as an alias of
// Error instantiated with a private tag type, so that *tun.OpError and
// *utun.OpError stay distinct types for errors.As while their fields,
// formatting and unwrapping are written once.
package operr

import "strconv"

// Tag names the package whose errors an Error instantiation carries. The
// zero value of the tag type is used, so it must be a stateless type.
type Tag interface {
	// Package gives the prefix of every message, e.g. "tun".
	Package() string
}

// Error is an operation that failed on a named interface. It is immutable
// once returned and may be shared between goroutines.
type Error[T Tag] struct {
	Op   string // the operation, e.g. "TUNSETIFF" or "connect"
	Name string // the interface name, or "" when none is known yet
	Err  error  // the cause, e.g. unix.EBUSY
}

// Error formats the error as "PKG: OP NAME: CAUSE", for example
// "tun: TUNSETIFF tun7: device or resource busy". A name that holds spaces
// or unprintable bytes is quoted so the message stays unambiguous.
func (e *Error[T]) Error() string {
	var tag T
	s := tag.Package() + ": " + e.Op
	if e.Name != "" {
		s += " " + QuoteIfOdd(e.Name)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error[T]) Unwrap() error { return e.Err }

// QuoteIfOdd quotes a name containing anything but printable, non-space
// ASCII: such names are exactly the ones a reader could misparse.
func QuoteIfOdd(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return strconv.Quote(name)
		}
	}
	return name
}
