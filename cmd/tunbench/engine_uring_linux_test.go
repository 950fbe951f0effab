//go:build linux

package main

import (
	"context"
	"os"
	"testing"

	"github.com/tundra-go/tundra/internal/netnstest"
	"github.com/tundra-go/tundra/loop"
)

// The tundra-uring engine moves packets in every scenario the tundra engine
// runs, on io_uring, and -tundra-budget keeps it on io_uring.
func TestSmokeURing(t *testing.T) {
	netnstest.SkipUnlessPrivileged(t)
	if err := loop.URingUnavailable(); err != nil {
		if os.Getenv("TUNDRA_LOOP_BACKEND") == "uring" {
			t.Fatalf("io_uring unavailable: %v", err)
		}
		t.Skipf("io_uring unavailable: %v", err)
	}
	o, err := parseOptions([]string{"-engines", "tundra-uring", "-tundra-budget", "64"}, os.Stderr)
	if err != nil || len(o.engines) != 1 || o.engines[0] != (tundraEngine{budget: 64, uring: true}) {
		t.Fatalf("-engines tundra-uring: %v %v", o.engines, err)
	}
	before := leftovers(t)
	rep, code, stderr := runJSON(t, context.Background(), "-scenarios", "rx,tx,fwd,rr", "-engines", "tundra-uring",
		"-duration", "200ms", "-warmup", "50ms", "-reps", "1")
	if code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
	checkFigures(t, rep)
	seen := map[string]bool{}
	for _, r := range rep.Results {
		if r.Engine == "tundra-uring" {
			seen[r.Scenario] = true
		}
	}
	for _, sc := range []string{"rx", "tx", "fwd", "rr"} {
		if !seen[sc] {
			t.Errorf("no tundra-uring result for %s", sc)
		}
	}
	checkNoLeftovers(t, before)
}
