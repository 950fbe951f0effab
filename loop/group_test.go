package loop

import (
	"runtime"
	"testing"
)

func TestGroup(t *testing.T) {
	checkLeaks(t)
	g, err := NewGroup(3, true)
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != 3 || len(g.Loops()) != 3 {
		t.Fatalf("%d loops", g.Len())
	}
	// Each loop runs its callbacks on its own goroutine.
	seen := map[*Loop]bool{}
	for _, l := range g.Loops() {
		if seen[l] {
			t.Fatal("a loop twice")
		}
		seen[l] = true
		if err := l.Do(func() {
			if !l.OnLoop() {
				t.Error("callback off its loop")
			}
			for _, other := range g.Loops() {
				if other != l && other.OnLoop() {
					t.Error("two loops share a goroutine")
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if s := g.Stats(); s.Posted < 3 {
		t.Errorf("summed stats: %d posted", s.Posted)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for _, l := range g.Loops() {
		select {
		case <-l.Done():
		default:
			t.Error("a loop still running after Close")
		}
	}
	d, err := NewGroup(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Len() != runtime.NumCPU() {
		t.Errorf("default group of %d loops, want NumCPU %d", d.Len(), runtime.NumCPU())
	}
}
