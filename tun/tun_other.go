//go:build !linux

package tun

import (
	"fmt"
	"runtime"
)

// This file keeps the package's API compiling on systems without
// /dev/net/tun. Nothing here pretends to work: every entry point fails with
// an *OpError wrapping ErrNotSupported.

// Device is a TUN/TAP interface. On this OS Open and Adopt never return one.
// Its methods are safe from any goroutine and report ErrNotSupported.
type Device struct{ _ struct{} }

// Queue is one fd attached to a Device. On this OS none exists. Its methods
// are safe from any goroutine and report ErrNotSupported.
type Queue struct{ _ struct{} }

func notSupported(op string) error {
	return &OpError{Op: op, Err: fmt.Errorf("%w (GOOS=%s)", ErrNotSupported, runtime.GOOS)}
}

// Open fails with an *OpError wrapping ErrNotSupported on this OS.
func Open(cfg Config) (*Device, error) { return nil, notSupported("open /dev/net/tun") }

// Adopt fails with an *OpError wrapping ErrNotSupported on this OS and leaves
// fd untouched.
func Adopt(fd int) (*Device, error) { return nil, notSupported("TUNGETIFF") }

// AdoptQueues fails with an *OpError wrapping ErrNotSupported on this OS.
func AdoptQueues(fds []int) (*Device, error) { return nil, notSupported("TUNGETIFF") }

// Inspect fails with an *OpError wrapping ErrNotSupported on this OS.
func Inspect(fd int) (string, Flags, error) { return "", 0, notSupported("TUNGETIFF") }

// SetOffload fails with an *OpError wrapping ErrNotSupported on this OS.
func (d *Device) SetOffload(Offload) error { return notSupported("TUNSETOFFLOAD") }

// Features fails with an *OpError wrapping ErrNotSupported on this OS.
func Features() (Flags, error) { return 0, notSupported("TUNGETFEATURES") }

// Name returns "".
func (d *Device) Name() string { return "" }

// Flags returns 0.
func (d *Device) Flags() Flags { return 0 }

// PacketInfo reports nothing known.
func (d *Device) PacketInfo() (on, known bool) { return false, false }

// Fd returns -1.
func (d *Device) Fd() int { return -1 }

// Queues returns nil.
func (d *Device) Queues() []*Queue { return nil }

// AddQueue fails with ErrNotSupported.
func (d *Device) AddQueue() (*Queue, error) { return nil, notSupported("AddQueue") }

// SetPersist fails with ErrNotSupported.
func (d *Device) SetPersist(on bool) error { return notSupported("TUNSETPERSIST") }

// SetOwner fails with ErrNotSupported.
func (d *Device) SetOwner(uid int) error { return notSupported("TUNSETOWNER") }

// SetGroup fails with ErrNotSupported.
func (d *Device) SetGroup(gid int) error { return notSupported("TUNSETGROUP") }

// Close fails with ErrNotSupported.
func (d *Device) Close() error { return notSupported("close") }

// Fd returns -1.
func (q *Queue) Fd() int { return -1 }

// Attach fails with ErrNotSupported.
func (q *Queue) Attach() error { return notSupported("TUNSETQUEUE attach") }

// Detach fails with ErrNotSupported.
func (q *Queue) Detach() error { return notSupported("TUNSETQUEUE detach") }

// Close fails with ErrNotSupported.
func (q *Queue) Close() error { return notSupported("close") }

// Read fails with ErrNotSupported.
func (q *Queue) Read(b []byte) (int, error) { return 0, notSupported("read") }

// Write fails with ErrNotSupported.
func (q *Queue) Write(b []byte) (int, error) { return 0, notSupported("write") }
