//go:build linux

package main

import (
	"fmt"

	"github.com/tundra-go/tundra/loop"
)

// tundra-uring is the tundra engine with its loops on io_uring
// (loop.WithBackend(loop.BackendURing)): readiness from multishot poll
// requests, completions reaped from the shared ring. It is listed right
// after tundra and tundra-gso, and not in the default -engines: io_uring is
// opt-in in the library too.
func init() {
	uring := tundraEngine{uring: true}
	for i, e := range engines {
		if e.name() == "tundra-gso" {
			engines = append(engines[:i+1], append([]engine{uring}, engines[i+1:]...)...)
			return
		}
	}
	engines = append(engines, uring)
}

// checkURing refuses to measure the uring engine on epoll: where io_uring
// is unavailable loop.New falls back, and the table would lie.
func checkURing(e tundraEngine, g *loop.Group) error {
	if !e.uring {
		return nil
	}
	for _, l := range g.Loops() {
		if b := l.Backend(); b != loop.BackendURing {
			g.Close()
			return fmt.Errorf("%s: the loop runs on %v: io_uring unavailable: %v", e.name(), b, loop.URingUnavailable())
		}
	}
	return nil
}
