//go:build !linux

package loop

// deliver: see deliver_linux_test.go. Nothing outside Linux.
func deliver(*Loop) {}

func pendingPackets(*PacketFD) int { return 0 }
