package loop

import "testing"

// deliver has l's kernel finish the reads it has started and hands their
// packets to the PacketFDs, as the loop's next wait would: on io_uring a
// packet that arrives while a callback runs is read into a ring buffer
// only when the loop next enters the kernel, so a test that writes to a
// peer and reads back within one callback calls this in between. Their
// readiness is delivered in the next round. Nothing on epoll, whose reads
// are the caller's. Loop-only.
func deliver(l *Loop) {
	if u, ok := l.p.(*uring); ok {
		u.submitAlways()
		u.reapInto(&u.spill, false)
	}
}

// pendingPackets is how many packets p's ring holds for reading.
// Loop-only.
func pendingPackets(p *PacketFD) int {
	if p.ring == nil {
		return 0
	}
	return p.ring.plen
}

// waitPending waits until p, on l, holds n packets read into its ring.
func waitPending(t *testing.T, l *Loop, p *PacketFD, n int) {
	t.Helper()
	waitFor(t, itoa(n)+" packets in the ring", func() bool {
		k := 0
		onLoop(t, l, func() { deliver(l); k = pendingPackets(p) })
		return k == n
	})
}
