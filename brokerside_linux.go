package tundra

import "github.com/tundra-go/tundra/broker"

// brokerDevice makes the device s describes with createDirect's steps and
// hands over its queue descriptors themselves: they were opened
// close-on-exec, and nothing else holds them. The *tun.Device the steps
// made is dropped without Close (the package sets no finalizer), so the
// descriptors stay open until the caller, the broker's server, has sent
// and closed them; with them goes the device. No Device, no dup.
func brokerDevice(s plan) (broker.Created, error) {
	cr, err := runSteps(s, directSteps)
	if err != nil {
		return broker.Created{}, err
	}
	out := broker.Created{Name: cr.t.Name(), Index: cr.link.Index}
	for _, q := range cr.t.Queues() {
		out.Fds = append(out.Fds, q.Fd())
	}
	return out, nil
}
