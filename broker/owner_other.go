//go:build !linux

package broker

// keeperRequired is false where a device cannot outlive its descriptors
// nor change hands (macOS utun).
const keeperRequired = false

// setOwner does nothing: a utun device has no owner to set.
func setOwner(fd int, uid uint32) error { return nil }
