package utun

import (
	"errors"

	"github.com/tundra-go/tundra/internal/operr"
)

// ErrNotSupported is wrapped by every error that Open, Adopt and the Device
// methods return on an operating system other than macOS. Test for it with
// errors.Is. The portable parts of the package (the framing, the struct
// builders) work everywhere and never return it.
var ErrNotSupported = errors.New("utun devices are only available on macOS")

// ErrClosed is wrapped by the error a Device method returns after Close.
var ErrClosed = errors.New("utun device is closed")

// ErrInvalidName is wrapped by the error a builder, ParseName or Open
// returns for an interface or control name the kernel would not accept, so
// callers can tell a rejected argument from a kernel failure.
var ErrInvalidName = errors.New("invalid name")

// ErrInvalidArgument is wrapped by the error a builder or a Device method
// returns for an address, prefix, peer, unit or MTU that it refuses before
// asking the kernel: one the kernel is known to reject, or that has no
// meaning for a utun interface.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrNotIP is wrapped by the error PutFamilyHeader (and so Framer.PutHeader)
// returns for a packet whose first nibble is not IP version 4 or 6, and by
// ParseFamilyHeader for a header holding neither AF_INET nor AF_INET6.
var ErrNotIP = errors.New("not an IPv4 or IPv6 packet")

// OpError is the error type of this package. It names the operation that
// failed (a system call or ioctl such as "connect", "SIOCAIFADDR_IN6",
// "getsockopt UTUN_OPT_IFNAME", or a pure step such as "marshal
// in6_aliasreq") and the interface it concerned, and wraps the underlying
// error, usually a unix.Errno, so errors.Is(err, unix.EBUSY) works.
//
// An *OpError is immutable once returned and may be shared. Do not modify
// one.
//
// The fields are Op (the operation), Name (the interface name, or "" when
// none is known yet) and Err (the cause). Error formats the error as
// "utun: OP NAME: CAUSE", for example "utun: connect utun7: resource
// busy"; a name that holds spaces or unprintable bytes is quoted so the
// message stays unambiguous. Unwrap
// returns Err, for errors.Is and errors.As.
//
// The shape is shared with the other device package (internal/operr); the
// private type argument keeps this package's *OpError a type of its own, so
// errors.As tells the two apart.
type OpError = operr.Error[utunErrors]

// utunErrors tags this package's OpError.
type utunErrors struct{}

// Package gives the prefix of this package's error messages.
func (utunErrors) Package() string { return "utun" }
